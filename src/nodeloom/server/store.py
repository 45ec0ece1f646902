"""The durable job store: queue, running state, history and output index in one SQLite file.

SQLite in WAL mode with ``synchronous=NORMAL`` survives a killed process (``kill -9``): every
committed write is in the WAL before the call returns. One connection guarded by a lock is
shared by the HTTP loop and the worker thread; each call is one short transaction. A write the
database refuses (disk full, read-only, I/O error) raises :class:`StorageError` and leaves the
store usable: the transaction is rolled back and the next call tries again.
Everything stored is standard JSON (no ``NaN``/``Infinity``), so ``/history`` always parses.
Owns no threads and knows nothing of HTTP or the engine.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeloom.errors import NodeloomError

__all__ = ["DONE_STATES", "Job", "JobStore", "StorageError", "dumps_finite"]

#: states of a finished job; "pending" and "running" are the live ones.
DONE_STATES = ("success", "error", "interrupted", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    prompt_id    TEXT NOT NULL UNIQUE,
    number       REAL NOT NULL,
    state        TEXT NOT NULL,
    prompt       TEXT NOT NULL,
    extra_data   TEXT NOT NULL,
    targets      TEXT NOT NULL,
    client_id    TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    created      REAL NOT NULL,
    started      REAL,
    finished     REAL,
    done_seq     INTEGER,
    outputs      TEXT,
    status       TEXT,
    meta         TEXT,
    error        TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, number, seq);
CREATE INDEX IF NOT EXISTS jobs_done ON jobs(done_seq);
CREATE TABLE IF NOT EXISTS outputs (
    prompt_id  TEXT NOT NULL,
    node_id    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    idx        INTEGER NOT NULL,
    filename   TEXT NOT NULL,
    subfolder  TEXT NOT NULL,
    type       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outputs_prompt ON outputs(prompt_id);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

#: extra_data keys ComfyUI never keeps in history (credentials of API nodes).
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")


@dataclass
class Job:
    """One queued, running or finished prompt."""

    prompt_id: str
    number: float
    state: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    targets: list[str]
    client_id: str | None = None
    attempts: int = 0
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None

    def queue_item(self) -> list[Any]:
        """ComfyUI's queue tuple ``[number, prompt_id, prompt, extra_data, outputs_to_execute]``."""
        number: float | int = int(self.number) if float(self.number).is_integer() else self.number
        return [number, self.prompt_id, self.prompt, self.extra_data, self.targets]

    def history_entry(self) -> dict[str, Any]:
        """ComfyUI's history entry ``{prompt, outputs, status, meta}``."""
        return {"prompt": self.queue_item(), "outputs": self.outputs, "status": self.status, "meta": self.meta}


class StorageError(NodeloomError):
    """The queue database refused a write (disk full, read-only file system, I/O error)."""

    type = "storage_error"


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def dumps_finite(value: Any) -> str:
    """``value`` as standard JSON; non-finite floats a node reported become ``null``.

    Request numbers are refused at the HTTP boundary; this only guards what nodes produce
    (a ``ui`` value of ``nan``), which browsers could not parse otherwise.
    """
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(value), allow_nan=False)


def _loads(text: str | None, default: Any) -> Any:
    return default if text is None else json.loads(text)


#: where a non-finite queue number stored before numbers were checked is shown
_NUMBER_BOUND = float(2**53)


def _row_to_job(row: sqlite3.Row) -> Job:
    number = row["number"]
    if not math.isfinite(number):  # NaN sorts first, ±Infinity at its end: the same order, finite
        number = _NUMBER_BOUND if number > 0 else -_NUMBER_BOUND
    return Job(
        prompt_id=row["prompt_id"],
        number=number,
        state=row["state"],
        prompt=json.loads(row["prompt"]),
        extra_data=json.loads(row["extra_data"]),
        targets=json.loads(row["targets"]),
        client_id=row["client_id"],
        attempts=row["attempts"],
        created=row["created"],
        started=row["started"],
        finished=row["finished"],
        outputs=_loads(row["outputs"], {}),
        status=_loads(row["status"], None),
        meta=_loads(row["meta"], {}),
        error=_loads(row["error"], None),
    )


class JobStore:
    """SQLite persistence of jobs and their results.

    Args:
        path: the database file (created with its folder), or ``":memory:"``.
        history_limit: finished jobs kept; the oldest are dropped beyond it.
    """

    def __init__(self, path: str | Path, *, history_limit: int = 10000) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self.history_limit = history_limit
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; database failures become :class:`StorageError`."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except (sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
                if isinstance(exc, sqlite3.IntegrityError):
                    raise
                raise StorageError(f"the queue database `{self.path}` refused a write: {exc}",
                                   details=type(exc).__name__) from exc

    # ------------------------------------------------------------------ counters
    def next_counter(self, name: str) -> int:
        """Return and advance a persistent counter (starts at 0)."""
        with self._tx() as db:
            row = db.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
            value = row["value"] if row else 0
            db.execute("INSERT OR REPLACE INTO counters(name, value) VALUES (?, ?)", (name, value + 1))
            return int(value)

    # ------------------------------------------------------------------ queue
    def add(self, job: Job) -> None:
        """Insert a pending job.

        Raises:
            sqlite3.IntegrityError: a job with this prompt id already exists.
        """
        with self._tx() as db:
            db.execute(
                "INSERT INTO jobs(prompt_id, number, state, prompt, extra_data, targets, client_id, created)"
                " VALUES (?, ?, 'pending', ?, ?, ?, ?, ?)",
                (job.prompt_id, job.number, dumps_finite(job.prompt), dumps_finite(job.extra_data),
                 dumps_finite(job.targets), job.client_id, job.created or time.time()),
            )

    def exists(self, prompt_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM jobs WHERE prompt_id=?", (prompt_id,)).fetchone() is not None

    def claim_next(self, prefer: Callable[[dict[str, Any]], bool] | None = None, *, window: int = 32,
                   skip: Callable[[str], bool] | None = None) -> Job | None:
        """Mark the first pending job (lowest number, then oldest) running and return it.

        Args:
            prefer: when given, the first of the next ``window`` pending jobs whose prompt it
                accepts is taken instead (a worker that already holds the prompt's models).
            skip: when given, pending jobs whose ``prompt_id`` it accepts are left for others
                (a worker that hung on them); only the next ``window`` jobs are looked at.
        """
        with self._tx() as db:
            rows = db.execute("SELECT * FROM jobs WHERE state='pending' ORDER BY number, seq LIMIT ?",
                              (window if prefer is not None or skip is not None else 1,)).fetchall()
            if skip is not None:
                rows = [r for r in rows if not skip(r["prompt_id"])]
            if not rows:
                return None
            row = rows[0]
            if prefer is not None:
                row = next((r for r in rows if prefer(json.loads(r["prompt"]))), row)
            db.execute(
                "UPDATE jobs SET state='running', attempts=attempts+1, started=? WHERE prompt_id=?",
                (time.time(), row["prompt_id"]),
            )
            job = _row_to_job(row)
        job.state, job.attempts = "running", job.attempts + 1
        return job

    def release(self, prompt_id: str) -> None:
        """Put a running job back in the queue at its old place, without counting an attempt
        (the server stopped it on purpose, e.g. on shutdown)."""
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET state='pending', started=NULL, attempts=MAX(attempts-1, 0)"
                " WHERE prompt_id=? AND state='running'",
                (prompt_id,),
            )

    def requeue(self, prompt_id: str, max_attempts: int) -> bool:
        """Put a running job whose worker died back in the queue, counting the attempt.

        Returns:
            False when it already ran ``max_attempts`` times: it is then failed like a job
            that crashed the server that often (see :meth:`recover`).
        """
        job = self.get(prompt_id)
        if job is None or job.state != "running":
            return True
        if job.attempts >= max_attempts:
            self._fail_crashed(prompt_id, job.attempts, max_attempts)
            return False
        with self._tx() as db:
            db.execute("UPDATE jobs SET state='pending', started=NULL WHERE prompt_id=? AND state='running'",
                       (prompt_id,))
        return True

    def jobs(self, states: Iterable[str]) -> list[Job]:
        """Jobs in ``states``, live ones in queue order, finished ones in completion order."""
        states = list(states)
        marks = ",".join("?" * len(states))
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY done_seq, number, seq", states
            ).fetchall()
        return [_row_to_job(r) for r in rows]

    def page(self, states: Iterable[str], *, limit: int, offset: int) -> tuple[list[Job], int]:
        """One page of jobs in ``states``: running, then pending in queue order, then finished
        newest first. Returns ``(jobs, total)``."""
        states = list(states)
        marks = ",".join("?" * len(states))
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM jobs WHERE state IN ({marks})", states).fetchone()[0]
            rows = self._db.execute(
                f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY"
                " CASE state WHEN 'running' THEN 0 WHEN 'pending' THEN 1 ELSE 2 END,"
                " CASE WHEN done_seq IS NULL THEN number ELSE -done_seq END, seq LIMIT ? OFFSET ?",
                (*states, limit, offset),
            ).fetchall()
        return [_row_to_job(r) for r in rows], int(total)

    def get(self, prompt_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE prompt_id=?", (prompt_id,)).fetchone()
        return _row_to_job(row) if row else None

    def count(self, states: Iterable[str]) -> int:
        states = list(states)
        marks = ",".join("?" * len(states))
        with self._lock:
            return int(self._db.execute(f"SELECT COUNT(*) FROM jobs WHERE state IN ({marks})", states).fetchone()[0])

    def delete_pending(self, prompt_ids: Iterable[str] | None = None) -> int:
        """Remove pending jobs (all of them when ``prompt_ids`` is None); returns how many."""
        with self._tx() as db:
            if prompt_ids is None:
                return db.execute("DELETE FROM jobs WHERE state='pending'").rowcount
            n = 0
            for pid in prompt_ids:
                n += db.execute("DELETE FROM jobs WHERE state='pending' AND prompt_id=?", (pid,)).rowcount
            return n

    def finish(self, prompt_id: str, state: str, *, outputs: dict[str, Any], status: dict[str, Any],
               meta: dict[str, Any], error: dict[str, Any] | None = None) -> None:
        """Record a finished job, index its output files and prune old history."""
        if state not in DONE_STATES:
            raise ValueError(f"`state` must be one of {DONE_STATES}, got {state!r}")
        with self._tx() as db:
            row = db.execute("SELECT extra_data FROM jobs WHERE prompt_id=?", (prompt_id,)).fetchone()
            if row is None:
                return
            extra = json.loads(row["extra_data"])
            for key in SENSITIVE_EXTRA_DATA_KEYS:
                extra.pop(key, None)
            done_seq = self._bump(db, "done_seq")
            db.execute(
                "UPDATE jobs SET state=?, finished=?, done_seq=?, outputs=?, status=?, meta=?, error=?, extra_data=?"
                " WHERE prompt_id=?",
                (state, time.time(), done_seq, dumps_finite(outputs), dumps_finite(status), dumps_finite(meta),
                 dumps_finite(error) if error is not None else None, dumps_finite(extra), prompt_id),
            )
            db.executemany(
                "INSERT INTO outputs(prompt_id, node_id, kind, idx, filename, subfolder, type) VALUES (?,?,?,?,?,?,?)",
                list(_output_files(prompt_id, outputs)),
            )
            self._prune(db)

    @staticmethod
    def _bump(db: sqlite3.Connection, name: str) -> int:
        row = db.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
        value = (row["value"] if row else 0) + 1
        db.execute("INSERT OR REPLACE INTO counters(name, value) VALUES (?, ?)", (name, value))
        return int(value)

    def _prune(self, db: sqlite3.Connection) -> None:
        marks = ",".join("?" * len(DONE_STATES))
        n = db.execute(f"SELECT COUNT(*) FROM jobs WHERE state IN ({marks})", DONE_STATES).fetchone()[0]
        extra = n - self.history_limit
        if extra > 0:
            old = db.execute(
                f"SELECT prompt_id FROM jobs WHERE state IN ({marks}) ORDER BY done_seq LIMIT ?", (*DONE_STATES, extra)
            ).fetchall()
            self._delete_done(db, [r["prompt_id"] for r in old])

    @staticmethod
    def _delete_done(db: sqlite3.Connection, prompt_ids: list[str]) -> int:
        marks = ",".join("?" * len(DONE_STATES))
        n = 0
        for pid in prompt_ids:
            n += db.execute(f"DELETE FROM jobs WHERE prompt_id=? AND state IN ({marks})", (pid, *DONE_STATES)).rowcount
            db.execute("DELETE FROM outputs WHERE prompt_id=?", (pid,))
        return n

    # ------------------------------------------------------------------ history
    def history(self, *, max_items: int | None = None, offset: int = -1) -> list[Job]:
        """Finished jobs oldest first, ComfyUI's paging: a negative offset with ``max_items``
        means "the last ``max_items``"."""
        marks = ",".join("?" * len(DONE_STATES))
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM jobs WHERE state IN ({marks})", DONE_STATES).fetchone()[0]
            if offset < 0:
                offset = total - max_items if max_items is not None else 0
            offset = max(offset, 0)
            limit = -1 if max_items is None else max_items
            rows = self._db.execute(
                f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY done_seq LIMIT ? OFFSET ?",
                (*DONE_STATES, limit, offset),
            ).fetchall()
        return [_row_to_job(r) for r in rows]

    def delete_history(self, prompt_ids: Iterable[str] | None = None) -> int:
        """Forget finished jobs (all when ``prompt_ids`` is None)."""
        with self._tx() as db:
            if prompt_ids is None:
                marks = ",".join("?" * len(DONE_STATES))
                ids = [r["prompt_id"] for r in db.execute(f"SELECT prompt_id FROM jobs WHERE state IN ({marks})", DONE_STATES)]
            else:
                ids = list(prompt_ids)
            return self._delete_done(db, ids)

    def output_files(self, prompt_id: str) -> list[dict[str, Any]]:
        """The indexed output files of one job, in node and slot order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT node_id, kind, idx, filename, subfolder, type FROM outputs WHERE prompt_id=? ORDER BY rowid",
                (prompt_id,),
            ).fetchall()
        return [dict(r) for r in rows]

    # ------------------------------------------------------------------ recovery
    def recover(self, max_attempts: int) -> tuple[list[str], list[str]]:
        """After a crash: re-queue jobs left running, or fail those that crashed ``max_attempts`` times.

        Returns:
            ``(requeued_ids, failed_ids)``.
        """
        with self._lock:
            rows = self._db.execute("SELECT prompt_id, attempts FROM jobs WHERE state='running'").fetchall()
        requeued, failed = [], []
        for row in rows:
            pid, attempts = row["prompt_id"], row["attempts"]
            if attempts < max_attempts:
                with self._tx() as db:
                    db.execute("UPDATE jobs SET state='pending', started=NULL WHERE prompt_id=?", (pid,))
                requeued.append(pid)
            else:
                self._fail_crashed(pid, attempts, max_attempts)
                failed.append(pid)
        return requeued, failed

    def _fail_crashed(self, pid: str, attempts: int, max_attempts: int) -> None:
        """Fail a job that was running during ``attempts`` crashes (of the server or its worker)."""
        message = (f"the server stopped {attempts} times while this prompt was running; "
                   f"it is not retried after {max_attempts} attempts")
        err = {"type": "server_crashed", "message": message, "details": "", "extra_info": {"attempts": attempts}}
        status = {"status_str": "error", "completed": False,
                  "messages": [["execution_error", {"prompt_id": pid, "exception_message": message,
                                                    "exception_type": "ServerCrashed", "node_id": None,
                                                    "node_type": None, "executed": [], "traceback": [],
                                                    "timestamp": int(time.time() * 1000)}]]}
        self.finish(pid, "error", outputs={}, status=status, meta={}, error=err)


def _output_files(prompt_id: str, outputs: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
    for node_id, ui in outputs.items():
        if not isinstance(ui, dict):
            continue
        for kind, items in ui.items():
            if not isinstance(items, list):
                continue
            for idx, item in enumerate(items):
                if isinstance(item, dict) and isinstance(item.get("filename"), str):
                    yield (prompt_id, str(node_id), kind, idx, item["filename"], str(item.get("subfolder", "")),
                           str(item.get("type", "output")))
