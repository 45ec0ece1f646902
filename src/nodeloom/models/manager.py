"""The model manager: loaded models cached by (file, mtime, options), moved and freed.

One per engine (built by ``Engine`` and reached through ``node_api.services().models``).
Packs call :meth:`ModelManager.load` with a key and a loader; the manager keeps the result,
evicts least-recently-used models when the configured budget is exceeded, and frees
everything on :meth:`free`. It imports torch lazily so the engine stays importable without it.
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

__all__ = ["LoadedModel", "ModelManager", "model_key"]


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
                if hasattr(v, "parameters") or hasattr(v, "element_size"):
                    visit(v)

    visit(obj)
    return total


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
    """

    def __init__(self, device: str | None = None, budget_bytes: int | None = None) -> None:
        self._requested_device = device
        self.budget_bytes = budget_bytes
        self._models: OrderedDict[tuple[Hashable, ...], LoadedModel] = OrderedDict()
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
        model = loader()
        with self._lock:
            self._models[key] = LoadedModel(key, model, _object_bytes(model))
            self._models.move_to_end(key)
            self._evict()
        return model

    def _evict(self) -> None:
        if self.budget_bytes is None:
            return
        while len(self._models) > 1 and self.loaded_bytes() > self.budget_bytes:
            self._models.popitem(last=False)

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
        import gc

        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass
        return n
