"""Jobs of the MCP server: a store with idempotency keys and a thread-backed runner.

A job is one submitted workflow. :class:`JobStore` keeps every job (in memory, mirrored to
SQLite when given a file) and maps client-supplied idempotency keys to jobs, so a retried
submission returns the first job instead of running twice — also across a restart, when
the store has a file. :class:`JobRunner` runs queued jobs one at a time on a worker thread
through :meth:`Engine.run`, turning engine events into progress snapshots and enforcing
the policy's run-time and output-size limits. No MCP SDK import here.
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodeloom.core.events import Event
from nodeloom.errors import NodeloomError, PolicyDeniedError, ValidationError
from nodeloom.limits import limit_named_in
from nodeloom.mcp.audit import arguments_digest
from nodeloom.mcp_client.policy import Policy, policy_rule

if TYPE_CHECKING:
    from nodeloom.engine import Engine

__all__ = ["TERMINAL", "Job", "JobRunner", "JobStore", "Progress"]

#: how many progress snapshots a job keeps for waiters that fell behind
HISTORY_LEN = 256

TERMINAL = frozenset({"success", "error", "interrupted", "cancelled"})
_COLUMNS = ("id", "key", "digest", "status", "who", "created", "started", "finished", "prompt", "result", "error")


@dataclass
class Progress:
    """A progress snapshot; ``seq`` grows on every change so waiters can tell news apart."""

    value: float = 0.0
    total: float = 1.0
    message: str = "queued"
    seq: int = 0


@dataclass
class Job:
    """One submitted workflow and what became of it."""

    id: str
    prompt: dict[str, Any]
    key: str | None = None
    digest: str = ""
    who: str = ""
    status: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    progress: Progress = field(default_factory=Progress)
    cancel_requested: bool = False
    done: threading.Event = field(default_factory=threading.Event, repr=False)
    #: set on every progress change and at the end; waiters clear it before waiting again
    changed: threading.Event = field(default_factory=threading.Event, repr=False)
    #: the latest snapshots, oldest first, so a waiter that fell behind still reports each step
    history: deque[Progress] = field(default_factory=lambda: deque(maxlen=HISTORY_LEN), repr=False)
    _finished_nodes: set[str] = field(default_factory=set, repr=False)
    _running: dict[str, float] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def terminal(self) -> bool:
        """The job has finished (successfully or not) and will not change again."""
        return self.status in TERMINAL

    def summary(self) -> dict[str, Any]:
        """A JSON-safe view (no prompt)."""
        return {
            "job_id": self.id,
            "status": self.status,
            "idempotency_key": self.key,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "progress": {"value": self.progress.value, "total": self.progress.total, "message": self.progress.message},
            "error": self.error,
        }

    def done_value(self) -> float:
        """Finished nodes plus the fractions of running ones (the progress value)."""
        return len(self._finished_nodes) + sum(self._running.values())

    def _set_progress(self, value: float, message: str) -> None:
        total = float(max(len(self.prompt), len(self._finished_nodes), 1))
        with self._lock:
            p = Progress(min(value, total), total, message, self.progress.seq + 1)
            self.progress = p
            self.history.append(p)
        self.changed.set()

    def progress_since(self, seq: int) -> list[Progress]:
        """Snapshots newer than ``seq`` still held (the latest :data:`HISTORY_LEN`), oldest first."""
        with self._lock:
            return [p for p in self.history if p.seq > seq]


class JobStore:
    """Every job of this server, by id and by idempotency key.

    Args:
        path: SQLite file mirroring the jobs (``None``: memory only). Jobs left queued or
            running by a previous process are marked ``interrupted`` when it is opened.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._keys: dict[str, str] = {}
        self._db: sqlite3.Connection | None = None
        #: jobs a previous process left queued or running (now marked interrupted); a runner
        #: whose jobs outlive the process (the server's queue) may take them up again
        self.recovered: list[Job] = []
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False)
            # WAL without a sync per commit: a record survives a process crash (not a power cut)
            # and a submission does not wait for the disk
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"CREATE TABLE IF NOT EXISTS jobs ({', '.join(c + ' TEXT' for c in _COLUMNS)}, PRIMARY KEY (id))")
            self._db.commit()
            self._load()

    def _load(self) -> None:
        assert self._db is not None
        for row in self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs ORDER BY created"):
            rec = dict(zip(_COLUMNS, row))
            job = Job(
                id=rec["id"], prompt=json.loads(rec["prompt"] or "{}"), key=rec["key"], digest=rec["digest"] or "", who=rec["who"] or "",
                status=rec["status"], created=float(rec["created"]), started=_float(rec["started"]), finished=_float(rec["finished"]),
                result=json.loads(rec["result"]) if rec["result"] else None, error=json.loads(rec["error"]) if rec["error"] else None,
            )
            if not job.terminal:
                self.recovered.append(job)
                job.status = "interrupted"
                job.error = {"type": "interrupted", "message": "the MCP server stopped before this job finished", "details": "", "extra_info": {}}
                self.save(job)
            job.done.set()
            self._jobs[job.id] = job
            if job.key:
                self._keys[job.key] = job.id

    def save(self, job: Job) -> None:
        """Write a job's record to the SQLite mirror (no-op in memory mode)."""
        if self._db is None:
            return
        values = (
            job.id, job.key, job.digest, job.status, job.who, repr(job.created), _opt(job.started), _opt(job.finished),
            json.dumps(job.prompt, default=str), json.dumps(job.result, default=str) if job.result is not None else None,
            json.dumps(job.error, default=str) if job.error is not None else None,
        )
        with self._lock:
            self._db.execute(f"INSERT OR REPLACE INTO jobs VALUES ({', '.join('?' * len(_COLUMNS))})", values)
            self._db.commit()

    def create(self, prompt: dict[str, Any], *, key: str | None, who: str) -> tuple[Job, bool]:
        """A new queued job, or the existing one for ``key``.

        Returns:
            ``(job, created)``; ``created`` is False when ``key`` was seen before.

        Raises:
            ValidationError: ``key`` was used before for a different workflow.
        """
        digest = arguments_digest(prompt)
        with self._lock:
            if key is not None and key in self._keys:
                job = self._jobs[self._keys[key]]
                if job.digest != digest:
                    raise ValidationError(
                        f"idempotency key `{key}` was already used for a different workflow (job `{job.id}`); use a new key",
                        type="idempotency_key_conflict",
                        extra_info={"job_id": job.id},
                    )
                return job, False
            job = Job(id=uuid.uuid4().hex, prompt=prompt, key=key, digest=digest, who=who)
            self._jobs[job.id] = job
            if key is not None:
                self._keys[key] = job.id
        self.save(job)
        return job, True

    def has_key(self, key: str) -> bool:
        """Whether a job was submitted with idempotency key ``key``."""
        with self._lock:
            return key in self._keys

    def get(self, job_id: str) -> Job:
        """The job with id ``job_id``.

        Raises:
            ValidationError: no such job.
        """
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise ValidationError(f"job `{job_id}` does not exist", type="unknown_job", extra_info={"job_id": job_id})
        return job

    def list(self, status: str | None = None, limit: int = 50) -> list[Job]:
        """Newest first, optionally only those with ``status``."""
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)
        return [j for j in jobs if status is None or j.status == status][: max(limit, 0)]

    def pending(self) -> int:
        """How many jobs are queued or running."""
        with self._lock:
            return sum(1 for j in self._jobs.values() if not j.terminal)

    def close(self) -> None:
        """Close the SQLite mirror (jobs stay readable in memory)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class RunnerBase(ABC):
    """What every job runner shares: submission with policy limits, progress from engine
    events, the run-time and output-size rules, and recording a job's end.

    Subclasses decide where a job runs (:meth:`_enqueue`), how it is cancelled and how a
    running one is stopped (:meth:`_interrupt`).

    Args:
        engine: the :class:`~nodeloom.engine.Engine` jobs run on.
        store: where jobs live.
        policy: run-time, queue and output-size limits.
    """

    def __init__(self, engine: Engine, store: JobStore, policy: Policy) -> None:
        self.engine = engine
        self.store = store
        self.policy = policy
        self._lock = threading.Lock()

    def submit(self, prompt: dict[str, Any], *, key: str | None = None, who: str = "") -> tuple[Job, bool]:
        """Queue ``prompt`` (already validated and policy-checked) unless ``key`` names a job.

        Returns:
            ``(job, created)``.

        Raises:
            PolicyDeniedError: rule ``limits.max_queued_jobs``.
            ValidationError: the key was used for a different workflow.
        """
        limit = self.policy.limits.max_queued_jobs
        if limit and self._waiting() >= limit and not (key is not None and self.store.has_key(key)):
            raise PolicyDeniedError(
                f"policy rule `limits.max_queued_jobs`: {limit} jobs are already waiting or running; try again later",
                extra_info={"rule": "limits.max_queued_jobs"},
            )
        job, created = self.store.create(prompt, key=key, who=who)
        if created:
            self._enqueue(job)
        return job, created

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job or interrupt a running one (no-op on finished jobs)."""
        job = self.store.get(job_id)
        with self._lock:
            if job.terminal:
                return job
            job.cancel_requested = True
        self._cancel(job)
        return job

    @abstractmethod
    def _cancel(self, job: Job) -> None:
        """Stop ``job`` (already marked ``cancel_requested``): drop it if it waits, interrupt it if it runs."""

    @abstractmethod
    def close(self) -> None:
        """Stop taking jobs."""

    # ------------------------------------------------------------------ for subclasses
    def _waiting(self) -> int:
        """Jobs waiting or running, for ``limits.max_queued_jobs``."""
        return self.store.pending()

    @abstractmethod
    def _enqueue(self, job: Job) -> None:
        """Hand a new job to whatever runs jobs."""

    @abstractmethod
    def _interrupt(self, job: Job) -> None:
        """Ask the engine to stop ``job`` if it is the one running."""

    def _started(self, job: Job) -> None:
        """Mark ``job`` running."""
        job.status, job.started = "running", time.time()
        job._set_progress(0.0, "started")
        self.store.save(job)

    def _run_timer(self, job: Job, deny: list[NodeloomError]) -> threading.Timer | None:
        """Start the ``limits.max_run_seconds`` timer of a job that just started (None: no limit)."""
        max_s = self.policy.limits.max_run_seconds
        if not max_s:
            return None
        timer = threading.Timer(max_s, self._time_out, args=(job, deny, max_s))
        timer.daemon = True
        timer.start()
        return timer

    def _time_out(self, job: Job, deny: list[NodeloomError], max_s: float) -> None:
        if not job.terminal:
            deny.append(PolicyDeniedError(f"policy rule `limits.max_run_seconds`: the run took longer than {max_s:g} s and was stopped", extra_info={"rule": "limits.max_run_seconds"}))
            self._interrupt(job)

    def _on_event(self, job: Job, event: Event, deny: list[NodeloomError]) -> None:
        data = event.data or {}
        if event.type == "execution_start" and job.cancel_requested:
            self._interrupt(job)
        elif event.type == "execution_cached":
            job._finished_nodes.update(str(n) for n in data.get("nodes", []))
            job._set_progress(job.done_value(), f"{len(data.get('nodes', []))} node(s) cached")
        elif event.type == "progress_state":
            for node, state in (data.get("nodes") or {}).items():
                if state.get("state") == "finished":
                    job._finished_nodes.add(str(node))
                    job._running.pop(str(node), None)
                elif state.get("state") == "running":
                    job._running[str(node)] = min(max(float(state.get("value", 0)) / float(state.get("max", 1) or 1), 0.0), 0.999)
            job._set_progress(job.done_value(), job.progress.message)
        elif event.type == "executing" and data.get("node") is not None:
            node = str(data["node"])
            job._set_progress(job.done_value(), f"running node {node} ({_class_of(job, node)})")
        elif event.type == "progress":
            node, value, total = str(data.get("node")), float(data.get("value", 0)), float(data.get("max", 1) or 1)
            job._running[node] = min(max(value / total, 0.0), 0.999)
            job._set_progress(job.done_value(), f"node {node} ({_class_of(job, node)}): step {int(value)}/{int(total)}")
        elif event.type == "executed":
            node = str(data.get("node"))
            job._finished_nodes.add(node)
            job._running.pop(node, None)
            job._set_progress(job.done_value(), f"node {node} ({_class_of(job, node)}) done")
            self._check_output_size(job, data.get("output") or {}, deny)

    def _check_output_size(self, job: Job, ui: dict[str, Any], deny: list[NodeloomError]) -> None:
        from nodeloom.mcp.outputs import image_size

        for ref in ui.get("images", []) or []:
            size = image_size(self.engine.paths, ref)
            if size is None:
                continue
            try:
                self.policy.check_pixels(size[0], size[1], where=f"output image `{ref.get('filename')}`")
            except PolicyDeniedError as exc:
                deny.append(exc)
                self._interrupt(job)
                return

    def _conclude(self, job: Job, status: str, summary: dict[str, Any] | None, error: dict[str, Any] | None,
                  deny: list[NodeloomError]) -> None:
        """Record how a run that reached the engine ended, with the policy's and the user's say first."""
        if deny:
            self._finish(job, "error", result=summary, error=deny[0].to_dict())
        elif job.cancel_requested and status != "success":
            self._finish(job, "cancelled", result=summary, error={"type": "cancelled", "message": "cancelled while running", "details": "", "extra_info": {}})
        else:
            self._finish(job, status, result=summary, error=_error_payload(error))

    def _finish(self, job: Job, status: str, *, result: dict[str, Any] | None = None, error: dict[str, Any] | None = None) -> None:
        job.status, job.finished = status, time.time()
        # ui outputs of custom nodes may hold non-JSON values; keep what a client can read
        job.result = json.loads(json.dumps(result, default=str)) if result is not None else None
        job.error = json.loads(json.dumps(error, default=str)) if error is not None else None
        if status == "success":
            job._set_progress(job.progress.total, "done")
        else:
            job._set_progress(job.progress.value, status)
        self.store.save(job)
        job.done.set()
        job.changed.set()


class JobRunner(RunnerBase):
    """Runs queued jobs one at a time through an engine on a daemon thread.

    Args:
        engine: the :class:`~nodeloom.engine.Engine` to run on.
        store: where jobs live.
        policy: run-time, queue and output-size limits.
    """

    def __init__(self, engine: Engine, store: JobStore, policy: Policy) -> None:
        super().__init__(engine, store, policy)
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._current: Job | None = None
        self._thread = threading.Thread(target=self._work, name="nodeloom-mcp-jobs", daemon=True)
        self._thread.start()

    def _cancel(self, job: Job) -> None:
        with self._lock:
            if job.terminal:
                return
            if job.status == "queued":
                self._finish(job, "cancelled", error={"type": "cancelled", "message": "cancelled before it started", "details": "", "extra_info": {}})
            elif self._current is job:
                self.engine.interrupt()

    def close(self) -> None:
        """Stop the worker after the running job (queued ones stay queued)."""
        self._queue.put(None)

    def _enqueue(self, job: Job) -> None:
        self._queue.put(job)

    def _interrupt(self, job: Job) -> None:
        if self._current is job:
            self.engine.interrupt()

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                if job.terminal:
                    continue
                self._current = job
                self._started(job)
            try:
                self._run(job)
            finally:
                with self._lock:
                    self._current = None

    def _run(self, job: Job) -> None:
        deny: list[NodeloomError] = []
        timer = self._run_timer(job, deny)
        try:
            result = self.engine.run(job.prompt, prompt_id=job.id, client_id=job.who or None,
                                     on_event=lambda ev: self._on_event(job, ev, deny), limits=self.policy.run_limits())
        except NodeloomError as exc:
            self._finish(job, "error", error=exc.to_dict())  # a ValidationError's carries its ``node_errors``
            return
        except Exception as exc:  # noqa: BLE001 - the job records any failure instead of killing the worker
            self._finish(job, "error", error={"type": type(exc).__name__, "message": str(exc), "details": "", "extra_info": {}})
            return
        finally:
            if timer is not None:
                timer.cancel()
        self._conclude(job, result.status, result.to_dict(), result.errors[0] if result.errors else None, deny)


def _class_of(job: Job, node: str) -> str:
    entry = job.prompt.get(node)
    return str(entry.get("class_type")) if isinstance(entry, dict) else "?"


def _error_payload(error: dict[str, Any] | None) -> dict[str, Any] | None:
    if error is None:
        return None
    message = error.get("exception_message") or error.get("message") or "execution failed"
    extra = {"node_id": error.get("node_id"), "node_type": error.get("node_type"), "exception_type": error.get("exception_type")}
    limit = limit_named_in(error)
    if limit is not None:  # a resource limit of the policy, refused at the node that broke it
        extra["rule"] = policy_rule(limit)
    return {
        "type": "policy_denied" if limit is not None else error.get("type", "execution_error"),
        "message": str(message),
        "details": str(error.get("details", "")),
        "extra_info": extra,
    }


def _float(value: Any) -> float | None:
    return float(value) if value not in (None, "") else None


def _opt(value: float | None) -> str | None:
    return repr(value) if value is not None else None
