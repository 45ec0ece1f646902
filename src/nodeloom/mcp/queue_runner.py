"""MCP jobs that run through a nodeloom server's durable queue (``nodeloom serve --mcp``).

When the MCP server lives inside ``nodeloom serve``, an agent's job is an ordinary prompt of
that server: it is queued in the server's SQLite queue (so ``/queue``, ``/history``, the
frontend's queue panel and its WebSocket progress show it), run by the server's one worker
between the browser's prompts, and kept in its history. :class:`QueueJobRunner` keeps the
MCP side — idempotency keys, progress snapshots, the policy's run-time and output-size rules —
by following the engine's events for its prompt ids and the queue's changes.

No HTTP here: the runner uses the server's queue and worker objects directly, through the
:class:`ServerQueue` and :class:`ServerWorker` protocols (so this adapter imports nothing of
the server; the CLI wires the two together in :mod:`nodeloom.cli.serve`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from nodeloom.core.events import Event
from nodeloom.errors import NodeloomError
from nodeloom.limits import LIMITS_EXTRA_KEY
from nodeloom.mcp.jobs import Job, JobStore, RunnerBase
from nodeloom.mcp_client.policy import Policy

if TYPE_CHECKING:
    from nodeloom.engine import Engine

__all__ = ["QueueJobRunner", "QueuedPrompt", "ServerQueue", "ServerWorker"]

#: states of a prompt the server has not finished with; every other state is final
_LIVE_STATES = ("pending", "running")


class QueuedPrompt(Protocol):
    """A prompt in the server's queue, as the runner reads it."""

    @property
    def state(self) -> str: ...
    @property
    def started(self) -> float | None: ...
    @property
    def finished(self) -> float | None: ...
    @property
    def error(self) -> dict[str, Any] | None: ...
    @property
    def outputs(self) -> dict[str, Any]: ...


class ServerQueue(Protocol):
    """What the runner uses of the server's prompt queue."""

    def add_listener(self, callback: Callable[[], None]) -> None: ...
    def remove_listener(self, callback: Callable[[], None]) -> None: ...
    def remaining(self) -> int: ...
    def next_number(self, front: bool = False) -> int: ...
    def put(self, prompt_id: str, number: float, prompt: dict[str, Any], extra_data: dict[str, Any],
            targets: list[str]) -> Any: ...
    def get(self, prompt_id: str) -> QueuedPrompt | None: ...
    def delete(self, prompt_ids: Iterable[str]) -> int: ...


class ServerWorker(Protocol):
    """What the runner uses of the server's worker."""

    def interrupt(self, prompt_id: str | None = None) -> bool: ...


class _Live:
    """A job of this runner that has not finished yet."""

    __slots__ = ("job", "deny", "timer")

    def __init__(self, job: Job) -> None:
        self.job = job
        self.deny: list[NodeloomError] = []
        self.timer: threading.Timer | None = None


class QueueJobRunner(RunnerBase):
    """Submits MCP jobs to a server's prompt queue and follows them to the end.

    Args:
        engine: the server's engine.
        store: the MCP job store (idempotency keys, job records).
        policy: the MCP policy.
        queue: the server's prompt queue (:class:`~nodeloom.server.queue.PromptQueue`).
        worker: the server's worker (:class:`~nodeloom.server.worker.Worker`), for interrupts.

    Jobs left unfinished by an earlier process are picked up again: the server's queue keeps
    running them after a restart, and their MCP records follow.
    """

    def __init__(self, engine: Engine, store: JobStore, policy: Policy, *, queue: ServerQueue,
                 worker: ServerWorker) -> None:
        super().__init__(engine, store, policy)
        self.queue = queue
        self.worker = worker
        self._live: dict[str, _Live] = {}
        self._closed = False
        for job in store.recovered:
            self._reattach(job)
        self._unsubscribe = engine.subscribe(self._on_engine_event)
        queue.add_listener(self._on_queue_change)
        self._on_queue_change()  # jobs that ended while nobody listened

    # ------------------------------------------------------------------ RunnerBase
    def _waiting(self) -> int:
        return int(self.queue.remaining())  # the server's whole queue: the browser's prompts count too

    def _enqueue(self, job: Job) -> None:
        with self._lock:
            self._live[job.id] = _Live(job)
        # no client id: like a prompt queued without one, its events reach every browser
        # the policy's resource limits travel with the job; the server's worker applies the stricter
        extra = {"client_id": None, "mcp_job": True, LIMITS_EXTRA_KEY: self.policy.run_limits().to_dict()}
        self.queue.put(job.id, self.queue.next_number(), job.prompt, extra, [])

    def _interrupt(self, job: Job) -> None:
        self.worker.interrupt(job.id)

    def _cancel(self, job: Job) -> None:
        """Take a waiting job off the server's queue, or interrupt it while it runs."""
        queued = self.queue.get(job.id)
        if queued is not None and queued.state == "pending":
            self.queue.delete([job.id])  # the queue's change listener records the cancellation
        else:
            self.worker.interrupt(job.id)

    def close(self) -> None:
        """Stop following the server (queued jobs stay in its queue and still run)."""
        self._closed = True
        self._unsubscribe()
        self.queue.remove_listener(self._on_queue_change)
        with self._lock:
            for live in self._live.values():
                if live.timer is not None:
                    live.timer.cancel()

    # ------------------------------------------------------------------ following the server
    def _reattach(self, job: Job) -> None:
        """Follow again a job the previous process left unfinished, if the server still has it."""
        queued = self.queue.get(job.id)
        if queued is None:
            return  # never reached the server's queue: it stays interrupted
        job.status, job.error = ("running" if queued.state == "running" else "queued"), None
        job.done.clear()
        self.store.save(job)
        self._live[job.id] = _Live(job)

    def _on_engine_event(self, event: Event) -> None:
        if self._closed or event.prompt_id is None:
            return
        live = self._live.get(event.prompt_id)
        if live is None:
            return
        if event.type == "execution_start":
            with self._lock:
                if live.job.status != "running":
                    self._started(live.job)
                live.timer = self._run_timer(live.job, live.deny)
        self._on_event(live.job, event, live.deny)

    def _on_queue_change(self) -> None:
        if self._closed:
            return
        with self._lock:
            ids = list(self._live)
        for job_id in ids:
            queued = self.queue.get(job_id)
            if queued is not None and queued.state in _LIVE_STATES:
                continue
            with self._lock:
                live = self._live.pop(job_id, None)
            if live is None:
                continue  # another thread concluded it
            if live.timer is not None:
                live.timer.cancel()
            self._settle(live, queued)

    def _settle(self, live: _Live, queued: QueuedPrompt | None) -> None:
        job = live.job
        if queued is None:  # deleted from the server's queue before it ran (here or by a user)
            why = "cancelled before it started" if job.cancel_requested else "removed from the server's queue before it ran"
            self._finish(job, "cancelled", error={"type": "cancelled", "message": why, "details": "", "extra_info": {}})
            return
        if job.started is None:
            job.started = queued.started
        error = dict(queued.error) if queued.error else None
        summary = {
            "prompt_id": job.id, "status": queued.state, "outputs": dict(queued.outputs or {}),
            "errors": [error] if error else [], "node_errors": (error or {}).get("node_errors") or {},
            "wall_s": (queued.finished - queued.started) if queued.finished and queued.started else None,
        }
        self._conclude(job, queued.state, summary, error, live.deny)
