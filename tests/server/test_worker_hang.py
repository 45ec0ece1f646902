"""A hung (alive but stuck) worker: heartbeats, ``--worker-timeout``, kill, restart and re-queue.

A custom-node pack in the server's ``custom_nodes`` folder gives the workers ``HangTimes``, a
node that blocks forever on its first ``times`` runs (counted in a file, across workers) and
passes its image through afterwards. With 2 local worker processes and with 2 local Ray
actors: a prompt that hangs once is killed after the timeout, re-queued, runs on the other
worker and is in ``/history`` once, its saved file written once; a prompt that hangs every time
fails with ``worker_hung`` after its second worker hung, once, leaving no file behind; the hung
workers are replaced by fresh ones and the queue goes on. A worker process frozen with SIGSTOP
mid-prompt (its node was ticking progress; now neither it nor the heartbeat thread runs) is
found the same way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from nodeloom import Engine
from nodeloom.server.app import create_app
from nodeloom.server.config import ServerConfig
from nodeloom.server.state import STATE
from nodeloom.server.store import JobStore
from nodeloom.server.workers.common import QuietClock

from tests.server.conftest import LiveServer, request, submit, wait_history

TIMEOUT = 4.0  # --worker-timeout of these servers (seconds)

HANG_PACK = '''
import threading
import contextlib
import os
import signal
import time
from pathlib import Path

from nodeloom.node_api import ProgressBar, services


class HangTimes:
    """Blocks forever on its first `times` runs (counted in `counter`), once `wait_for` is saved."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "counter": ("STRING", {"default": ""}),
                             "times": ("INT", {"default": 1, "min": 0}),
                             "wait_for": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "test"

    def run(self, images, counter, times, wait_for):
        output = Path(services().paths.output_dir)
        deadline = time.monotonic() + 30
        while wait_for and not list(output.glob(wait_for + "_*.png")) and time.monotonic() < deadline:
            time.sleep(0.02)  # the save beside this node is on disk: the attempt wrote a file
        path = Path(counter)
        runs = len(path.read_text().splitlines()) if path.exists() else 0
        with path.open("a") as f:
            f.write(str(runs) + "\\n")
        if runs < times:
            threading.Event().wait()  # no progress, ever
        return (images,)


class TickFor:
    """Busy for `seconds`, with a progress tick every 0.1 s (never quiet while its process runs)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "seconds": ("FLOAT", {"default": 1.0, "min": 0.0})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "test"

    def run(self, images, seconds):
        steps = max(1, int(seconds * 10))
        bar = ProgressBar(steps)
        for _ in range(steps):
            time.sleep(0.1)
            bar.update(1)
        return (images,)


NODE_CLASS_MAPPINGS = {"HangTimes": HangTimes, "TickFor": TickFor}
'''


def _hanging(tmp: Path, tag: str, times: int) -> dict[str, Any]:
    """A save that finishes at once beside a node that hangs ``times`` times, then passes."""
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 3}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": tag}},
            "3": {"class_type": "HangTimes", "inputs": {"images": ["1", 0], "counter": str(tmp / f"{tag}.count"),
                                                        "times": times, "wait_for": tag}},
            "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}}


def _ticking(seconds: float) -> dict[str, Any]:
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 9}},
            "2": {"class_type": "TickFor", "inputs": {"images": ["1", 0], "seconds": seconds}},
            "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}


def _quick(i: int) -> dict[str, Any]:
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": i}},
            "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}


def _serve(tmp: Path, **config: Any) -> tuple[LiveServer, Engine]:
    pack = tmp / "custom_nodes" / "hang_pack"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text(HANG_PACK, encoding="utf-8")
    engine = Engine(base_dir=tmp, custom_nodes_dirs=[tmp / "custom_nodes"])  # the workers load it too
    assert "HangTimes" in engine.registry, "the test pack did not load"
    server = LiveServer(create_app(engine, ServerConfig(db_path=tmp / "queue.sqlite3", worker_timeout=TIMEOUT,
                                                        **config)))
    _wait_workers(server)
    return server, engine


def _wait_workers(server: LiveServer, deadline_s: float = 300) -> list[int]:
    """Until every worker is alive with its engine built; their process ids."""
    pool = server.app[STATE].worker
    deadline = time.monotonic() + deadline_s  # a loaded machine: each worker imports torch and builds an engine
    while True:
        devices = request(server.url, "GET", "/system_stats").json()["devices"]
        if len(devices) == len(pool.slots) and all(w["alive"] for w in pool.describe()):
            return [d["pid"] for d in devices]
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.2)


def _hang_once_then_pass(server: LiveServer, engine: Engine, tmp: Path, tag: str) -> None:
    pool = server.app[STATE].worker
    pids = _wait_workers(server)
    prompt_id = submit(server.url, _hanging(tmp, tag, 1), "hang").json()["prompt_id"]
    entry = wait_history(server.url, prompt_id, timeout=TIMEOUT + 120)
    assert entry["status"]["completed"], entry["status"]
    count = (tmp / f"{tag}.count").read_text().splitlines()
    assert count == ["0", "1"], "the node ran other than once hung and once through"
    job = server.app[STATE].queue.get(prompt_id)
    assert job.attempts == 2
    hung_on = next(slot.name for slot in pool.slots if slot.name != entry["status"]["worker"])
    output = Path(engine.paths.output_dir)
    assert sorted(p.name for p in output.glob(f"{tag}_*.png")) == [f"{tag}_00001_.png"], "written other than once"
    assert entry["outputs"]["2"]["images"][0]["filename"] == f"{tag}_00001_.png"
    history = request(server.url, "GET", "/history").json()
    assert list(history).count(prompt_id) == 1
    new_pids = _wait_workers(server)  # the hung worker was replaced by a fresh process; the other lives on
    assert len(set(new_pids) - set(pids)) == 1, (pids, new_pids, hung_on)
    assert not pool.slots[0].hangs, "a finished prompt is still remembered as hung"


def _hang_always_fails(server: LiveServer, engine: Engine, tmp: Path, tag: str) -> None:
    pool = server.app[STATE].worker
    pids = _wait_workers(server)
    prompt_id = submit(server.url, _hanging(tmp, tag, 100), "hang").json()["prompt_id"]
    entry = wait_history(server.url, prompt_id, timeout=2 * TIMEOUT + 240)
    assert entry["status"]["status_str"] == "error" and not entry["status"]["completed"]
    ((kind, data),) = entry["status"]["messages"]
    assert kind == "execution_error" and data["exception_type"] == "worker_hung"
    assert "hung its worker 2 time(s)" in data["exception_message"] and "--worker-timeout" in data["exception_message"]
    job = server.app[STATE].queue.get(prompt_id)
    assert job.state == "error" and job.error["type"] == "worker_hung"
    assert sorted(job.error["extra_info"]["workers"]) == sorted(slot.name for slot in pool.slots)
    assert len((tmp / f"{tag}.count").read_text().splitlines()) == 2, "it ran other than twice"
    assert entry["outputs"] == {}
    assert not list(Path(engine.paths.output_dir).glob(f"{tag}_*.png")), "a hung attempt's file was left behind"
    assert list(request(server.url, "GET", "/history").json()).count(prompt_id) == 1
    new_pids = _wait_workers(server)  # both workers replaced, and the queue goes on
    assert not set(new_pids) & set(pids)
    after = submit(server.url, _quick(5)).json()["prompt_id"]
    assert wait_history(server.url, after, timeout=120)["status"]["completed"]


@pytest.fixture(scope="module")
def process_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("hang-workers")
    server, engine = _serve(tmp, workers=2)
    yield server, engine, tmp
    server.close()
    engine.close()


@pytest.mark.timeout(600)
def test_a_hung_worker_process_is_killed_and_its_prompt_runs_once_on_the_other(process_server: Any) -> None:
    _hang_once_then_pass(*process_server, "once")


@pytest.mark.timeout(600)
def test_a_prompt_that_hangs_both_worker_processes_fails_with_worker_hung(process_server: Any) -> None:
    _hang_always_fails(*process_server, "always")


@pytest.mark.timeout(600)
def test_a_frozen_worker_process_misses_its_heartbeat_and_is_replaced(process_server: Any) -> None:
    """SIGSTOP: the process lives but neither its node nor its heartbeat thread runs."""
    server, _, _ = process_server
    pool = server.app[STATE].worker
    _wait_workers(server)
    prompt_id = submit(server.url, _ticking(3.0)).json()["prompt_id"]
    deadline = time.monotonic() + 120
    while (slot := next((s for s in pool.slots if s.current is not None and s.current.prompt_id == prompt_id),
                        None)) is None:
        assert time.monotonic() < deadline, "the prompt did not start"
        time.sleep(0.02)
    frozen, pid = slot.name, slot.engine.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        entry = wait_history(server.url, prompt_id, timeout=TIMEOUT + 120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    assert entry["status"]["completed"] and entry["status"]["worker"] != frozen
    assert server.app[STATE].queue.get(prompt_id).attempts == 2
    assert pid not in _wait_workers(server), "the frozen process was not replaced"


@pytest.mark.timeout(900)  # Ray's start, two hangs, three new actors, on a shared 2-core machine
def test_hung_ray_actors_are_killed_re_queued_once_then_failed(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    server, engine = _serve(tmp_path, workers="ray", ray_actors=2)
    try:
        _hang_once_then_pass(server, engine, tmp_path, "rayonce")
        _hang_always_fails(server, engine, tmp_path, "rayalways")
    finally:
        server.close()
        engine.close()
        ray.shutdown()


def test_quiet_clock_counts_from_the_last_sign_of_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    clock = QuietClock()
    clock.start()
    now[0] = 103.0
    assert clock.quiet() == 3.0 and not clock.hung(4.0)
    clock.progress()  # an event of the run
    now[0] = 106.0
    assert clock.quiet() == 3.0
    clock.beat(5.0)  # the worker: 5 s since its engine's last event
    assert clock.quiet() == 5.0 and clock.hung(4.0) and not clock.hung(0)  # 0: never
    clock.beat(0.0)
    now[0] = 111.0  # the heartbeat itself stopped (a frozen process): the quiet time still grows
    assert clock.quiet() == 5.0 and clock.hung(4.0)


def test_a_worker_leaves_the_prompt_it_hung_on_to_others(tmp_path: Path) -> None:
    from nodeloom.server.queue import PromptQueue

    queue = PromptQueue(JobStore(tmp_path / "q.sqlite3"))
    for i in range(3):
        queue.put(f"p{i}", i, _quick(i), {}, [])
    hung_on = {"p0"}
    assert queue.take(0, skip=hung_on.__contains__).prompt_id == "p1"
    assert queue.take(0, skip=lambda pid: pid != "p0").prompt_id == "p0"
    assert queue.take(0, skip=lambda pid: True) is None
    assert queue.take(0).prompt_id == "p2"


def test_worker_timeout_and_threads_flags(tmp_path: Path) -> None:
    import argparse

    from nodeloom.server.cli import add_serve_arguments, server_config
    from nodeloom.server.queue import PromptQueue
    from nodeloom.server.workers.factory import make_pool
    from nodeloom.server.workers.pool import cpu_threads

    parser = add_serve_arguments(argparse.ArgumentParser())
    engine = Engine(base_dir=tmp_path, builtin_packs=False, device="cpu")
    queue = PromptQueue(JobStore(tmp_path / "q.sqlite3"))
    try:
        for flags, threads in ((["--workers", "2"], cpu_threads(2)), (["--workers", "2", "--worker-threads", "1"], 1),
                               (["--workers", "1", "--worker-threads", "3", "--worker-timeout", "7"], 3)):
            pool = make_pool(engine, server_config(parser.parse_args(flags)), queue, None)
            assert {slot.engine._args[2] for slot in pool.slots} == {threads}  # noqa: SLF001 - not started
            assert {slot.engine.timeout for slot in pool.slots} == {7.0 if "7" in flags else 600.0}
    finally:
        engine.close()
    with pytest.raises(ValueError, match="--worker-threads"):
        server_config(parser.parse_args(["--worker-threads", "-1"]))
    assert server_config(parser.parse_args(["--workers", "2"])).worker_timeout == 600.0
    assert server_config(parser.parse_args(["--workers", "2", "--worker-timeout", "30"])).worker_timeout == 30.0
    assert server_config(parser.parse_args(["--worker-timeout", "0"])).worker_timeout == 0.0
    for bad in ("-1", "inf", "nan"):
        with pytest.raises(ValueError, match="--worker-timeout"):
            server_config(parser.parse_args(["--worker-timeout", bad]))
