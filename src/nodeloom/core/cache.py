"""Output caching: input signatures and the cache policies (classic, LRU in bytes, none).

A node's signature hashes its class, constant inputs, ``IS_CHANGED`` value (node id too when
``NOT_IDEMPOTENT`` or it takes ``UNIQUE_ID``) and, for each link, the source's signature and
slot — a Merkle hash computed once per node per run, never re-walking ancestors. Identical
subgraphs therefore share results. No I/O.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nodeloom.core.graph import DynamicPrompt, NodeTypes
from nodeloom.core.graph_builder import is_link
from nodeloom.core.types import hidden_kind

__all__ = [
    "CacheEntry",
    "ClassicCache",
    "LRUCache",
    "NoCache",
    "OutputCache",
    "SignatureBuilder",
    "make_cache",
    "nbytes_of",
]


def nbytes_of(obj: Any, _seen: set[int] | None = None) -> int:
    """Bytes held by tensors/arrays inside ``obj`` (lists, tuples, dicts followed); small
    Python objects count as 0 so the budget reflects memory that matters."""
    seen = _seen if _seen is not None else set()
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if hasattr(obj, "element_size") and hasattr(obj, "numel"):
        try:
            if getattr(obj, "is_meta", False):
                return 0
            storage = obj.untyped_storage() if hasattr(obj, "untyped_storage") else None
            if storage is not None:
                key = storage.data_ptr()
                if key and key in seen:
                    return 0
                if key:
                    seen.add(key)
                return int(storage.nbytes())
            return int(obj.numel() * obj.element_size())
        except Exception:  # noqa: BLE001 - exotic tensor subclasses: count what we can
            return int(obj.numel() * obj.element_size())
    if hasattr(obj, "nbytes") and hasattr(obj, "dtype"):
        return int(obj.nbytes)
    if isinstance(obj, (list, tuple)):
        return sum(nbytes_of(x, seen) for x in obj)
    if isinstance(obj, dict):
        return sum(nbytes_of(v, seen) for v in obj.values())
    return 0


@dataclass
class CacheEntry:
    """A node's outputs (one list per slot) and UI data."""

    outputs: list[list[Any]]
    ui: dict[str, Any] | None
    nbytes: int = 0


class OutputCache:
    """Base policy: signature -> :class:`CacheEntry`; thread-safe."""

    mode = "base"

    def __init__(self) -> None:
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._touched: set[str] = set()
        self._lock = threading.Lock()

    def get(self, key: str) -> CacheEntry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._touched.add(key)
                self._entries.move_to_end(key)
            return entry

    def put(self, key: str, entry: CacheEntry) -> None:
        with self._lock:
            entry.nbytes = nbytes_of(entry.outputs)
            self._entries[key] = entry
            self._entries.move_to_end(key)
            self._touched.add(key)
            self._after_put()

    def _after_put(self) -> None:
        """Hook for bounded policies (called under the lock)."""

    def begin_run(self) -> None:
        with self._lock:
            self._touched = set()

    def end_run(self) -> None:
        """Called after each run; policies drop what they no longer keep."""

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._touched.clear()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def total_bytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def stats(self) -> dict[str, Any]:
        return {"mode": self.mode, "entries": len(self._entries), "bytes": self.total_bytes}


class ClassicCache(OutputCache):
    """ComfyUI's classic mode: keep only what the latest run used."""

    mode = "classic"

    def end_run(self) -> None:
        with self._lock:
            for key in [k for k in self._entries if k not in self._touched]:
                del self._entries[key]


class LRUCache(OutputCache):
    """Least-recently-used eviction bounded in bytes (tensor sizes) and optionally items.

    Args:
        max_bytes: evict until the held tensors fit (None: unbounded bytes).
        max_items: ComfyUI's ``--cache-lru N`` item bound (None: unbounded count).
    """

    mode = "lru"

    def __init__(self, max_bytes: int | None = 4 * 2**30, max_items: int | None = None) -> None:
        super().__init__()
        self.max_bytes = max_bytes
        self.max_items = max_items
        self.evictions = 0

    def _after_put(self) -> None:
        total = sum(e.nbytes for e in self._entries.values())
        while len(self._entries) > 1:
            over_items = self.max_items is not None and len(self._entries) > self.max_items
            over_bytes = self.max_bytes is not None and total > self.max_bytes
            if not (over_items or over_bytes):
                break
            _, evicted = self._entries.popitem(last=False)
            total -= evicted.nbytes
            self.evictions += 1

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "max_bytes": self.max_bytes, "max_items": self.max_items, "evictions": self.evictions}


class NoCache(OutputCache):
    """ComfyUI's ``--cache-none``: nothing is kept between runs."""

    mode = "none"

    def get(self, key: str) -> CacheEntry | None:
        return None

    def put(self, key: str, entry: CacheEntry) -> None:
        return None


def make_cache(mode: str, *, max_bytes: int | None = 4 * 2**30, max_items: int | None = None) -> OutputCache:
    """Build a cache policy by name: ``classic``, ``lru`` or ``none``."""
    if mode == "classic":
        return ClassicCache()
    if mode == "lru":
        return LRUCache(max_bytes=max_bytes, max_items=max_items)
    if mode == "none":
        return NoCache()
    raise ValueError(f"cache mode `{mode}` must be one of 'classic', 'lru', 'none'")


def _canonical(value: Any) -> str:
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f"float:{value}"
    try:
        return json.dumps(value, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        return repr(value)


class SignatureBuilder:
    """Computes node signatures for one run (memoised; ephemeral nodes added as they appear).

    Args:
        prompt: the running graph.
        types: the run's node-type view.
        is_changed: ``(node_id) -> value`` evaluating ``IS_CHANGED`` once per node.
    """

    def __init__(self, prompt: DynamicPrompt, types: NodeTypes, is_changed: Callable[[str], Any]) -> None:
        self.prompt = prompt
        self.types = types
        self.is_changed = is_changed
        self.sigs: dict[str, str] = {}

    def signature(self, node_id: str) -> str:
        """The signature of ``node_id`` (computing missing ancestors iteratively)."""
        sig = self.sigs.get(node_id)
        if sig is not None:
            return sig
        stack = [(node_id, False)]
        visiting: set[str] = set()
        while stack:
            nid, ready = stack.pop()
            if nid in self.sigs:
                continue
            if not self.prompt.has_node(nid):
                self.sigs[nid] = "missing:" + nid
                continue
            inputs = self.prompt.get_node(nid).get("inputs") or {}
            if not ready:
                if nid in visiting:  # a dependency cycle: the run reports it
                    continue
                visiting.add(nid)
                stack.append((nid, True))
                for value in inputs.values():
                    if is_link(value) and value[0] not in self.sigs and value[0] not in visiting:
                        stack.append((value[0], False))
                continue
            self.sigs[nid] = self._immediate(nid, inputs)
        return self.sigs[node_id]

    def _immediate(self, nid: str, inputs: dict[str, Any]) -> str:
        node = self.prompt.get_node(nid)
        class_type = node.get("class_type")
        cls = self.types.cls(class_type) if isinstance(class_type, str) else None
        parts = [str(class_type)]
        if cls is not None:
            hidden = [hidden_kind(k) for k in (self.types.input_types(class_type).get("hidden") or {}).values()]
            if getattr(cls, "NOT_IDEMPOTENT", False) or "UNIQUE_ID" in hidden:
                parts.append("id:" + nid)
            if hasattr(cls, "IS_CHANGED"):
                parts.append("changed:" + _canonical(self.is_changed(nid)))
        for name in sorted(inputs):
            value = inputs[name]
            if is_link(value):
                src_sig = self.sigs.get(value[0]) or ("cycle:" + value[0])
                parts.append(f"{name}=L({src_sig},{int(value[1])})")
            else:
                parts.append(f"{name}={_canonical(value)}")
        return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()


def never_equal() -> str:
    """A value that makes a signature unique (IS_CHANGED raised or returned NaN)."""
    return "always:" + uuid.uuid4().hex
