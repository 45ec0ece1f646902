"""The channel through which ``nodeloom batch`` hands each run's item values to ``BatchInput``.

Values (image tensors included) never travel inside the prompt JSON: the runner puts them
in the engine's :class:`BatchItems` store (a per-engine component of
:class:`~nodeloom.services.Services`) under a fresh key, and writes only that key into the
``item`` input of every ``BatchInput`` node. The key is a constant of the prompt, so each
item gets its own cache entry while nodes upstream of nothing item-specific (model loaders)
stay cached across items. A shared leaf below the ``batch`` adapter and the ``data`` pack, so
neither imports the other: no engine, adapter or node imports here.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["COMPONENT", "BatchItems", "item_store"]

#: the name of the store among the engine's components
COMPONENT = "nodeloom.batch.items"


class BatchItems:
    """Thread-safe ``key → {"fields": {...}, "mask": tensor | None, "ids": [...]}`` store."""

    def __init__(self) -> None:
        self._values: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def put(self, key: str, fields: dict[str, Any], *, mask: Any = None, ids: list[str] | None = None) -> None:
        """Make ``fields`` reachable under ``key`` until :meth:`discard`."""
        with self._lock:
            self._values[key] = {"fields": dict(fields), "mask": mask, "ids": list(ids or [])}

    def get(self, key: str) -> dict[str, Any] | None:
        """The entry stored under ``key``, or None."""
        with self._lock:
            return self._values.get(key)

    def discard(self, key: str) -> None:
        """Forget ``key`` (no error when absent)."""
        with self._lock:
            self._values.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)


def item_store(services: Any) -> BatchItems:
    """The :class:`BatchItems` of an engine's services (created on first use)."""
    return services.component(COMPONENT, BatchItems)
