"""A ring buffer of recent log records for ``/internal/logs`` and the frontend's log panel.

Installed as a ``logging`` handler by the server; subscribed WebSocket clients receive each
new record as a ``logs`` event (``{entries: [{t, m}], size: {cols, rows}}``).
"""

from __future__ import annotations

import collections
import datetime
import logging
import shutil
from collections.abc import Callable
from typing import Any

__all__ = ["LogBuffer"]


class LogBuffer(logging.Handler):
    """Keeps the last ``capacity`` formatted records and forwards new ones to ``on_entry``."""

    def __init__(self, capacity: int = 1000, on_entry: Callable[[dict[str, str]], None] | None = None) -> None:
        super().__init__(level=logging.INFO)
        self.entries: collections.deque[dict[str, str]] = collections.deque(maxlen=capacity)
        self.on_entry = on_entry
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry = {"t": datetime.datetime.fromtimestamp(record.created).isoformat(), "m": self.format(record) + "\n"}
        except Exception:  # logging must never raise into the caller
            self.handleError(record)
            return
        self.entries.append(entry)
        if self.on_entry is not None:
            self.on_entry(entry)

    @staticmethod
    def size() -> dict[str, Any]:
        cols, rows = shutil.get_terminal_size((80, 24))
        return {"cols": cols, "rows": rows}

    def text(self) -> str:
        return "".join(f"{e['t']} - {e['m']}" for e in list(self.entries))
