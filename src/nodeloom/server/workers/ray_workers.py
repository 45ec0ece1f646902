"""Ray workers: actors on a Ray cluster, each holding a warm engine (``--workers ray``).

:class:`RayEngine` is the serving process's proxy of one actor, with the interface of
:class:`~nodeloom.server.workers.local.ProcessEngine`. The actor buffers its engine's events;
while a run is in flight the proxy keeps one drain call open: the actor answers it as soon as
an event is buffered, or after :data:`DRAIN_WAIT_S` without one (a long poll, so the serving
process makes a call per burst of events, not one every few milliseconds), and the proxy
forwards what it gets to the event hub. Each drain also answers how long the run has gone
without progress, the actor's heartbeat. A run that stays quiet (or whose actor stops answering)
beyond ``timeout`` seconds gets its actor killed and raises :class:`WorkerHung`. An actor
returns the files its run wrote, so an actor on another machine still leaves its outputs in
the serving machine's folders. Ray is imported only here, lazily.
"""

from __future__ import annotations

import collections
import os
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from nodeloom.core.events import Event
from nodeloom.errors import NodeloomError, require
from nodeloom.paths import write_atomic
from nodeloom.server.config import DEFAULT_WORKER_TIMEOUT
from nodeloom.server.workers.common import (QuietClock, WorkerHung, WorkerLost, journal_path,
                                            raise_remote, run_payload)
from nodeloom.server.workers.runner import RemoteRunner

__all__ = ["RayEngine", "ServerActor", "ray_engines"]

#: longest wait of an open drain call for an event (seconds); also the heartbeat's period
DRAIN_WAIT_S = 0.5


class ServerActor:
    """The actor: a :class:`RemoteRunner` whose events wait in a buffer until drained."""

    def __init__(self, engine_options: dict[str, Any], journal_dir: str, threads: int) -> None:
        self.events: collections.deque[tuple[Any, ...]] = collections.deque()
        self._arrived = threading.Condition()
        self.runner = RemoteRunner(engine_options, journal_dir, threads, self._push)

    def _push(self, event: tuple[Any, ...]) -> None:
        with self._arrived:
            self.events.append(event)
            self._arrived.notify_all()

    def run(self, payload: dict[str, Any]) -> tuple[str, dict[str, Any], list[tuple[str, str, bytes]]]:
        try:
            kind, body = self.runner.run(payload)
        finally:
            with self._arrived:  # an open drain returns at once: the run is over
                self._arrived.notify_all()
        return kind, body, self._files(payload["prompt_id"])

    def _files(self, prompt_id: str) -> list[tuple[str, str, bytes]]:
        """``(folder, relative path, bytes)`` of the run's files in the output and temp folders."""
        journal = journal_path(self.runner.journal_dir, prompt_id)
        paths = self.runner.engine.paths
        roots = {"output": Path(paths.output_dir).resolve(), "temp": Path(paths.temp_dir).resolve()}
        files = []
        for line in dict.fromkeys(journal.read_text(encoding="utf-8").splitlines() if journal.exists() else []):
            path = Path(line)
            for key, root in roots.items():
                if path.is_file() and path.is_relative_to(root):
                    files.append((key, str(path.relative_to(root)), path.read_bytes()))
        journal.unlink(missing_ok=True)
        return files

    def drain(self, wait: float = 0.0) -> tuple[list[tuple[Any, ...]], float]:
        """The buffered events (waiting up to ``wait`` seconds for one while a run is in flight)
        and the heartbeat: seconds the running prompt has shown no progress."""
        with self._arrived:
            if not self.events and wait > 0 and self.runner.running:
                self._arrived.wait(wait)
            out = list(self.events)
            self.events.clear()
        return out, self.runner.quiet()

    def interrupt(self) -> None:
        self.runner.engine.interrupt()

    def free(self, unload_models: bool, free_memory: bool) -> None:
        self.runner.engine.free(unload_models=unload_models, free_memory=free_memory)

    def devices(self) -> list[dict[str, Any]]:
        return self.runner.devices()


class RayEngine:
    """One Ray actor, seen from the serving process.

    Args:
        name: the worker's name.
        actor_cls: the remote :class:`ServerActor` class (with its resources).
        args: the actor's constructor arguments.
        paths: the serving engine's folders (where returned files are written).
        on_event: called with every engine event of the actor.
        timeout: seconds a run may show no progress before the actor counts as hung (0: never).
    """

    def __init__(self, name: str, actor_cls: Any, args: tuple[Any, ...], paths: Any,
                 on_event: Callable[[Event], None], *, timeout: float = DEFAULT_WORKER_TIMEOUT) -> None:
        self.name = name
        self.timeout = timeout
        self._clock = QuietClock()
        self._cls, self._args, self._paths, self._on_event = actor_cls, args, paths, on_event
        self.actor: Any = None
        self._devices: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        """Create the actor; it counts as alive (and its devices are shown) once its engine is built."""
        import ray

        self._devices = []
        actor = self._cls.remote(*self._args)
        try:
            devices = ray.get(actor.devices.remote(), timeout=300)
        except BaseException:
            ray.kill(actor, no_restart=True)
            raise
        self.actor, self._devices = actor, devices

    def restart(self) -> None:
        self.kill()
        self.start()

    def kill(self) -> None:
        import ray

        if self.actor is not None:
            ray.kill(self.actor, no_restart=True)
            self.actor = None

    def close(self, timeout: float = 10.0) -> None:
        self.kill()

    def alive(self) -> bool:
        return self.actor is not None

    def run(self, prompt: dict[str, Any], **kwargs: Any) -> Any:
        """Run a prompt on the actor, forwarding its events.

        Raises:
            WorkerLost: the actor died.
            WorkerHung: the run showed no progress for ``timeout`` seconds; the actor is killed.
        """
        import ray

        self._clock.start()
        try:
            ref = self.actor.run.remote(run_payload(prompt, **kwargs))
            beat = None
            while True:
                beat = beat or self.actor.drain.remote(DRAIN_WAIT_S)
                ray.wait([ref, beat], num_returns=1, timeout=2 * DRAIN_WAIT_S)
                if ray.wait([beat], timeout=0)[0]:
                    self._heard(*ray.get(beat))
                    beat = None
                if ray.wait([ref], timeout=0)[0]:
                    break
                if self._clock.hung(self.timeout):
                    quiet = self._clock.quiet()
                    self.kill()
                    raise WorkerHung(f"Ray worker {self.name} showed no progress for {quiet:.0f} s "
                                     f"(--worker-timeout {self.timeout:g}); it was killed")
            kind, body, files = ray.get(ref)
            if beat is not None:  # the open drain returns at once now; its events come first
                self._forward(ray.get(beat)[0])
            self._forward(ray.get(self.actor.drain.remote())[0])
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, AttributeError) as exc:
            raise WorkerLost(f"Ray worker {self.name} died: {str(exc).splitlines()[0] if str(exc) else exc}") from None
        self._store_files(files)
        if kind == "error":
            raise_remote(body)
        return SimpleNamespace(**body)

    def _heard(self, events: list[tuple[Any, ...]], quiet: float) -> None:
        self._clock.beat(quiet)
        self._forward(events)

    def _forward(self, events: list[tuple[Any, ...]]) -> None:
        for _, etype, data, prompt_id, client_id, preview in events:
            self._clock.progress()
            self._on_event(Event(etype, data, prompt_id, client_id, preview))

    def _store_files(self, files: list[tuple[str, str, bytes]]) -> None:
        """Write files an actor on another machine produced (the same file here is left alone)."""
        roots = {"output": Path(self._paths.output_dir), "temp": Path(self._paths.temp_dir)}
        for key, rel, data in files:
            target = (roots[key] / rel).resolve()
            if not target.is_relative_to(roots[key].resolve()):
                continue
            if target.is_file() and target.stat().st_size == len(data):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, data)

    def _call(self, method: str, *args: Any) -> None:
        if self.actor is not None:
            getattr(self.actor, method).remote(*args)

    def interrupt(self) -> None:
        self._call("interrupt")

    def free(self, unload_models: bool = True, free_memory: bool = True) -> None:
        self._call("free", unload_models, free_memory)

    def devices(self) -> list[dict[str, Any]]:
        return list(self._devices)


def _init(ray: Any, address: str | None) -> None:
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError or its own classes
            raise NodeloomError(f"cannot join the Ray cluster at `--address {address}`: "
                                f"{str(exc).strip().splitlines()[0]}", type="ray_unavailable") from exc
        return
    import nodeloom

    src = str(Path(nodeloom.__file__).resolve().parent.parent)  # actors import this very nodeloom
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1", runtime_env={"env_vars": {"PYTHONPATH": path, "RAY_USAGE_STATS_ENABLED": "0"}})


def ray_engines(options: dict[str, Any], journal_dir: str, address: str | None, actors: int, paths: Any,
                on_event: Callable[[Event], None], *, timeout: float = DEFAULT_WORKER_TIMEOUT,
                threads: int = 0) -> list[RayEngine]:
    """Connect to (or start) Ray and describe ``actors`` workers (0: one per GPU, else one per 2 CPUs),
    each with ``threads`` torch CPU threads (0: one on GPU actors, else the CPUs shared out).

    Raises:
        MissingDependencyError: Ray is not installed (``pip install 'nodeloom[ray]'``).
    """
    ray = require("ray", "ray")
    _init(ray, address)
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    count = actors or gpus or max(1, int(resources.get("CPU", 2)) // 2)
    per_gpu = 1 if gpus else 0
    cpus = threads or (1 if gpus else max(1, int(resources.get("CPU", 1)) // count))
    actor_cls = ray.remote(num_cpus=1, num_gpus=per_gpu, max_concurrency=4)(ServerActor)
    options = {**options, "device": None if gpus else "cpu"}
    return [RayEngine(f"ray-{i + 1}", actor_cls, (options, journal_dir, cpus), paths, on_event, timeout=timeout)
            for i in range(count)]
