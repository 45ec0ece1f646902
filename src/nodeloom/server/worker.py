"""The worker thread: takes jobs from the durable queue and runs them on the engine.

The HTTP loop never runs a prompt; it only queues. The worker records every result in the
store (history + output index) and turns engine outcomes into ComfyUI's history ``status``.
``interrupt`` asks the engine to stop the running prompt at its next node boundary or
progress tick; ``request_free`` frees models/memory between prompts.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

from nodeloom.errors import NodeloomError, ValidationError
from nodeloom.server.queue import PromptQueue
from nodeloom.server.store import Job

if TYPE_CHECKING:
    from nodeloom.engine import Engine

__all__ = ["Worker"]

log = logging.getLogger(__name__)


def _now_ms() -> int:
    return int(time.time() * 1000)


class Worker:
    """Runs queued prompts one after another on a daemon thread.

    Args:
        engine: the engine (``run``, ``interrupt``, ``free``).
        queue: the prompt queue.
        hub: where the worker's own events go: errors raised before the engine started a
            run, and the end-of-prompt marker, sent after the result is in history.
    """

    def __init__(self, engine: Engine, queue: PromptQueue, hub: Any) -> None:
        self.engine = engine
        self.queue = queue
        self.hub = hub
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
            self.engine.free(unload_models=flags.get("unload_models", False), free_memory=flags.get("free_memory", False))

    # ------------------------------------------------------------------ loop
    def _loop(self) -> None:
        while not self._stop.is_set():
            self._apply_free()
            job = self.queue.take(timeout=0.5)
            if job is None:
                continue
            self.current = job
            done = False
            try:
                done = self._run(job)
            finally:
                self.current = None
                if done:
                    self.hub.publish_prompt_done(job.prompt_id, job.client_id)

    def _run(self, job: Job) -> bool:
        """Run one job; returns False when it went back to the queue instead of to history."""
        try:
            result = self.engine.run(
                job.prompt, prompt_id=job.prompt_id, client_id=job.client_id,
                extra_data=job.extra_data, targets=job.targets or None,
            )
        except ValidationError as exc:
            self._fail(job, exc.to_dict())  # carries ``node_errors`` when there are any
            return True
        except Exception as exc:  # the engine boundary: any failure is recorded, the worker goes on
            log.exception("prompt %s failed outside node execution", job.prompt_id)
            payload = NodeloomError(str(exc) or type(exc).__name__, details=traceback.format_exc()).to_dict()
            payload["type"] = type(exc).__name__
            self._fail(job, payload)
            return True
        if result.status == "interrupted" and self._stop.is_set():
            # stopped by a server shutdown, not by a user: it runs again after the restart
            self.queue.release(job)
            return False
        state = result.status if result.status in ("success", "error", "interrupted") else "error"
        status = {
            "status_str": "success" if state == "success" else "error",
            "completed": state == "success",
            "messages": list(result.messages),
        }
        self.queue.finish(job, state, outputs=dict(result.outputs), status=status, meta=dict(result.meta),
                          error=result.errors[0] if result.errors else None)
        return True

    def _fail(self, job: Job, error: dict[str, Any]) -> None:
        """Record a prompt that could not run at all and tell its client."""
        data = {
            "prompt_id": job.prompt_id, "node_id": None, "node_type": None, "executed": [],
            "exception_message": error.get("message", ""), "exception_type": error.get("type", ""),
            "traceback": [], "current_inputs": {}, "current_outputs": {}, "timestamp": _now_ms(),
        }
        self.hub.publish("execution_error", data, job.client_id)
        status = {"status_str": "error", "completed": False, "messages": [["execution_error", data]]}
        self.queue.finish(job, "error", outputs={}, status=status, meta={}, error=error)
