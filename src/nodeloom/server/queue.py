"""The prompt queue: ComfyUI's queue semantics on top of the durable :class:`JobStore`.

Numbers follow ComfyUI: a running counter, negated for ``front`` submissions, or the client's
own ``number``; the lowest number runs first. The worker blocks in :meth:`PromptQueue.take`;
every change calls the ``on_change`` listeners (the server broadcasts ``status``).
Thread-safe; no HTTP and no engine here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from nodeloom.server.store import DONE_STATES, Job, JobStore

__all__ = ["PromptQueue"]


class PromptQueue:
    """Queue, running set and history of one server.

    Args:
        store: the durable store.
        max_attempts: a job that was running when the server died this many times is failed
            instead of re-queued.
    """

    def __init__(self, store: JobStore, *, max_attempts: int = 3) -> None:
        self.store = store
        self.max_attempts = max_attempts
        self._cond = threading.Condition()
        self._listeners: list[Callable[[], None]] = []
        self.requeued, self.failed = store.recover(max_attempts)

    # ------------------------------------------------------------------ listeners
    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (from any thread) after every queue change."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[], None]) -> None:
        """Stop calling ``callback`` (no-op when it was not added)."""
        self._listeners = [cb for cb in self._listeners if cb != callback]

    def _changed(self) -> None:
        with self._cond:
            self._cond.notify_all()
        for cb in list(self._listeners):
            cb()

    # ------------------------------------------------------------------ submit / take
    def next_number(self, front: bool = False) -> int:
        """ComfyUI's queue number: the counter, negated to go before everything for ``front``."""
        n = self.store.next_counter("number")
        return -n if front else n

    def put(self, prompt_id: str, number: float, prompt: dict[str, Any], extra_data: dict[str, Any],
            targets: list[str]) -> Job:
        """Queue a validated prompt.

        Raises:
            ValueError: a job with ``prompt_id`` already exists.
        """
        if self.store.exists(prompt_id):
            raise ValueError(f"`prompt_id` {prompt_id!r} is already used by another job")
        job = Job(prompt_id=prompt_id, number=number, state="pending", prompt=prompt, extra_data=extra_data,
                  targets=list(targets), client_id=extra_data.get("client_id"), created=time.time())
        self.store.add(job)
        self._changed()
        return job

    def take(self, timeout: float | None = None, *, prefer: Callable[[dict[str, Any]], bool] | None = None,
             skip: Callable[[str], bool] | None = None) -> Job | None:
        """Block until a job is pending, mark it running and return it (None on timeout).

        ``prefer`` picks among the next pending jobs, ``skip`` leaves some of them to others
        (see :meth:`JobStore.claim_next`).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.store.claim_next(prefer, skip=skip)
            if job is not None:
                self._changed()
                return job
            with self._cond:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(timeout=remaining if remaining is not None else 1.0)

    def wake(self) -> None:
        """Wake a worker blocked in :meth:`take` (used on shutdown)."""
        with self._cond:
            self._cond.notify_all()

    def finish(self, job: Job, state: str, *, outputs: dict[str, Any], status: dict[str, Any],
               meta: dict[str, Any], error: dict[str, Any] | None = None) -> None:
        """Move a running job to history."""
        self.store.finish(job.prompt_id, state, outputs=outputs, status=status, meta=meta, error=error)
        self._changed()

    def requeue(self, job: Job) -> bool:
        """Re-queue a job whose worker died (the attempt counts); False when it failed instead."""
        again = self.store.requeue(job.prompt_id, self.max_attempts)
        self._changed()
        return again

    def release(self, job: Job) -> None:
        """Return a running job to the queue (shutdown), keeping its place."""
        self.store.release(job.prompt_id)
        self._changed()

    # ------------------------------------------------------------------ views
    def running(self) -> list[Job]:
        return self.store.jobs(["running"])

    def pending(self) -> list[Job]:
        return self.store.jobs(["pending"])

    def remaining(self) -> int:
        """Pending plus running jobs (ComfyUI's ``queue_remaining``)."""
        return self.store.count(["pending", "running"])

    def status(self) -> dict[str, Any]:
        """ComfyUI's ``{"exec_info": {"queue_remaining": n}}``."""
        return {"exec_info": {"queue_remaining": self.remaining()}}

    def get(self, prompt_id: str) -> Job | None:
        return self.store.get(prompt_id)

    # ------------------------------------------------------------------ edits
    def delete(self, prompt_ids: Iterable[str]) -> int:
        """Remove pending jobs by id; running and finished ones are left alone."""
        n = self.store.delete_pending(list(prompt_ids))
        if n:
            self._changed()
        return n

    def clear(self) -> int:
        """Remove every pending job."""
        n = self.store.delete_pending(None)
        self._changed()
        return n

    def history(self, *, max_items: int | None = None, offset: int = -1) -> dict[str, Any]:
        """ComfyUI's ``/history`` mapping, oldest first."""
        return {j.prompt_id: j.history_entry() for j in self.store.history(max_items=max_items, offset=offset)}

    def history_item(self, prompt_id: str) -> dict[str, Any]:
        """``{prompt_id: entry}`` or ``{}`` when the job is not finished or unknown."""
        job = self.store.get(prompt_id)
        if job is None or job.state not in DONE_STATES:
            return {}
        return {prompt_id: job.history_entry()}

    def delete_history(self, prompt_ids: Iterable[str] | None = None) -> int:
        n = self.store.delete_history(prompt_ids)
        self._changed()
        return n
