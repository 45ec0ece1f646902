"""Durability: 100 prompts queued, the server process is killed with SIGKILL mid-run,
restarted on the same folders, and every prompt still completes exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import websocket

from nodeloom.server.worker import FAULT_ENV

from tests.server.conftest import free_port, open_ws, request

ROOT = Path(__file__).resolve().parents[2]
N_PROMPTS = 100


def _start(base: Path, port: int, log: Path, **extra_env: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + str(ROOT), "HF_HUB_OFFLINE": "1", **extra_env}
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "server" / "launch_server.py"), "--base-dir", str(base),
             "--port", str(port), "--cpu", "--verbose", "WARNING"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if request(f"http://127.0.0.1:{port}", "GET", "/prompt").status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not come up")


def _prompt(i: int) -> dict:
    return {"1": {"class_type": "SlowSteps", "inputs": {"steps": 2, "seconds": 0.04, "seed": i}},
            "2": {"class_type": "SolidImage", "inputs": {"size": 8, "value": (i % 10) / 10}},
            "3": {"class_type": "SaveTestImage", "inputs": {"images": ["2", 0], "filename_prefix": f"crash{i:03}"}}}


@pytest.fixture
def served(tmp_path):
    """``(url, base_dir, start)``: ``start()`` (re)starts the server on the same port and folders."""
    port, base, log = free_port(), tmp_path / "srv", tmp_path / "server.log"
    procs: list[subprocess.Popen] = []

    def start(**extra_env: str) -> subprocess.Popen:
        procs.append(_start(base, port, log, **extra_env))
        return procs[-1]

    yield f"http://127.0.0.1:{port}", base, start
    for proc in procs:
        proc.kill()
        proc.wait(30)


def test_kill_9_mid_run_loses_nothing(served):
    url, base, start = served
    proc = start()
    pids = []
    for i in range(N_PROMPTS):
        reply = request(url, "POST", "/prompt", {"prompt": _prompt(i), "client_id": "crash"})
        assert reply.status == 200, reply.body
        pids.append(reply.json()["prompt_id"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = len(request(url, "GET", "/history").json())
        if done >= 10 and request(url, "GET", "/queue").json()["queue_running"]:
            break
        time.sleep(0.02)
    running = request(url, "GET", "/queue").json()["queue_running"]
    assert running, "nothing was running when the server was to be killed"
    proc.kill()  # SIGKILL: no cleanup, no flush
    proc.wait(30)
    killed_while_running = running[0][1]

    start()
    deadline = time.monotonic() + 240
    history: dict = {}
    while time.monotonic() < deadline:
        history = request(url, "GET", "/history").json()
        if len(history) >= N_PROMPTS and request(url, "GET", "/prompt").json()["exec_info"]["queue_remaining"] == 0:
            break
        time.sleep(0.25)
    assert sorted(history) == sorted(pids), f"lost: {set(pids) - set(history)}"
    assert all(h["status"]["status_str"] == "success" for h in history.values())
    assert killed_while_running in history
    for i, pid in enumerate(pids):
        image = history[pid]["outputs"]["3"]["images"][0]
        assert image["filename"].startswith(f"crash{i:03}_")
        assert (base / "output" / image["filename"]).is_file()


def test_sigterm_requeues_the_running_prompt(served):
    url, _, start = served
    proc = start()
    slow = {"1": {"class_type": "SlowSteps", "inputs": {"steps": 300, "seconds": 60.0, "seed": 1}}}
    first = request(url, "POST", "/prompt", {"prompt": slow}).json()["prompt_id"]
    second = request(url, "POST", "/prompt", {"prompt": _prompt(1)}).json()["prompt_id"]
    deadline = time.monotonic() + 30
    while not request(url, "GET", "/queue").json()["queue_running"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    t0 = time.monotonic()
    proc.terminate()
    assert proc.wait(30) == 0 and time.monotonic() - t0 < 15
    start()
    queue = request(url, "GET", "/queue").json()
    live = [i[1] for i in queue["queue_running"] + queue["queue_pending"]]
    assert live == [first, second]
    assert request(url, "GET", "/history").json() == {}
    while [i[1] for i in request(url, "GET", "/queue").json()["queue_running"]] != [first]:
        assert time.monotonic() - t0 < 60
        time.sleep(0.05)
    request(url, "POST", "/interrupt", {"prompt_id": first})
    history = {}
    while second not in history:
        assert time.monotonic() - t0 < 120
        history = request(url, "GET", "/history").json()
        time.sleep(0.1)
    assert history[second]["status"]["status_str"] == "success"


def _until_closed(ws) -> list[tuple[str, dict]]:
    """Every JSON message until the server's death closes the socket."""
    seen = []
    ws.settimeout(60)
    while True:
        try:
            msg = ws.recv()
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            return seen
        if not msg:
            return seen
        if isinstance(msg, str):
            m = json.loads(msg)
            seen.append((m["type"], m["data"]))


def _outcome_heard(seen: list[tuple[str, dict]], pid: str) -> bool:
    return any(t in ("execution_success", "execution_error") or (t == "executing" and d.get("node") is None)
               for t, d in seen if isinstance(d, dict) and d.get("prompt_id") == pid)


def _killed_at(served, fault: str, i: int) -> tuple[str, list[tuple[str, dict]]]:
    """Start the server with a fault point, submit prompt ``i`` and watch it die there; the
    watcher must not have heard the prompt's outcome. Returns ``(prompt_id, messages seen)``."""
    url, _, start = served
    proc = start(**{FAULT_ENV: fault})
    ws = open_ws(url, "watcher")
    pid = request(url, "POST", "/prompt", {"prompt": _prompt(i), "client_id": "watcher"}).json()["prompt_id"]
    seen = _until_closed(ws)
    assert proc.wait(60) == -signal.SIGKILL
    assert not _outcome_heard(seen, pid)  # the outcome is sent only after it is stored
    return pid, seen


def test_a_finished_prompt_never_runs_again_after_kill_9(served):
    """Killed right after the result is stored, before anyone is told: after the restart the
    prompt is in history once and does not run again."""
    url, base, start = served
    pid, _ = _killed_at(served, "after_record", 7)
    start()
    history = request(url, "GET", "/history").json()
    assert list(history) == [pid] and history[pid]["status"]["status_str"] == "success"
    time.sleep(1.0)  # a re-run would have started by now
    assert request(url, "GET", "/queue").json() == {"queue_running": [], "queue_pending": []}
    assert len(list((base / "output").glob("crash007_*.png"))) == 1


def test_an_unrecorded_prompt_runs_again_and_nobody_heard_it_finish(served):
    """Killed after the run but before its result is stored: nobody was told it finished, and
    after the restart it runs (once) and is recorded."""
    url, _, start = served
    pid, seen = _killed_at(served, "after_run", 8)
    assert "execution_start" in [t for t, _ in seen]
    start()
    deadline = time.monotonic() + 60
    while pid not in request(url, "GET", "/history").json():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert request(url, "GET", f"/history/{pid}").json()[pid]["status"]["status_str"] == "success"
