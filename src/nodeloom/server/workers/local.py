"""Local worker processes: each a spawned Python process holding a warm engine.

:class:`ProcessEngine` is the serving process's proxy of one worker process. It looks like
the part of :class:`nodeloom.Engine` the queue worker uses (``run``, ``interrupt``,
``free``); a reader thread forwards the worker's events to the event hub as they come and
hands the run's outcome to the waiting ``run`` call. When the process dies, ``run`` raises
:class:`WorkerLost` and :meth:`ProcessEngine.restart` starts a fresh one. When it lives but
its run shows no progress (events or heartbeats, see :mod:`.common`) for ``timeout`` seconds,
``run`` kills it and raises :class:`WorkerHung`.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
from types import SimpleNamespace
from typing import Any, Callable

from nodeloom.core.events import Event
from nodeloom.server.config import DEFAULT_WORKER_TIMEOUT
from nodeloom.server.workers.common import (HEARTBEAT_S, QuietClock, WorkerHung, WorkerLost,
                                            raise_remote, run_payload)
from nodeloom.server.workers.runner import process_main

__all__ = ["ProcessEngine"]

log = logging.getLogger(__name__)

#: seconds a new worker process may take to import nodeloom and build its engine
START_TIMEOUT = 120.0


class ProcessEngine:
    """One local worker process.

    Args:
        name: the worker's name (shown in history and ``/system_stats``).
        engine_options: ``EngineConfig`` keyword arguments for the worker's engine.
        journal_dir: the folder of per-attempt file journals.
        threads: torch CPU threads of the worker (0: torch's default).
        on_event: called (on the reader thread) with every engine event of the worker.
        cuda_devices: ``CUDA_VISIBLE_DEVICES`` of the worker process (its GPU), or None to
            leave the variable as the serving process has it.
        timeout: seconds a run may show no progress before the worker counts as hung (0: never).
    """

    def __init__(self, name: str, engine_options: dict[str, Any], journal_dir: str, threads: int,
                 on_event: Callable[[Event], None], *, cuda_devices: str | None = None,
                 timeout: float = DEFAULT_WORKER_TIMEOUT) -> None:
        self.name = name
        self.timeout = timeout
        self._clock = QuietClock()
        self.cuda_devices = cuda_devices
        self._args = (engine_options, journal_dir, threads, cuda_devices)
        self._on_event = on_event
        self._devices: list[dict[str, Any]] = []
        self._ctx = multiprocessing.get_context("spawn")
        self.process: Any = None
        self._conn: Any = None
        self._results: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._send_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Spawn the process; returns once its engine is built (until then it lists no device)."""
        self._devices = []
        parent, child = self._ctx.Pipe()
        self.process = self._ctx.Process(target=process_main, args=(child, *self._args),
                                         name=f"nodeloom-{self.name}", daemon=True)
        self.process.start()
        child.close()
        self._conn, self._results = parent, queue.Queue()
        threading.Thread(target=self._read, args=(parent, self._results), name=f"nodeloom-{self.name}-events",
                         daemon=True).start()
        first = self._results.get(timeout=START_TIMEOUT)
        if first[0] != "ready":
            raise RuntimeError(f"worker {self.name} did not start (exit code {self.process.exitcode})")

    def restart(self) -> None:
        self.kill()
        self.start()

    def kill(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.kill()
        if self.process is not None:
            self.process.join(5)
        if self._conn is not None:
            self._conn.close()

    def close(self, timeout: float = 10.0) -> None:
        """Ask the process to finish and exit; kill it when it does not."""
        try:
            self._conn.send(("close",))
        except (OSError, AttributeError):
            pass
        if self.process is not None:
            self.process.join(timeout)
        self.kill()

    def _read(self, conn: Any, results: queue.Queue[tuple[Any, ...]]) -> None:
        try:
            while True:
                message = conn.recv()
                kind = message[0]
                if kind == "event":
                    _, etype, data, prompt_id, client_id, preview = message
                    self._clock.progress()
                    self._on_event(Event(etype, data, prompt_id, client_id, preview))
                elif kind == "beat":
                    self._clock.beat(message[1])
                elif kind in ("ready", "devices"):
                    self._devices = message[1]
                    if kind == "ready":
                        results.put(message)
                else:
                    results.put(message)
        except (EOFError, OSError):
            results.put(("lost",))
        except Exception:  # noqa: BLE001 - a broken message must not hang the run waiting for it
            log.exception("worker %s sent a message that could not be read", self.name)
            results.put(("lost",))

    # ------------------------------------------------------------------ engine API
    def run(self, prompt: dict[str, Any], **kwargs: Any) -> Any:
        """Run a prompt in the worker; blocking.

        Raises:
            WorkerLost: the process died.
            WorkerHung: the run showed no progress for ``timeout`` seconds; the process is killed.
        """
        self._clock.start()
        try:
            with self._send_lock:
                self._conn.send(("run", run_payload(prompt, **kwargs)))
        except (OSError, ValueError) as exc:
            raise WorkerLost(f"worker {self.name} is gone: {exc}") from None
        message = self._wait()
        if message[0] == "lost":
            raise WorkerLost(f"worker {self.name} died (exit code {self.process.exitcode})")
        if message[0] == "error":
            raise_remote(message[1])
        return SimpleNamespace(**message[1])

    def _wait(self) -> tuple[Any, ...]:
        """The run's outcome; kills the process when its run stays quiet beyond the timeout."""
        while True:
            try:
                return self._results.get(timeout=HEARTBEAT_S / 2)
            except queue.Empty:
                pass
            if self._clock.hung(self.timeout):
                quiet = self._clock.quiet()
                self.kill()
                raise WorkerHung(f"worker {self.name} showed no progress for {quiet:.0f} s "
                                 f"(--worker-timeout {self.timeout:g}); it was killed")

    def interrupt(self) -> None:
        self._send(("interrupt",))

    def free(self, unload_models: bool = True, free_memory: bool = True) -> None:
        self._send(("free", unload_models, free_memory))

    def devices(self) -> list[dict[str, Any]]:
        """The worker's devices as last reported (a fresh report is asked for)."""
        self._send(("devices",))
        return list(self._devices)

    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def _send(self, message: tuple[Any, ...]) -> None:
        try:
            with self._send_lock:
                self._conn.send(message)
        except (OSError, ValueError, AttributeError):
            pass
