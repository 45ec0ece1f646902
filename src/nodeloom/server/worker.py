"""The worker thread: takes jobs from the durable queue and runs them on the engine.

The HTTP loop never runs a prompt; it only queues. The worker records every result in the
store (history + output index) and turns engine outcomes into ComfyUI's history ``status``.
``interrupt`` asks the engine to stop the running prompt at its next node boundary or
progress tick; ``request_free`` frees models/memory between prompts.

The worker outlives storage failures: when the queue database refuses a write (disk full),
the prompt fails with a ``storage_error`` its client is told about, and the worker retries
with a bounded back-off until the database accepts writes again, then goes on with the queue.
A result is stored before its client hears the end-of-prompt marker, so a prompt whose
completion anyone saw never runs again after a crash.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

from nodeloom.errors import NodeloomError, ValidationError
from nodeloom.server.queue import PromptQueue
from nodeloom.server.store import Job, StorageError

if TYPE_CHECKING:
    from nodeloom.engine import Engine
    from nodeloom.limits import RunLimits

__all__ = ["Worker"]

log = logging.getLogger(__name__)

#: longest wait between two tries of a refused database write (seconds)
MAX_STORAGE_BACKOFF = 2.0
#: test-only: a fault point name (``after_run``, ``after_record``) at which the process kills
#: itself with SIGKILL, so crash tests can stop the server at an exact moment
FAULT_ENV = "NODELOOM_TEST_FAULT"


def _fault_point(name: str) -> None:
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _now_ms() -> int:
    return int(time.time() * 1000)


class Worker:
    """Runs queued prompts one after another on a daemon thread.

    Args:
        engine: the engine (``run``, ``interrupt``, ``free``).
        queue: the prompt queue.
        limits: the server's :class:`nodeloom.limits.RunLimits` for every prompt (tightened by
            limits a prompt carries in its ``extra_data``), or None.
        hub: where the worker's own events go: errors raised before the engine started a
            run, and the end-of-prompt marker, sent after the result is in history.
    """

    def __init__(self, engine: Engine, queue: PromptQueue, hub: Any, *, limits: RunLimits | None = None) -> None:
        self.engine = engine
        self.queue = queue
        self.hub = hub
        self.limits = limits
        self._backoff = 0.0
        self.current: Job | None = None
        self._stop = threading.Event()
        self._free_flags: dict[str, bool] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="nodeloom-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop after the running prompt (interrupting it) and join the thread.

        Returns:
            False when a node ignored the interruption and the thread is still running.
        """
        self._stop.set()
        if self.current is not None:
            self.engine.interrupt()
        self.queue.wake()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ------------------------------------------------------------------ controls
    def interrupt(self, prompt_id: str | None = None) -> bool:
        """Interrupt the running prompt (only if it is ``prompt_id`` when given)."""
        job = self.current
        if job is None or (prompt_id is not None and job.prompt_id != prompt_id):
            return False
        self.engine.interrupt()
        return True

    def request_free(self, *, unload_models: bool, free_memory: bool) -> None:
        """Free models / memory once the running prompt (if any) is done."""
        with self._lock:
            self._free_flags["unload_models"] = self._free_flags.get("unload_models", False) or unload_models
            self._free_flags["free_memory"] = self._free_flags.get("free_memory", False) or free_memory

    def _apply_free(self) -> None:
        with self._lock:
            flags, self._free_flags = self._free_flags, {}
        if flags:
            try:
                self.engine.free(unload_models=flags.get("unload_models", False), free_memory=flags.get("free_memory", False))
            except Exception:  # noqa: BLE001 - a failed unload must not stop the queue
                log.exception("freeing models/memory failed")

    # ------------------------------------------------------------------ loop
    def _loop(self) -> None:
        while not self._stop.is_set():
            self._apply_free()
            try:
                job = self.queue.take(timeout=0.5)
            except StorageError as exc:
                self._storage_wait(exc)
                continue
            if job is None:
                continue
            self._backoff = 0.0
            self.current = job
            done = False
            try:
                done = self._run(job)
            finally:
                self.current = None
                if done:
                    _fault_point("after_record")
                    self.hub.publish_prompt_done(job.prompt_id, job.client_id)
                else:
                    self.hub.drop_held(job.prompt_id)

    def _storage_wait(self, exc: StorageError) -> None:
        """Wait (bounded, doubling) after a refused database write; the stop event cuts it short."""
        if self._backoff == 0.0:
            log.error("the queue database refuses writes; retrying until it accepts them: %s", exc.message)
        self._backoff = min(MAX_STORAGE_BACKOFF, max(0.05, self._backoff * 2))
        self._stop.wait(self._backoff)

    def _run(self, job: Job) -> bool:
        """Run one job; returns False when it went back to the queue instead of to history."""
        kwargs: dict[str, Any] = {}
        try:
            if self.limits is not None:
                kwargs["limits"] = self.limits.for_extra_data(job.extra_data)
            result = self.engine.run(
                job.prompt, prompt_id=job.prompt_id, client_id=job.client_id,
                extra_data=job.extra_data, targets=job.targets or None, **kwargs,
            )
        except ValidationError as exc:
            return self._fail(job, exc.to_dict())  # carries ``node_errors`` when there are any
        except Exception as exc:  # the engine boundary: any failure is recorded, the worker goes on
            log.exception("prompt %s failed outside node execution", job.prompt_id)
            payload = NodeloomError(str(exc) or type(exc).__name__, details=traceback.format_exc()).to_dict()
            payload["type"] = type(exc).__name__
            return self._fail(job, payload)
        _fault_point("after_run")
        if result.status == "interrupted" and self._stop.is_set():
            # stopped by a server shutdown, not by a user: it runs again after the restart
            return self._release(job)
        state = result.status if result.status in ("success", "error", "interrupted") else "error"
        status = {
            "status_str": "success" if state == "success" else "error",
            "completed": state == "success",
            "messages": list(result.messages),
        }
        return self._record(job, state, outputs=dict(result.outputs), status=status, meta=dict(result.meta),
                            error=result.errors[0] if result.errors else None)

    def _release(self, job: Job) -> bool:
        try:
            self.queue.release(job)
        except StorageError as exc:  # it stays "running" in the database: recovered at the next start
            log.error("could not put prompt %s back in the queue: %s", job.prompt_id, exc.message)
        return False

    def _record(self, job: Job, state: str, **result: Any) -> bool:
        """Store a finished job; when the database refuses, fail it with a storage error instead.

        Returns:
            True once the job is in history; False when the worker stopped before the database
            accepted any write (the job is then still "running" and recovered at the next start).
        """
        try:
            self.queue.finish(job, state, **result)
            self._backoff = 0.0
            return True
        except StorageError as exc:
            log.error("could not store the result of prompt %s: %s", job.prompt_id, exc.message)
            failure = StorageError(f"the result of this prompt could not be stored: {exc.message}",
                                   details=exc.details).to_dict()
        self.hub.drop_held(job.prompt_id)  # the engine's outcome was never stored: it is not sent
        self._publish_failure(job, failure)
        status = {"status_str": "error", "completed": False, "messages": [["execution_error", self._failure_data(job, failure)]]}
        while not self._stop.is_set():
            try:
                self.queue.finish(job, "error", outputs={}, status=status, meta={}, error=failure)
            except StorageError as exc:
                self._storage_wait(exc)
                continue
            self._backoff = 0.0
            log.warning("the queue database accepts writes again; prompt %s is recorded as failed", job.prompt_id)
            return True
        return False

    @staticmethod
    def _failure_data(job: Job, error: dict[str, Any]) -> dict[str, Any]:
        return {
            "prompt_id": job.prompt_id, "node_id": None, "node_type": None, "executed": [],
            "exception_message": error.get("message", ""), "exception_type": error.get("type", ""),
            "traceback": [], "current_inputs": {}, "current_outputs": {}, "timestamp": _now_ms(),
        }

    def _publish_failure(self, job: Job, error: dict[str, Any]) -> dict[str, Any]:
        data = self._failure_data(job, error)
        self.hub.publish("execution_error", data, job.client_id)
        return data

    def _fail(self, job: Job, error: dict[str, Any]) -> bool:
        """Record a prompt that could not run at all and tell its client."""
        data = self._publish_failure(job, error)
        status = {"status_str": "error", "completed": False, "messages": [["execution_error", data]]}
        return self._record(job, "error", outputs={}, status=status, meta={}, error=error)
