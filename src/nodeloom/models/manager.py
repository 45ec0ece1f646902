"""The model manager: loaded models cached by (file, mtime, options), moved and freed.

One per engine (built by ``Engine`` and reached through ``node_api.services().models``).
Packs call :meth:`ModelManager.load` with a key and a loader; the manager keeps the result,
evicts least-recently-used models when the configured budget is exceeded or host memory runs
short, and frees everything on :meth:`free`. :meth:`ModelManager.prepare` moves a module onto the
compute device (fp16 on CUDA) and, when the accelerator is short of memory, first moves the
least-recently-used modules back to the CPU. It imports torch lazily so the engine stays
importable without it.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["OFFLOAD_MODES", "LoadedModel", "ModelManager", "model_key"]

OFFLOAD_MODES = ("auto", "blocks", "none")

#: loaders run one at a time, process-wide: diffusers builds modules under accelerate's
#: ``init_empty_weights``, which patches torch for the whole process, so a module constructed on
#: another thread meanwhile would get meta (empty) parameters
_LOAD_LOCK = threading.Lock()


def model_key(path: str | os.PathLike[str], *options: Hashable) -> tuple[Hashable, ...]:
    """A cache key for a model file or folder: resolved path, mtime (newest file inside a
    folder) and the loader options that change the result."""
    p = Path(path).resolve()
    if p.is_dir():
        mtimes = [f.stat().st_mtime_ns for f in p.rglob("*") if f.is_file()]
        mtime = max(mtimes, default=p.stat().st_mtime_ns)
    else:
        mtime = p.stat().st_mtime_ns
    return (str(p), mtime, *options)


def _object_bytes(obj: Any) -> int:
    """Bytes held by the tensors of a torch module (or a tuple/dict of them); 0 if unknown."""
    total = 0
    seen: set[int] = set()

    def visit(o: Any) -> None:
        nonlocal total
        if id(o) in seen:
            return
        seen.add(id(o))
        params = getattr(o, "parameters", None)
        buffers = getattr(o, "buffers", None)
        if callable(params) and callable(buffers):
            for t in list(params()) + list(buffers()):
                total += t.numel() * t.element_size()
            return
        if hasattr(o, "element_size") and hasattr(o, "numel"):
            total += o.numel() * o.element_size()
        elif isinstance(o, dict):
            for v in o.values():
                visit(v)
        elif isinstance(o, (list, tuple)):
            for v in o:
                visit(v)
        else:
            for v in getattr(o, "__dict__", {}).values():
                if hasattr(v, "parameters") or hasattr(v, "element_size") or isinstance(v, (list, tuple, dict)):
                    visit(v)

    visit(obj)
    return total


def _host_available() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        return 1 << 62


def _modules_of(obj: Any) -> list[Any]:
    """The torch modules an object holds directly (itself, or its attributes)."""
    if callable(getattr(obj, "parameters", None)):
        return [obj]
    found = []
    for v in getattr(obj, "__dict__", {}).values():
        items = v if isinstance(v, (list, tuple)) else [v]
        found += [m for m in items if callable(getattr(m, "parameters", None))]
    return found


@dataclass
class LoadedModel:
    key: tuple[Hashable, ...]
    model: Any
    size_bytes: int
    loaded_at: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)


class ModelManager:
    """Caches loaded models and decides their device.

    Args:
        device: ``"cuda"``, ``"cpu"`` or ``None`` (CUDA when available, else CPU).
        budget_bytes: evict least-recently-used models above this total (None: no limit).
        offload: ``"auto"`` (a model with repeated blocks that does not fit in the device's free
            memory runs block by block, see :mod:`nodeloom.models.offload`), ``"blocks"``
            (always so) or ``"none"``.
    """

    def __init__(self, device: str | None = None, budget_bytes: int | None = None,
                 min_free_host_bytes: int = 0, device_reserve_bytes: int = 512 << 20, offload: str = "auto") -> None:
        if offload not in OFFLOAD_MODES:
            raise ValueError(f"`offload` must be one of {list(OFFLOAD_MODES)}, got {offload!r}")
        self.offload_mode = offload
        self._requested_device = device
        self.budget_bytes = budget_bytes
        #: evict cached models while the host has less than this much memory available
        self.min_free_host_bytes = min_free_host_bytes
        #: headroom kept free on the accelerator besides the module being moved there
        self.device_reserve_bytes = device_reserve_bytes
        self._models: OrderedDict[tuple[Hashable, ...], LoadedModel] = OrderedDict()
        self._on_device: OrderedDict[int, Any] = OrderedDict()
        self._lock = threading.RLock()
        #: serialises work on one accelerator (one GPU job at a time per device)
        self.device_lock = threading.RLock()

    # ------------------------------------------------------------------ devices
    @property
    def device(self) -> Any:
        """The torch device models run on."""
        import torch

        if self._requested_device:
            return torch.device(self._requested_device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    @property
    def dtype(self) -> Any:
        """fp16 on CUDA, fp32 on CPU."""
        import torch

        return torch.float16 if self.device.type == "cuda" else torch.float32

    # ------------------------------------------------------------------ cache
    def load(self, key: tuple[Hashable, ...], loader: Callable[[], Any]) -> Any:
        """Return the model cached under ``key``, loading it with ``loader()`` on a miss."""
        with self._lock:
            entry = self._models.get(key)
            if entry is not None:
                entry.last_used = time.time()
                self._models.move_to_end(key)
                return entry.model
        with _LOAD_LOCK:
            model = loader()
        with self._lock:
            self._models[key] = LoadedModel(key, model, _object_bytes(model))
            self._models.move_to_end(key)
            self._evict()
        return model

    def _evict(self) -> None:
        while len(self._models) > 1 and self.budget_bytes is not None and self.loaded_bytes() > self.budget_bytes:
            self._drop(self._models.popitem(last=False)[1])
        while len(self._models) > 1 and self.min_free_host_bytes and _host_available() < self.min_free_host_bytes:
            self._drop(self._models.popitem(last=False)[1])

    def _drop(self, entry: LoadedModel) -> None:
        for mod in _modules_of(entry.model):
            self._on_device.pop(id(mod), None)

    # ------------------------------------------------------------------ device placement
    def prepare(self, module: Any, *, dtype: Any = None) -> Any:
        """Move a torch module onto :attr:`device` (in ``dtype``, default :attr:`dtype`).

        On CUDA, least-recently-prepared modules go back to the CPU first while free device
        memory would drop under the module's size plus :attr:`device_reserve_bytes`.

        Returns:
            The module (moved in place).
        """
        device = self.device
        dtype = dtype or self.dtype
        with self._lock:
            if getattr(module, "_nodeloom_block_offload", None) is not None:
                return module  # runs block by block already
            first = _first_compute_param(module)
            placed = first is None or (first.device.type == device.type and first.dtype == dtype)
            if (not placed or self.offload_mode == "blocks") and self._by_blocks(module, dtype):
                from nodeloom.models.offload import BlockOffload

                BlockOffload(module, device, None)
                _to_dtype(module, dtype)
                return module
            if not placed:
                if device.type == "cuda":
                    self._make_room(module, dtype)
                module.to(device=device)
                _to_dtype(module, dtype)
            self._on_device[id(module)] = module
            self._on_device.move_to_end(id(module))
        return module

    def _by_blocks(self, module: Any, dtype: Any) -> bool:
        """Whether ``module`` should run block by block (the offload setting, its size, free memory)."""
        if self.offload_mode == "none":
            return False
        from nodeloom.models.offload import find_blocks

        if not find_blocks(module):
            return False
        if self.offload_mode == "blocks":
            return True
        if self.device.type != "cuda":
            return False
        import torch

        need = _object_bytes(module) * torch.empty(0, dtype=dtype).element_size() // 4
        return need + self.device_reserve_bytes > torch.cuda.mem_get_info(self.device)[1]  # more than the whole card

    def _make_room(self, module: Any, dtype: Any) -> None:
        """Offload least-recently-prepared modules until ``module`` fits with the reserve."""
        import torch

        first = next(module.parameters())
        need = _object_bytes(module) * torch.empty(0, dtype=dtype).element_size() // first.element_size()
        while self._on_device and torch.cuda.mem_get_info(self.device)[0] < need + self.device_reserve_bytes:
            _, old = self._on_device.popitem(last=False)
            if old is not module:
                old.to("cpu")
                torch.cuda.empty_cache()

    def offload(self) -> int:
        """Move every prepared module back to the CPU; returns how many."""
        with self._lock:
            mods = list(self._on_device.values())
            self._on_device.clear()
        for mod in mods:
            mod.to("cpu")
        return len(mods)

    def loaded_bytes(self) -> int:
        return sum(m.size_bytes for m in self._models.values())

    def loaded(self) -> list[LoadedModel]:
        with self._lock:
            return list(self._models.values())

    def unload(self, key: tuple[Hashable, ...]) -> bool:
        with self._lock:
            return self._models.pop(key, None) is not None

    def free(self) -> int:
        """Drop every cached model and release accelerator memory; returns how many."""
        with self._lock:
            n = len(self._models)
            self._models.clear()
            self._on_device.clear()
        import gc

        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass
        return n


def _first_compute_param(module: Any) -> Any:
    """The first parameter not stored in fp8 (fp8 storage keeps its dtype), or None."""
    return next((p for p in module.parameters() if "float8" not in str(p.dtype)), None)


def _to_dtype(module: Any, dtype: Any) -> None:
    """Cast floating parameters and buffers to ``dtype``, leaving fp8-stored weights (and their
    float32 ``weight_scale``) as they are; their layers now compute in ``dtype``."""
    for sub in module.modules():
        if hasattr(sub, "compute_dtype") and "float8" in str(getattr(sub, "weight", None).dtype):
            sub.compute_dtype = dtype
        for name, t in [*sub.named_parameters(recurse=False), *sub.named_buffers(recurse=False)]:
            if name == "weight_scale" and hasattr(sub, "compute_dtype"):
                continue
            if t.is_floating_point() and "float8" not in str(t.dtype) and t.dtype != dtype:
                t.data = t.data.to(dtype)
