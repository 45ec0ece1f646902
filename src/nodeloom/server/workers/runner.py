"""The engine side of a worker: one warm engine that runs payloads and reports events.

:class:`RemoteRunner` is used by both kinds of worker, a local process (:func:`process_main`,
talking over a pipe) and a Ray actor (:mod:`nodeloom.server.workers.ray_workers`). It builds
the engine once, journals the files each run writes (see :mod:`.common`) and turns the
engine's outcome into a picklable dict. While a run is in flight it keeps the time of the
engine's last event, the progress that the heartbeat reports (:meth:`RemoteRunner.quiet`).
"""

from __future__ import annotations

import os
import queue
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from nodeloom.errors import ValidationError
from nodeloom.server.workers.common import HEARTBEAT_S, journal_path

__all__ = ["RemoteRunner", "process_main"]

Send = Callable[[tuple[Any, ...]], None]


class RemoteRunner:
    """A warm engine in a worker.

    Args:
        engine_options: ``EngineConfig`` keyword arguments.
        journal_dir: where each run lists the files it writes.
        threads: torch CPU threads for this worker (0: leave torch's default).
        send: called with every event tuple ``("event", type, data, prompt_id, client_id, preview)``.
    """

    def __init__(self, engine_options: dict[str, Any], journal_dir: str, threads: int, send: Send) -> None:
        from nodeloom import Engine, EngineConfig
        from nodeloom.paths import set_write_journal

        if threads > 0:
            import torch

            torch.set_num_threads(threads)
        self.engine = Engine(EngineConfig(**engine_options))
        self.journal_dir = Path(journal_dir)
        self.journal_dir.mkdir(parents=True, exist_ok=True)
        self._journal: Any = None
        self._send = send
        self.running = False
        self._progress = time.monotonic()
        self.engine.subscribe(self._on_event)
        set_write_journal(self._note_file)

    def _on_event(self, event: Any) -> None:
        self._progress = time.monotonic()
        self._send(("event", event.type, event.data, event.prompt_id, event.client_id, event.preview))

    def _note_file(self, path: Path) -> None:
        if self._journal is not None:
            self._journal.write(f"{os.path.abspath(path)}\n")
            self._journal.flush()
            os.fsync(self._journal.fileno())

    def quiet(self) -> float:
        """Seconds the running prompt has gone without an engine event (0 between runs)."""
        return time.monotonic() - self._progress if self.running else 0.0

    def run(self, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Run one payload; returns ``("result", outcome)`` or ``("error", failure)``."""
        self._journal = open(journal_path(self.journal_dir, payload["prompt_id"]), "a", encoding="utf-8")
        self._progress, self.running = time.monotonic(), True
        try:
            result = self.engine.run(payload["prompt"], prompt_id=payload["prompt_id"], client_id=payload.get("client_id"),
                                     extra_data=payload.get("extra_data"), targets=payload.get("targets"),
                                     limits=payload.get("limits"))
        except ValidationError as exc:
            return "error", {**exc.to_dict(), "validation": True}
        except Exception as exc:  # the engine boundary: reported to the serving process, which records it
            return "error", {"message": str(exc) or type(exc).__name__, "exception_type": type(exc).__name__,
                             "details": traceback.format_exc()}
        finally:
            self.running = False
            self._journal.close()
            self._journal = None
        return "result", {"status": result.status, "outputs": result.outputs, "messages": result.messages,
                          "meta": result.meta, "errors": result.errors}

    def devices(self) -> list[dict[str, Any]]:
        """The engine's device, with the worker's process id and ``CUDA_VISIBLE_DEVICES`` (when set)."""
        from nodeloom.server.routes.info import device_info

        info = {**device_info(self.engine), "pid": os.getpid()}
        if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
            info["cuda_visible_devices"] = os.environ["CUDA_VISIBLE_DEVICES"]
        return [info]


def process_main(conn: Any, engine_options: dict[str, Any], journal_dir: str, threads: int,
                 cuda_devices: str | None = None) -> None:
    """The main function of a local worker process: serve runs from ``conn`` until it closes.

    ``cuda_devices``, when given, becomes the process's ``CUDA_VISIBLE_DEVICES`` before anything
    initialises CUDA, so the worker sees only its GPU. A reader thread applies ``interrupt`` at
    once and queues everything else for the main thread, which runs prompts one at a time; a
    heartbeat thread sends ``("beat", quiet seconds)`` every :data:`HEARTBEAT_S` while a prompt runs.
    """
    if cuda_devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = cuda_devices
    lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with lock:
            conn.send(message)

    runner = RemoteRunner(engine_options, journal_dir, threads, send)
    inbox: queue.Queue[tuple[Any, ...] | None] = queue.Queue()

    def read() -> None:
        try:
            while True:
                message = conn.recv()
                if message[0] == "interrupt":
                    runner.engine.interrupt()
                else:
                    inbox.put(message)
        except (EOFError, OSError):
            inbox.put(None)

    def heartbeat() -> None:
        while True:
            time.sleep(HEARTBEAT_S)
            if runner.running:
                try:
                    send(("beat", runner.quiet()))
                except (OSError, ValueError):
                    return

    threading.Thread(target=read, name="nodeloom-worker-reader", daemon=True).start()
    threading.Thread(target=heartbeat, name="nodeloom-worker-heartbeat", daemon=True).start()
    send(("ready", runner.devices()))
    while (message := inbox.get()) is not None:
        kind = message[0]
        if kind == "run":
            send(runner.run(message[1]))
        elif kind == "free":
            runner.engine.free(unload_models=message[1], free_memory=message[2])
        elif kind == "devices":
            send(("devices", runner.devices()))
        elif kind == "close":
            break
    runner.engine.close()
