"""An in-memory engine double with the Engine interface, for server tests that must not
depend on node packs: three node types (``Solid``, ``Save``, ``Sleep``), ComfyUI's events,
interruption at progress ticks, previews."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from nodeloom.paths import FolderPaths
from nodeloom.services import Services

OUTPUT_NODES = {"Save", "Sleep"}
KNOWN = {"Solid", "Save", "Sleep"}


@dataclass
class FakeEvent:
    type: str
    data: dict[str, Any]
    prompt_id: str | None
    client_id: str | None
    preview: Any = None
    binary: bool = False


@dataclass
class FakePreview:
    image: Image.Image
    format: str = "JPEG"
    max_size: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakeValidation:
    ok: bool
    error: dict[str, Any] | None
    node_errors: dict[str, Any]
    outputs_to_execute: list[str]
    prompt: dict[str, Any]


@dataclass
class FakeResult:
    prompt_id: str
    status: str
    outputs: dict[str, Any]
    messages: list[list[Any]]
    meta: dict[str, Any]
    errors: list[dict[str, Any]]


class FakeRegistry:
    packs: list[Any] = []

    def get(self, class_type: str) -> Any:
        return class_type if class_type in KNOWN else None

    def web_directories(self) -> dict[str, Path]:
        return {}

    def failed_packs(self) -> list[Any]:
        return []


class FakeEngine:
    def __init__(self, base_dir: Path) -> None:
        self.paths = FolderPaths(base_dir)
        self.services = Services(self.paths)
        self.registry = FakeRegistry()
        self._subs: list[Any] = []
        self._interrupt = threading.Event()
        self.freed: list[tuple[bool, bool]] = []

    def object_info(self, class_type: str | None = None) -> dict[str, Any]:
        names = [class_type] if class_type else sorted(KNOWN)
        return {n: {"input": {"required": {}}, "input_order": {"required": []}, "output": [], "output_is_list": [],
                    "output_name": [], "name": n, "display_name": n, "description": "", "python_module": "fake",
                    "category": "test", "output_node": n in OUTPUT_NODES} for n in names}

    def validate(self, prompt: dict[str, Any], *, targets: list[str] | None = None) -> FakeValidation:
        node_errors = {}
        for nid, node in prompt.items():
            if node.get("class_type") not in KNOWN:
                node_errors[nid] = {"errors": [{"type": "invalid_prompt", "message": "unknown class", "details": "",
                                                "extra_info": {}}], "dependent_outputs": [], "class_type": node.get("class_type")}
        outputs = [n for n, node in prompt.items() if node.get("class_type") in OUTPUT_NODES and n not in node_errors]
        if targets:
            outputs = [o for o in outputs if o in targets]
        if not outputs:
            err = {"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": "", "extra_info": {}}
            return FakeValidation(False, err, node_errors, [], prompt)
        return FakeValidation(True, None, node_errors, outputs, prompt)

    def subscribe(self, callback: Any) -> Any:
        self._subs.append(callback)
        return lambda: self._subs.remove(callback)

    def _emit(self, type_: str, data: dict[str, Any], pid: str, cid: str | None, preview: Any = None) -> None:
        for cb in list(self._subs):
            cb(FakeEvent(type_, data, pid, cid, preview))

    def interrupt(self) -> None:
        self._interrupt.set()

    def free(self, unload_models: bool = True, free_memory: bool = True) -> None:
        self.freed.append((unload_models, free_memory))

    def close(self) -> None:
        pass

    def run(self, prompt: dict[str, Any], *, prompt_id: str, client_id: str | None = None,
            extra_data: dict[str, Any] | None = None, targets: list[str] | None = None, **_: Any) -> FakeResult:
        self._interrupt.clear()
        now = lambda: int(time.time() * 1000)  # noqa: E731
        messages: list[list[Any]] = []

        def emit(t: str, d: dict[str, Any], preview: Any = None) -> None:
            if t.startswith("execution_"):
                messages.append([t, d])
            self._emit(t, d, prompt_id, client_id, preview)

        emit("execution_start", {"prompt_id": prompt_id, "timestamp": now()})
        emit("execution_cached", {"nodes": [], "prompt_id": prompt_id, "timestamp": now()})
        outputs: dict[str, Any] = {}
        for nid in targets or [n for n, v in prompt.items() if v["class_type"] in OUTPUT_NODES]:
            node = prompt[nid]
            emit("executing", {"node": nid, "display_node": nid, "prompt_id": prompt_id})
            inputs = node.get("inputs", {})
            if node["class_type"] == "Sleep":
                steps = int(inputs.get("steps", 5))
                for i in range(steps):
                    if self._interrupt.is_set():
                        emit("execution_interrupted", {"prompt_id": prompt_id, "node_id": nid, "node_type": "Sleep",
                                                       "executed": [], "timestamp": now()})
                        emit("executing", {"node": None, "display_node": None, "prompt_id": prompt_id})
                        return FakeResult(prompt_id, "interrupted", outputs, messages, {}, [])
                    time.sleep(float(inputs.get("seconds", 0.0)) / steps)
                    emit("progress", {"value": i + 1, "max": steps, "prompt_id": prompt_id, "node": nid})
                    meta = {"node_id": nid, "prompt_id": prompt_id, "display_node_id": nid, "parent_node_id": None,
                            "real_node_id": nid}
                    emit("preview", {}, FakePreview(Image.new("RGB", (8, 8), (i * 20, 0, 0)), metadata=meta))
                if inputs.get("fail"):
                    err = {"prompt_id": prompt_id, "node_id": nid, "node_type": "Sleep", "executed": [],
                           "exception_message": "asked to fail", "exception_type": "RuntimeError", "traceback": [],
                           "current_inputs": {}, "current_outputs": {}, "timestamp": now()}
                    emit("execution_error", err)
                    emit("executing", {"node": None, "display_node": None, "prompt_id": prompt_id})
                    return FakeResult(prompt_id, "error", outputs, messages, {}, [err])
                ui: dict[str, Any] = {"text": [f"slept {steps}"]}
            else:
                color = tuple(inputs.get("color", [255, 0, 0]))
                name = f"{inputs.get('filename_prefix', 'fake')}_{prompt_id[:8]}.png"
                Image.new("RGB", (8, 8), color).save(self.paths.output_dir / name)
                ui = {"images": [{"filename": name, "subfolder": "", "type": "output"}]}
            outputs[nid] = ui
            emit("executed", {"node": nid, "display_node": nid, "output": ui, "prompt_id": prompt_id})
        emit("execution_success", {"prompt_id": prompt_id, "timestamp": now()})
        emit("executing", {"node": None, "display_node": None, "prompt_id": prompt_id})
        meta = {n: {"node_id": n, "display_node": n, "parent_node": None, "real_node_id": n} for n in outputs}
        return FakeResult(prompt_id, "success", outputs, messages, meta, [])
