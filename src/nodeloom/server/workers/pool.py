"""The pool of workers that consume one server's queue.

Each worker gets a head-side :class:`SlotWorker` thread: it claims the next job (preferring
one whose model files its worker already loaded), runs it through the worker's engine proxy,
and records the outcome in the store with the worker's name in the history ``status``. When
the worker dies mid-prompt, the files that attempt wrote are removed, the job goes back to the
queue (the attempt counts toward ``--max-attempts``) and a fresh worker replaces the dead one.
A worker that hangs (no progress for ``--worker-timeout``) is killed and handled the same way,
except that its prompt is re-queued only once, for another worker; a prompt that hangs a worker
again fails with a ``worker_hung`` error.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nodeloom.server.queue import PromptQueue
from nodeloom.server.store import Job
from nodeloom.server.worker import Worker
from nodeloom.server.workers.common import WorkerHung, WorkerLost, discard_attempt, model_keys

__all__ = ["SlotWorker", "WorkerPool", "parse_workers"]

log = logging.getLogger(__name__)

#: model keys a worker is assumed to hold (the most recent prompts' ``*_name`` inputs)
HELD_KEYS = 32
#: times a prompt that hung its worker goes back to the queue; the next hang fails it
HANG_REQUEUES = 1


def parse_workers(value: str | None) -> int | str | None:
    """``--workers``: a count, ``auto`` (one per GPU, else one per two CPU cores) or ``ray``."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ("ray", "auto"):
        return text
    try:
        count = int(text)
    except ValueError:
        raise ValueError(f"`--workers` must be a number of worker processes, 'auto' or 'ray', got {value!r}") from None
    if not 1 <= count <= 256:
        raise ValueError(f"`--workers` must be between 1 and 256, got {count}")
    return count


class _SlotQueue:
    """The server's queue as one slot sees it: ``take`` prefers jobs whose models it holds and
    leaves alone the ones its worker hung on."""

    def __init__(self, queue: PromptQueue, prefer: Callable[[dict[str, Any]], bool],
                 skip: Callable[[str], bool]) -> None:
        self._queue = queue
        self._prefer = prefer
        self._skip = skip

    def take(self, timeout: float | None = None) -> Job | None:
        return self._queue.take(timeout, prefer=self._prefer, skip=self._skip)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)


class SlotWorker(Worker):
    """The queue worker of one remote worker (a process or a Ray actor).

    ``hangs`` (shared by the pool's slots) maps a prompt id to the workers that hung on it;
    ``alone`` is True for a pool of one, whose worker takes a re-queued hung prompt itself.
    """

    def __init__(self, engine: Any, queue: PromptQueue, hub: Any, journal_dir: Path, *,
                 hangs: dict[str, list[str]] | None = None, alone: bool = True, **kwargs: Any) -> None:
        super().__init__(engine, _SlotQueue(queue, self._holds, self._hung_on), hub, **kwargs)  # type: ignore[arg-type]
        self.name = engine.name
        self.journal_dir = journal_dir
        self.hangs = hangs if hangs is not None else {}
        self.alone = alone
        self.held: list[str] = []
        self.ran = 0
        self._dead = False  # the worker was killed after a hang: replace it before the next prompt
        self._thread = threading.Thread(target=self._serve, name=f"nodeloom-{self.name}", daemon=True)

    def _serve(self) -> None:
        """Start the worker (its engine loads while the server already answers), then consume."""
        try:
            self.engine.start()
        except Exception:  # noqa: BLE001 - retried the way a lost worker is replaced
            log.exception("worker %s did not start", self.name)
            self._replace_engine()
        self._loop()

    def _holds(self, prompt: dict[str, Any]) -> bool:
        return bool(self.held) and not model_keys(prompt).isdisjoint(self.held)

    def _hung_on(self, prompt_id: str) -> bool:
        return not self.alone and self.name in self.hangs.get(prompt_id, ())

    def _run(self, job: Job) -> bool:
        try:
            done = super()._run(job)
        except WorkerHung as exc:
            return self._hung(job, exc)
        except WorkerLost as exc:
            log.warning("%s; prompt %s goes back to the queue", exc, job.prompt_id)
            removed = discard_attempt(self.journal_dir, job.prompt_id)
            if removed:
                log.info("removed %d file(s) the lost attempt of prompt %s wrote", removed, job.prompt_id)
            self.hub.drop_held(job.prompt_id)
            if not self.queue.requeue(job):
                log.error("prompt %s lost its worker %d times; it is failed", job.prompt_id, job.attempts)
            self.held = []
            self._replace_engine()
            return False
        self.held = list(dict.fromkeys([*model_keys(job.prompt), *self.held]))[:HELD_KEYS]
        return done

    def _hung(self, job: Job, exc: WorkerHung) -> bool:
        """The worker hung on ``job`` and was killed: re-queue the job for another worker once,
        or fail it with ``worker_hung``. Whatever the attempt wrote is removed either way."""
        workers = self.hangs.setdefault(job.prompt_id, [])
        workers.append(self.name)
        self.held, self._dead = [], True
        removed = discard_attempt(self.journal_dir, job.prompt_id)
        log.warning("%s while running prompt %s (%d file(s) it wrote removed)", exc, job.prompt_id, removed)
        self.hub.drop_held(job.prompt_id)
        if len(workers) <= HANG_REQUEUES and job.attempts < self.queue.max_attempts:
            self.queue.requeue(job)
            return False
        self.hangs.pop(job.prompt_id, None)
        timeout = getattr(self.engine, "timeout", 0)
        message = (f"the prompt hung its worker {len(workers)} time(s) ({', '.join(workers)}): no progress for "
                   f"{timeout:g} s (--worker-timeout); each hung worker was killed and restarted")
        error = {"type": "worker_hung", "message": message, "details": str(exc),
                 "extra_info": {"workers": list(workers), "worker_timeout": timeout}}
        data = self._publish_failure(job, error)
        status = {"status_str": "error", "completed": False, "messages": [["execution_error", data]]}
        return self._record(job, "error", outputs={}, status=status, meta={}, error=error)

    def _replace_engine(self) -> None:
        while not self._stop.is_set():
            try:
                self.engine.restart()
                return
            except Exception:  # noqa: BLE001 - keep trying: the slot is useless without a worker
                log.exception("could not restart worker %s", self.name)
                self._stop.wait(2.0)

    def _record(self, job: Job, state: str, **result: Any) -> bool:
        result["status"] = {**result["status"], "worker": self.name}
        done = super()._record(job, state, **result)
        self.ran += done
        if done:
            (self.journal_dir / f"{job.prompt_id}.paths").unlink(missing_ok=True)
            self.hangs.pop(job.prompt_id, None)
        return done

    def _apply_free(self) -> None:
        """Between prompts: replace a worker killed after a hang, then free what was asked."""
        if self._dead:
            self._dead = False
            self._replace_engine()
        if self._free_flags.get("unload_models"):
            self.held = []
        super()._apply_free()


class WorkerPool:
    """Many workers consuming one queue; has the queue worker's interface for the routes.

    Args:
        engines: the workers' engine proxies (:class:`ProcessEngine` or :class:`RayEngine`),
            not yet started.
        queue / hub / limits: as for :class:`nodeloom.server.worker.Worker`.
        journal_dir: the folder of per-attempt file journals.
    """

    def __init__(self, engines: list[Any], queue: PromptQueue, hub: Any, *, journal_dir: Path,
                 limits: Any = None) -> None:
        self.queue = queue
        self.journal_dir = Path(journal_dir)
        hangs: dict[str, list[str]] = {}
        self.slots = [SlotWorker(e, queue, hub, self.journal_dir, hangs=hangs, alone=len(engines) == 1, limits=limits)
                      for e in engines]

    @property
    def current(self) -> Job | None:
        return next((s.current for s in self.slots if s.current is not None), None)

    def start(self) -> None:
        """Clean journals a previous server left and start the slots (each starts its worker)."""
        self._clean_journals()
        for slot in self.slots:
            slot.start()

    def _clean_journals(self) -> None:
        self.journal_dir.mkdir(parents=True, exist_ok=True)
        for journal in self.journal_dir.glob("*.paths"):
            job = self.queue.get(journal.name[: -len(".paths")])
            if job is not None and job.state in ("success", "error", "interrupted", "cancelled"):
                journal.unlink(missing_ok=True)  # recorded: its files stay
            else:
                discard_attempt(self.journal_dir, journal.name[: -len(".paths")])

    def stop(self, timeout: float = 10.0) -> bool:
        stopped = all([slot.stop(timeout) for slot in self.slots])
        for slot in self.slots:
            slot.engine.close()
        return stopped

    def interrupt(self, prompt_id: str | None = None) -> bool:
        return any([slot.interrupt(prompt_id) for slot in self.slots])

    def request_free(self, *, unload_models: bool, free_memory: bool) -> None:
        for slot in self.slots:
            slot.request_free(unload_models=unload_models, free_memory=free_memory)

    def devices(self) -> list[dict[str, Any]]:
        """Every worker's devices, each with the worker's name."""
        return [{**device, "worker": slot.name} for slot in self.slots for device in slot.engine.devices()]

    def describe(self) -> list[dict[str, Any]]:
        """One line per worker: name, alive, running prompt, prompts recorded."""
        return [{"name": s.name, "alive": s.engine.alive(), "ran": s.ran,
                 "running": s.current.prompt_id if s.current is not None else None} for s in self.slots]


def cpu_threads(workers: int) -> int:
    """torch threads per CPU worker: the cores shared out (at least one each)."""
    return max(1, (os.cpu_count() or 1) // workers)
