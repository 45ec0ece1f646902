"""The Engine: the one object adapters (CLI, server, MCP, batch) hold.

It builds and owns the registry (built-in packs from ``nodeloom.nodes.*`` and custom-node
packs), the folders, the model manager, the output cache, the executor and the event bus,
and exposes validate / run / interrupt / free / object_info. Torch is imported lazily here
(inference mode, previews, device memory) so ``core`` never needs it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import pkgutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeloom.core.cache import OutputCache, make_cache
from nodeloom.core.context import activate_services
from nodeloom.core.events import Event, EventBus, Preview
from nodeloom.core.executor import ExecutionHooks, ExecutionReport, Executor
from nodeloom.core.registry import NodeRegistry, PackInfo
from nodeloom.core.validate import ValidationResult, validate_prompt
from nodeloom.errors import ValidationError
from nodeloom.limits import RunLimits
from nodeloom.models.manager import ModelManager
from nodeloom.ops.torch_threads import remember_full_threads, use_threads
from nodeloom.paths import FolderPaths
from nodeloom.run_memory import MemoryWatch
from nodeloom.services import Services
from nodeloom.workflows.survey import explain_missing_models

__all__ = ["Engine", "EngineConfig", "RunResult"]

log = logging.getLogger("nodeloom.engine")

#: socket types whose nodes use the accelerator and therefore take the device lock
DEVICE_TYPES = frozenset({"MODEL", "CLIP", "VAE", "CONTROL_NET", "LLM", "UPSCALE_MODEL", "CLIP_VISION", "STYLE_MODEL"})


@dataclass
class EngineConfig:
    """How an engine is set up (ComfyUI's main.py flags map onto these)."""

    base_dir: str | Path = "."
    output_dir: str | Path | None = None
    input_dir: str | Path | None = None
    temp_dir: str | Path | None = None
    models_dir: str | Path | None = None
    user_dir: str | Path | None = None
    extra_model_paths: list[str | Path] = field(default_factory=list)
    custom_nodes_dirs: list[str | Path] = field(default_factory=list)
    load_custom_nodes: bool = True
    cache: str = "classic"
    cache_lru_items: int = 0
    cache_bytes: int | None = 4 * 2**30
    sequential: bool = False
    max_workers: int | None = None
    device: str | None = None
    #: big transformers block by block: "auto" (when larger than the GPU), "blocks" (always), "none"
    offload: str = "auto"
    builtin_packs: bool = True
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    """The result of :meth:`Engine.run`."""

    prompt_id: str
    status: str
    outputs: dict[str, Any]
    messages: list[list[Any]]
    meta: dict[str, Any]
    node_runs: dict[str, dict[str, Any]]
    errors: list[dict[str, Any]]
    node_errors: dict[str, Any]
    outputs_to_execute: list[str]
    wall_s: float
    #: peak memory of the run (:class:`nodeloom.run_memory.MemoryWatch`), bytes
    memory: dict[str, Any] = field(default_factory=dict)
    _values: dict[str, list[list[Any]]] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def value(self, node_id: str, slot: int = 0) -> Any:
        """The value node ``node_id`` produced at output ``slot`` (a list when it produced several).

        Raises:
            KeyError: the node did not produce outputs in this run.
        """
        if node_id not in self._values:
            raise KeyError(f"node `{node_id}` produced no outputs in this run")
        items = self._values[node_id][slot]
        return items[0] if len(items) == 1 else list(items)

    def ran(self) -> list[str]:
        return [n for n, r in self.node_runs.items() if not r["cached"]]

    def cached(self) -> list[str]:
        return [n for n, r in self.node_runs.items() if r["cached"]]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe summary (no tensors)."""
        return {
            "prompt_id": self.prompt_id,
            "status": self.status,
            "outputs": self.outputs,
            "nodes": self.node_runs,
            "errors": self.errors,
            "node_errors": self.node_errors,
            "wall_s": self.wall_s,
            "memory": self.memory,
        }


class Engine:
    """Registry + executor + stores.

    Args:
        config: an :class:`EngineConfig`; keyword arguments override its fields
            (``Engine(base_dir=tmp_path)``) in a copy, so ``config`` itself is not changed.
    """

    def __init__(self, config: EngineConfig | None = None, **overrides: Any) -> None:
        cfg = config or EngineConfig()
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(EngineConfig)})
        if unknown:
            raise TypeError(f"Engine() got an unknown option `{unknown[0]}`")
        cfg = dataclasses.replace(cfg, **overrides)  # the caller's config stays as it was
        self.config = cfg
        self.paths = FolderPaths(
            cfg.base_dir,
            output_dir=cfg.output_dir,
            input_dir=cfg.input_dir,
            temp_dir=cfg.temp_dir,
            models_dir=cfg.models_dir,
            user_dir=cfg.user_dir,
        )
        self.paths.ensure()
        for yaml_path in cfg.extra_model_paths:
            self.paths.load_extra_model_paths(yaml_path)
        self.services = Services(self.paths, ModelManager(device=cfg.device, offload=cfg.offload), settings=cfg.settings)
        self.services.event_sink = self._custom_event
        self.registry = NodeRegistry()
        self.bus = EventBus()
        self.cache: OutputCache = self._make_cache(cfg)
        remember_full_threads()  # torch's "every core" count, before any node thread changes it
        self.executor = Executor(
            self.registry.get,
            self.cache,
            self._hooks(),
            max_workers=cfg.max_workers,
            sequential=cfg.sequential,
        )
        self._device_users: dict[type, bool] = {}
        self._current: dict[str, Any] = {}
        self._current_lock = threading.Lock()
        with activate_services(self.services):
            if cfg.builtin_packs:
                self._load_builtin_packs()
            if cfg.load_custom_nodes:
                dirs = [Path(d) for d in cfg.custom_nodes_dirs] + list(self.paths.custom_nodes_dirs)
                if dirs:
                    self.load_custom_nodes(dirs)

    # ------------------------------------------------------------------ set-up
    @staticmethod
    def _make_cache(cfg: EngineConfig) -> OutputCache:
        if cfg.cache_lru_items and cfg.cache_lru_items > 0:
            return make_cache("lru", max_bytes=cfg.cache_bytes, max_items=cfg.cache_lru_items)
        return make_cache(cfg.cache, max_bytes=cfg.cache_bytes)

    def _hooks(self) -> ExecutionHooks:
        return ExecutionHooks(
            call_context=_inference_mode,
            device_lock_for=self._device_lock_for,
            make_preview=_make_preview,
            peak_memory=_peak_memory,
            services=self.services,
            share_threads=_share_threads,
        )

    def _device_lock_for(self, cls: type) -> Any:
        if cls not in self._device_users:
            self._device_users[cls] = self._uses_device(cls)
        return self.services.models.device_lock if self._device_users[cls] else None

    def _uses_device(self, cls: type) -> bool:
        flag = getattr(cls, "NODELOOM_USES_DEVICE", None)
        if flag is not None:
            return bool(flag)
        try:
            types = cls.INPUT_TYPES()  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - treated as not a device user
            return False
        for section in ("required", "optional"):
            for spec in (types.get(section) or {}).values():
                t = spec[0] if isinstance(spec, (tuple, list)) and spec else spec
                # str.__str__ gives a plain str: packs' "any type" str subclasses may be
                # unhashable or equal to everything, which must not make them device users.
                if isinstance(t, str) and str.__str__(t) in DEVICE_TYPES:
                    return True
        return False

    def _load_builtin_packs(self) -> None:
        import nodeloom.nodes as nodes_pkg

        for mod in sorted(pkgutil.iter_modules(nodes_pkg.__path__), key=lambda m: m.name):
            if not mod.ispkg:
                continue
            name = f"nodeloom.nodes.{mod.name}"
            t0 = time.perf_counter()
            try:
                module = importlib.import_module(name)
            except Exception as exc:  # noqa: BLE001 - a broken pack is reported and skipped
                log.warning("built-in pack %s failed to import: %s", name, exc)
                self.registry.record_failure(PackInfo(mod.name, name, error=f"{type(exc).__name__}: {exc}", builtin=True))
                continue
            mappings = getattr(module, "NODE_CLASS_MAPPINGS", None)
            if not mappings:
                continue
            info = PackInfo(mod.name, name, path=str(Path(module.__file__ or "").parent), builtin=True)
            info.load_seconds = time.perf_counter() - t0
            self.registry.register_pack(info, mappings, getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None))

    def load_custom_nodes(self, dirs: Iterable[Path]) -> list[PackInfo]:
        """Load custom-node packs from folders (ComfyUI's ``custom_nodes/`` layout)."""
        try:
            from nodeloom.compat.loader import load_custom_node_packs
        except ImportError as exc:  # pragma: no cover - the compat layer ships with nodeloom
            raise ValidationError(f"custom-node loading is unavailable: {exc}") from exc
        with activate_services(self.services):
            return load_custom_node_packs([Path(d) for d in dirs], self.registry)

    # ------------------------------------------------------------------ events
    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Receive every event of every run; returns an unsubscribe function."""
        return self.bus.subscribe(callback)

    def _custom_event(self, event_type: str, data: dict[str, Any], client_id: str | None) -> None:
        current = dict(self._current)
        event = Event(event_type, data, current.get("prompt_id"), client_id or current.get("client_id"))
        on_event = current.get("on_event")
        if on_event is not None:
            on_event(event)
        self.bus.emit(event)

    # ------------------------------------------------------------------ API
    def object_info(self, class_type: str | None = None) -> dict[str, Any]:
        """ComfyUI's ``/object_info`` (all nodes, or the one named)."""
        with activate_services(self.services):
            return self.registry.object_info(class_type)

    def input_types(self, class_type: str) -> dict[str, Any] | None:
        """A node class's current ``INPUT_TYPES()`` (combos re-scanned), or None when unknown."""
        cls = self.registry.get(class_type)
        if cls is None:
            return None
        with activate_services(self.services):
            return cls.INPUT_TYPES()  # type: ignore[attr-defined,no-any-return]

    def validate(self, prompt: Any, *, targets: list[str] | None = None, workflow: Any = None) -> ValidationResult:
        """Validate an API-format prompt; never raises for bad input.

        Node types that are not registered but have a registered replacement (ComfyUI's
        ``io.NodeReplace``) are swapped first; the result's ``prompt`` is the one that runs.
        ``workflow`` (the UI workflow the prompt came from) lets a missing model file's error
        name the URL the workflow gives for it; the folders searched are always named.
        """
        if isinstance(prompt, dict):
            prompt = self.registry.replace_nodes(prompt)
        with activate_services(self.services):
            result = validate_prompt(prompt, self.registry.get, targets, known_classes=lambda: self.registry.classes().keys())
        explain_missing_models(result.node_errors, self.paths, workflow)
        return result

    def run(
        self,
        prompt: dict[str, Any],
        *,
        prompt_id: str | None = None,
        client_id: str | None = None,
        extra_data: dict[str, Any] | None = None,
        targets: list[str] | None = None,
        on_event: Callable[[Event], None] | None = None,
        validated: ValidationResult | None = None,
        limits: RunLimits | None = None,
    ) -> RunResult:
        """Validate and run a prompt; blocking.

        Args:
            prompt: API-format prompt.
            prompt_id: id of this run (default: a new uuid).
            client_id: the submitting client; events carry it.
            extra_data: ComfyUI's ``extra_data`` (``extra_pnginfo``...).
            targets: partial execution targets (output node ids).
            on_event: called with every event of this run.
            validated: a result of :meth:`validate` for this prompt, to skip re-validation.
            limits: resource limits checked before the run and on what each node creates;
                nodes reach them (e.g. LoadImage's decode guard) as ``services().limits``.

        Raises:
            ValidationError: no output of the prompt is valid (``.node_errors`` says why).
            LimitError: the prompt's constants already exceed ``limits``.
        """
        pnginfo = (extra_data or {}).get("extra_pnginfo")
        workflow = pnginfo.get("workflow") if isinstance(pnginfo, dict) else None
        result = validated or self.validate(prompt, targets=targets, workflow=workflow)
        if not result.ok:
            err = result.error or {"type": "invalid_prompt", "message": "invalid prompt", "details": "", "extra_info": {}}
            raise ValidationError(err["message"], details=err.get("details", ""), extra_info=err.get("extra_info"),
                                  type=err["type"], node_errors=result.node_errors)
        if limits is not None:
            limits.check_prompt(result.prompt, self.registry.get)
        pid = prompt_id or str(uuid.uuid4())
        emit = self._emitter(on_event)
        with self._current_lock:
            self._current = {"prompt_id": pid, "client_id": client_id, "on_event": on_event}
        self.services.limits = limits
        watch = MemoryWatch()
        try:
            with activate_services(self.services):
                report = self.executor.execute(
                    result.prompt,
                    result.outputs_to_execute,
                    prompt_id=pid,
                    extra_data=extra_data or {},
                    emit=emit,
                    client_id=client_id,
                    check_output=limits.output_check() if limits is not None and limits.active else None,
                )
        finally:
            self.services.limits = None
            with self._current_lock:
                self._current = {}
        return _to_result(report, result, watch.read())

    def _emitter(self, on_event: Callable[[Event], None] | None) -> Callable[[Event], None] | None:
        if on_event is None and not self.bus.active:
            return None

        def emit(event: Event) -> None:
            if on_event is not None:
                on_event(event)
            self.bus.emit(event)

        return emit

    def interrupt(self) -> None:
        """Stop the running prompt at the next node boundary or progress tick."""
        self.executor.interrupt()

    def free(self, unload_models: bool = True, free_memory: bool = True) -> None:
        """ComfyUI's ``/free``: unload models and/or drop cached outputs."""
        if free_memory:
            self.cache.clear()
        if unload_models:
            self.services.models.free()

    def close(self) -> None:
        self.executor.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _to_result(report: ExecutionReport, validation: ValidationResult, memory: dict[str, Any]) -> RunResult:
    # the executor resets CUDA's peak per node: the run's peak is the largest of the nodes' peaks
    node_peaks = [r.peak_mem for r in report.node_runs.values() if r.peak_mem is not None]
    if node_peaks:
        memory["cuda_max_allocated"] = max([*node_peaks, memory.get("cuda_max_allocated") or 0])
    return RunResult(
        prompt_id=report.prompt_id,
        status=report.status,
        outputs=report.outputs,
        messages=report.messages,
        meta=report.meta,
        node_runs={k: v.to_dict() for k, v in report.node_runs.items()},
        errors=report.errors,
        node_errors=validation.node_errors,
        outputs_to_execute=validation.outputs_to_execute,
        wall_s=report.wall_s,
        memory=memory,
        _values=report.values,
    )


# ---------------------------------------------------------------------- torch hooks


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch


def _share_threads(running: int, alone: bool) -> None:
    use_threads(running, alone_thread=alone)


def _inference_mode() -> Any:
    torch = _torch()
    return torch.inference_mode() if torch is not None else contextlib.nullcontext()


def _peak_memory(reset: bool) -> int | None:
    torch = _torch()
    if torch is None or not torch.cuda.is_available():
        return None
    if reset:
        torch.cuda.reset_peak_memory_stats()
        return None
    return int(torch.cuda.max_memory_allocated())


def _make_preview(value: Any) -> Preview | None:
    """A JPEG preview from a PIL image, an IMAGE tensor/array, or ``(format, image, max_size)``."""
    from PIL import Image

    fmt, max_size = "JPEG", 512
    if isinstance(value, tuple) and len(value) == 3:
        fmt, value, max_size = value
    if isinstance(value, Image.Image):
        return Preview(value, fmt, max_size)
    try:
        import numpy as np

        arr = value.detach().cpu().float().numpy() if hasattr(value, "detach") else np.asarray(value, dtype=np.float32)
        if arr.ndim == 4:
            arr = arr[0]
        img = Image.fromarray((np.clip(arr, 0, 1) * 255).round().astype("uint8"))
    except Exception:  # noqa: BLE001 - an unrenderable preview is skipped, not fatal
        return None
    return Preview(img, fmt, max_size)
