"""The MCP audit log: one record per tool call (who, what, arguments digest, outcome, duration).

Two backends behind one :class:`AuditLog`: JSON Lines (append-only text, the default) and
SQLite (``.sqlite``/``.sqlite3``/``.db``). Arguments are never stored, only their SHA-256
digest over canonical JSON, so secrets in a workflow do not leak into the log.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["AuditLog", "AuditRecord", "arguments_digest"]

_SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")


def arguments_digest(arguments: Any) -> str:
    """SHA-256 of the canonical JSON of ``arguments`` (sorted keys, no spaces)."""
    blob = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass
class AuditRecord:
    """One audited tool call."""

    ts: float
    who: str
    tool: str
    args_sha256: str
    outcome: str  # "ok" | "error" | "denied"
    duration_ms: float
    error_type: str | None = None
    detail: str | None = None


class AuditLog:
    """Append-only audit records in a JSONL or SQLite file (thread-safe).

    Args:
        path: the log file; its suffix picks the backend. ``None`` keeps records in memory only.
    """

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._memory: list[AuditRecord] = []
        self._db: sqlite3.Connection | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.suffix.lower() in _SQLITE_SUFFIXES:
                self._db = sqlite3.connect(str(self.path), check_same_thread=False)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS audit (ts REAL, who TEXT, tool TEXT, args_sha256 TEXT,"
                    " outcome TEXT, duration_ms REAL, error_type TEXT, detail TEXT)"
                )
                self._db.commit()

    def record(self, who: str, tool: str, arguments: Any, outcome: str, duration_s: float, *, error_type: str | None = None, detail: str | None = None) -> AuditRecord:
        """Append one record and return it."""
        rec = AuditRecord(time.time(), who, tool, arguments_digest(arguments), outcome, round(duration_s * 1000, 3), error_type, detail)
        with self._lock:
            if self._db is not None:
                self._db.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)", tuple(asdict(rec).values()))
                self._db.commit()
            elif self.path is not None:
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(asdict(rec), ensure_ascii=False) + "\n")
            else:
                self._memory.append(rec)
        return rec

    def records(self) -> list[AuditRecord]:
        """Every record so far, oldest first."""
        with self._lock:
            if self._db is not None:
                rows = self._db.execute("SELECT * FROM audit ORDER BY rowid").fetchall()
                return [AuditRecord(*row) for row in rows]
            if self.path is not None:
                if not self.path.exists():
                    return []
                lines = self.path.read_text(encoding="utf-8").splitlines()
                return [AuditRecord(**json.loads(line)) for line in lines if line.strip()]
            return list(self._memory)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
