"""Many workers on one queue: a real server with 2 worker processes, and with 2 Ray actors.

100 prompts from 10 WebSocket clients complete and each client hears only its own prompts;
``kill -9`` of a worker in the middle of a prompt re-runs that prompt on the other worker,
once in history, its output file written once; ``/system_stats`` lists both workers.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from nodeloom import Engine
from nodeloom.server.app import create_app
from nodeloom.server.config import ServerConfig
from nodeloom.server.state import STATE
from nodeloom.server.workers import parse_workers
from nodeloom.server.workers.common import model_keys

from tests.server.conftest import LiveServer, open_ws, request, submit

CLIENTS, PER_CLIENT = 10, 10


def _small(i: int) -> dict[str, Any]:
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": i}},
            "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
            "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}


def _slow_save(i: int, tag: str = "kill") -> dict[str, Any]:
    """A save that finishes at once beside a branch that takes a while (the moment to kill)."""
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": i}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": f"{tag}{i:02}"}},
            "3": {"class_type": "EmptyImage", "inputs": {"width": 320, "height": 320, "batch_size": 1, "color": i}},
            "4": {"class_type": "ImageBlur", "inputs": {"image": ["3", 0], "blur_radius": 31, "sigma": 10.0}},
            "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}}}


def _serve(tmp_path: Path, **config: Any) -> tuple[LiveServer, Engine]:
    engine = Engine(base_dir=tmp_path)
    server = LiveServer(create_app(engine, ServerConfig(db_path=tmp_path / "queue.sqlite3", **config)))
    deadline = time.monotonic() + 300  # a loaded machine: each worker imports torch and builds an engine
    while len(request(server.url, "GET", "/system_stats").json()["devices"]) < 2:  # both workers ready
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.2)
    return server, engine


def _client(url: str, cid: int, seen: dict[int, Any]) -> None:
    ws = open_ws(url, f"client-{cid}")
    mine = [submit(url, _small(cid * PER_CLIENT + k), f"client-{cid}").json()["prompt_id"] for k in range(PER_CLIENT)]
    ended, others = set(), set()
    deadline = time.monotonic() + 100
    while len(ended) < len(mine) and time.monotonic() < deadline:
        ws.settimeout(max(0.1, deadline - time.monotonic()))
        msg = ws.recv()
        if isinstance(msg, bytes):
            continue
        m = json.loads(msg)
        pid = m["data"].get("prompt_id") if isinstance(m["data"], dict) else None
        if pid is not None and pid not in mine:
            others.add(pid)
        if m["type"] == "executing" and m["data"].get("node") is None and pid in mine:
            ended.add(pid)
    ws.close()
    seen[cid] = (mine, ended, others)


def _many_clients(url: str) -> None:
    seen: dict[int, Any] = {}
    threads = [threading.Thread(target=_client, args=(url, c, seen)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(seen) == CLIENTS
    for mine, ended, others in seen.values():
        assert ended == set(mine), "a client did not hear the end of all its prompts"
        assert not others, "a client heard another client's prompt"
    history = request(url, "GET", "/history").json()
    assert len(history) == CLIENTS * PER_CLIENT
    workers = {entry["status"]["worker"] for entry in history.values()}
    assert all(entry["status"]["completed"] for entry in history.values())
    assert len(workers) == 2, f"one worker ran everything: {workers}"


@pytest.fixture(scope="module")
def process_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server, engine = _serve(tmp_path_factory.mktemp("workers"), workers=2)
    yield server, engine
    server.close()
    engine.close()


def test_100_prompts_from_10_clients_on_2_worker_processes(process_server: Any) -> None:
    server, _ = process_server
    _many_clients(server.url)
    stats = request(server.url, "GET", "/system_stats").json()
    assert sorted(d["worker"] for d in stats["devices"]) == ["worker-1", "worker-2"]
    assert all(d["type"] == "cpu" for d in stats["devices"])


def test_mcp_jobs_run_on_the_workers_unchanged(process_server: Any) -> None:
    """The MCP runner hears the workers' events on the serving engine's bus, as with one worker."""
    from nodeloom.mcp.jobs import JobStore as McpJobs
    from nodeloom.mcp.queue_runner import QueueJobRunner
    from nodeloom.mcp_client.policy import Policy

    server, engine = process_server
    state = server.app[STATE]
    runner = QueueJobRunner(engine, McpJobs(None), Policy(), queue=state.queue, worker=state.worker)
    try:
        prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 7}},
                  "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "agent"}}}
        job, created = runner.submit(prompt, who="test")
        assert created and job.done.wait(60), job.status
        assert job.status == "success", job.error
        assert job.started is not None  # execution_start came through from the worker
        assert json.dumps(job.result).count("agent_00001_.png") >= 1
        assert state.queue.get(job.id).status["worker"] in ("worker-1", "worker-2")
    finally:
        runner.close()


def _kill_mid_prompt(server: Any, engine: Engine, kill: Any, tag: str) -> None:
    """Kill (with ``kill(slot)``) the worker running a prompt whose save is already on disk;
    every prompt then completes once, the killed one on the other worker, each file written once."""
    pool = server.app[STATE].worker
    before = set(request(server.url, "GET", "/history").json())
    pids = [submit(server.url, _slow_save(i, tag), "killer").json()["prompt_id"] for i in range(6)]
    output = Path(engine.paths.output_dir)
    victim, deadline = None, time.monotonic() + 90
    while victim is None and time.monotonic() < deadline:  # a running prompt whose save is already on disk
        for slot in pool.slots:
            job = slot.current
            if job is not None and job.prompt_id in pids:
                prefix = job.prompt["2"]["inputs"]["filename_prefix"]
                if list(output.glob(f"{prefix}_*.png")) and slot.current is job:
                    victim = (slot, job)
                    kill(slot)
                    break
        time.sleep(0.01)
    assert victim is not None, "no prompt was caught mid-run"
    slot, job = victim
    deadline = time.monotonic() + 120
    while len(set(request(server.url, "GET", "/history").json()) - before) < len(pids):
        assert time.monotonic() < deadline, "the prompts did not all finish after the kill"
        time.sleep(0.1)
    history = request(server.url, "GET", "/history").json()
    assert all(history[p]["status"]["completed"] for p in pids)
    assert history[job.prompt_id]["status"]["worker"] != slot.name, "the prompt did not move to the other worker"
    assert server.app[STATE].queue.get(job.prompt_id).attempts == 2
    for i in range(len(pids)):  # each prompt's file once: the killed attempt's file was removed
        assert sorted(p.name for p in output.glob(f"{tag}{i:02}_*.png")) == [f"{tag}{i:02}_00001_.png"]
    color = int(job.prompt["1"]["inputs"]["color"])
    assert history[job.prompt_id]["outputs"]["2"]["images"][0]["filename"] == f"{tag}{color:02}_00001_.png"
    deadline = time.monotonic() + 180
    while not all(w["alive"] for w in pool.describe()):  # the dead worker was replaced
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_kill_9_of_a_worker_mid_prompt_loses_and_duplicates_nothing(process_server: Any) -> None:
    server, engine = process_server
    _kill_mid_prompt(server, engine, lambda slot: os.kill(slot.engine.process.pid, signal.SIGKILL), "kill")


@pytest.fixture(scope="module")
def ray_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    ray = pytest.importorskip("ray")
    server, engine = _serve(tmp_path_factory.mktemp("ray-workers"), workers="ray", ray_actors=2)
    yield server, engine
    server.close()
    engine.close()
    ray.shutdown()


def test_2_ray_actors_serve_the_queue(ray_server: Any) -> None:
    server, _ = ray_server
    _many_clients(server.url)
    stats = request(server.url, "GET", "/system_stats").json()
    assert sorted(d["worker"] for d in stats["devices"]) == ["ray-1", "ray-2"]


@pytest.mark.timeout(900)  # Ray's start, a kill, a re-run and a new actor, on a shared 2-core machine
def test_kill_9_of_a_ray_actor_mid_prompt_loses_and_duplicates_nothing(ray_server: Any) -> None:
    """The actor's process is killed with SIGKILL, as a crashed machine or an OOM kill would."""
    server, engine = ray_server
    first = {slot.name: slot.engine.devices()[0]["pid"] for slot in server.app[STATE].worker.slots}
    assert len(set(first.values())) == 2 and os.getpid() not in first.values()
    _kill_mid_prompt(server, engine, lambda slot: os.kill(slot.engine.devices()[0]["pid"], signal.SIGKILL), "raykill")
    deadline = time.monotonic() + 300
    while True:  # a new actor (a new process) replaced the killed one; the other one lives on
        after = {d["pid"] for slot in server.app[STATE].worker.slots for d in slot.engine.devices()}
        if len(after) == 2 and len(after - set(first.values())) == 1:
            break
        assert time.monotonic() < deadline, "the killed actor was not replaced by a new one"
        time.sleep(0.2)


def test_workers_flag_and_model_keys() -> None:
    assert parse_workers("2") == 2 and parse_workers("ray") == "ray" and parse_workers(None) is None
    for bad in ("0", "two", "-1"):
        with pytest.raises(ValueError, match="--workers"):
            parse_workers(bad)
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
              "2": {"class_type": "LoraLoader", "inputs": {"lora_name": "style.pt", "strength_model": 1.0}},
              "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x_name"}}}
    assert model_keys(prompt) == {"ckpt_name=sd15.safetensors", "lora_name=style.pt"}


def test_a_worker_takes_the_queued_prompt_whose_models_it_holds(tmp_path: Path) -> None:
    from nodeloom.server.queue import PromptQueue
    from nodeloom.server.store import JobStore

    queue = PromptQueue(JobStore(tmp_path / "q.sqlite3"), max_attempts=2)
    loads = {name: {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": f"{name}.safetensors"}}}
             for name in ("a", "b")}
    for i, name in enumerate(("a", "b", "a")):
        queue.put(f"p{i}", i, loads[name], {}, [])
    holds_b = lambda prompt: "ckpt_name=b.safetensors" in model_keys(prompt)  # noqa: E731
    assert queue.take(0, prefer=holds_b).prompt_id == "p1"  # skips p0: another worker may hold model a
    assert queue.take(0, prefer=holds_b).prompt_id == "p0"  # nothing it holds left: queue order
    # a worker died under p0: back in the queue at its place, the attempt counted; the second time it fails
    job = queue.get("p0")
    assert queue.requeue(job) and queue.get("p0").state == "pending"
    assert queue.take(0).prompt_id == "p0"
    assert not queue.requeue(queue.get("p0"))
    failed = queue.get("p0")
    assert failed.state == "error" and failed.error["type"] == "server_crashed"


def test_each_local_worker_is_pinned_to_its_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One worker per GPU by default; each process sees only its GPU (faked list: no GPU here)."""
    from nodeloom.server.queue import PromptQueue
    from nodeloom.server.store import JobStore
    from nodeloom.server.workers import factory

    monkeypatch.setattr(factory, "_gpu_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, 5,7")  # the serving process's own list; CUDA counts 2
    assert factory.gpu_ids() == ["3", "5"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert factory.gpu_ids() == ["0", "1"]
    monkeypatch.setattr(factory, "gpu_ids", lambda: ["GPU-a1", "GPU-b2"])
    engine = Engine(base_dir=tmp_path, builtin_packs=False)
    queue = PromptQueue(JobStore(tmp_path / "q.sqlite3"))
    try:
        for workers, pins in ((None, ["GPU-a1", "GPU-b2"]), (3, ["GPU-a1", "GPU-b2", "GPU-a1"])):
            pool = factory.make_pool(engine, ServerConfig(db_path=tmp_path / "q.sqlite3", workers=workers), queue, None)
            procs = [slot.engine for slot in pool.slots]
            assert [p.cuda_devices for p in procs] == pins
            assert all(p._args[0]["device"] == "cuda:0" and p._args[2] == 0 for p in procs)  # noqa: SLF001
        cpu = Engine(base_dir=tmp_path / "cpu", builtin_packs=False, device="cpu")  # a CPU engine: no pinning
        pool = factory.make_pool(cpu, ServerConfig(db_path=tmp_path / "q.sqlite3", workers=2), queue, None)
        assert [slot.engine.cuda_devices for slot in pool.slots] == [None, None]
        cpu.close()
    finally:
        engine.close()


def test_a_worker_process_starts_with_its_cuda_visible_devices(tmp_path: Path) -> None:
    """The variable is set in the worker process itself (a CPU engine, so CUDA is never touched)."""
    from nodeloom.server.workers.factory import engine_options
    from nodeloom.server.workers.local import ProcessEngine

    engine = Engine(base_dir=tmp_path, builtin_packs=False, device="cpu")
    proc = ProcessEngine("worker-1", engine_options(engine), str(tmp_path / "journal"), 1, lambda event: None,
                         cuda_devices="7")
    try:
        proc.start()
        (info,) = proc.devices()
        assert info["cuda_visible_devices"] == "7" and info["pid"] == proc.process.pid != os.getpid()
        assert os.environ.get("CUDA_VISIBLE_DEVICES") != "7"  # the serving process is unchanged
    finally:
        proc.close()
        engine.close()


def test_serve_flags_for_workers() -> None:
    import argparse

    from nodeloom.server.cli import add_serve_arguments, server_config

    parser = add_serve_arguments(argparse.ArgumentParser())
    config = server_config(parser.parse_args(["--workers", "ray", "--address", "10.0.0.1:6379", "--ray-actors", "3"]))
    assert (config.workers, config.ray_address, config.ray_actors) == ("ray", "10.0.0.1:6379", 3)
    assert server_config(parser.parse_args(["--workers", "2"])).workers == 2
    assert server_config(parser.parse_args([])).workers is None
    with pytest.raises(ValueError, match="--workers ray"):
        server_config(parser.parse_args(["--workers", "2", "--address", "10.0.0.1:6379"]))
