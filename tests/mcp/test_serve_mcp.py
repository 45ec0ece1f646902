"""``nodeloom serve --mcp``: agents' jobs go through the server's own durable queue and history.

One real server process (HTTP + the MCP endpoint over streamable HTTP, on 127.0.0.1), the
SDK's client, and plain HTTP requests to the ComfyUI routes to see the same jobs from the
browser's side. Then ``kill -9`` and a restart: the queued MCP job still runs and its MCP
record follows it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import anyio
import pytest

from tests.mcp.helpers import ROOT, free_port, http_client, pythonpath
from tests.mcp.pack import image_workflow


def _start(base: Path, port: int, mcp_port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "nodeloom", "serve", "--base-dir", str(base), "--port", str(port), "--mcp",
         "--mcp-port", str(mcp_port)],
        env={**os.environ, "PYTHONPATH": pythonpath(), "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    deadline = time.monotonic() + 120
    seen = []
    while True:
        line = proc.stdout.readline()
        seen.append(line)
        if "MCP endpoint" in line:
            return proc
        assert line or proc.poll() is None, "".join(seen)
        assert time.monotonic() < deadline, "".join(seen)


def _stop(proc: subprocess.Popen, sig: int = signal.SIGINT) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    proc.stdout.close()


def _get(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        return json.loads(r.read())


def _wait_running(port: int, prompt_id: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        queue = _get(port, "/queue")
        if any(item[1] == prompt_id for item in queue["queue_running"]):
            return queue
        time.sleep(0.05)
    raise AssertionError(f"{prompt_id} never ran")


def test_mcp_jobs_share_the_server_queue_and_survive_a_crash(tmp_path):
    base = tmp_path / "base"
    (base / "custom_nodes").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "mcp" / "custom_nodes" / "tiny_mcp_pack.py", base / "custom_nodes")
    port, mcp_port = free_port(), free_port()
    url = f"http://127.0.0.1:{mcp_port}/mcp"
    slow = image_workflow(8, 8, steps=40, delay=0.1, prefix="slow")

    proc = _start(base, port, mcp_port)
    try:
        progress: list[float] = []

        async def first():
            client, http = http_client(url)
            async with http, client:
                async def on_progress(value, total, message):
                    progress.append(value)

                run = await client.call_tool("run_workflow", {"workflow": image_workflow(24, 16, steps=4, delay=0.02),
                                                              "wait_seconds": 60}, progress_callback=on_progress)
                running = await client.call_tool("run_workflow", {"workflow": slow, "wait_seconds": 0})
                queued = await client.call_tool("run_workflow", {"workflow": image_workflow(8, 8, prefix="q"),
                                                                 "wait_seconds": 0, "idempotency_key": "later"})
                return run.structured_content, running.structured_content, queued.structured_content

        run, running, queued = anyio.run(first)
        # a finished MCP job is an ordinary entry of the server's history, outputs included
        assert run["status"] == "success" and len(progress) >= 3 and progress == sorted(progress)
        history = _get(port, f"/history/{run['job_id']}")[run["job_id"]]
        assert history["status"]["status_str"] == "success"
        assert history["outputs"]["2"]["images"][0]["filename"] == run["images"][0]["filename"]
        # the running and the waiting MCP jobs are in the server's queue, as a browser sees it
        queue = _wait_running(port, running["job_id"])
        assert [item[1] for item in queue["queue_pending"]] == [queued["job_id"]]

        async def cancel_and_retry():
            client, http = http_client(url)
            async with http, client:
                gone = await client.call_tool("cancel_job", {"job_id": queued["job_id"]})
                retried = await client.call_tool("run_workflow", {"workflow": image_workflow(8, 8, prefix="q"),
                                                                  "wait_seconds": 0, "idempotency_key": "later"})
                stopped = await client.call_tool("cancel_job", {"job_id": running["job_id"]})
                after = await client.call_tool("get_job", {"job_id": running["job_id"], "wait_seconds": 30})
                return gone.structured_content, retried.structured_content, stopped, after.structured_content

        gone, retried, stopped, after = anyio.run(cancel_and_retry)
        assert gone["status"] == "cancelled" and retried["job_id"] == queued["job_id"] and retried["deduplicated"]
        assert after["status"] == "cancelled" and not stopped.is_error
        assert _get(port, f"/history/{running['job_id']}")[running["job_id"]]["status"]["status_str"] == "error"
        assert _get(port, "/queue") == {"queue_running": [], "queue_pending": []}

        # a job is running and another waits when the server dies
        async def submit_two():
            client, http = http_client(url)
            async with http, client:
                a = await client.call_tool("run_workflow", {"workflow": image_workflow(8, 8, steps=30, delay=0.1, prefix="a"),
                                                            "wait_seconds": 0, "idempotency_key": "crash-a"})
                b = await client.call_tool("run_workflow", {"workflow": image_workflow(8, 8, prefix="b"),
                                                            "wait_seconds": 0, "idempotency_key": "crash-b"})
                return a.structured_content, b.structured_content

        a, b = anyio.run(submit_two)
        _wait_running(port, a["job_id"])
    finally:
        _stop(proc, signal.SIGKILL)

    proc = _start(base, port, mcp_port)
    try:
        async def after_restart():
            client, http = http_client(url)
            async with http, client:
                done_a = await client.call_tool("get_job", {"job_id": a["job_id"], "wait_seconds": 60})
                done_b = await client.call_tool("get_job", {"job_id": b["job_id"], "wait_seconds": 60})
                again = await client.call_tool("run_workflow", {"workflow": image_workflow(8, 8, prefix="b"),
                                                                "wait_seconds": 0, "idempotency_key": "crash-b"})
                return done_a.structured_content, done_b.structured_content, again.structured_content

        done_a, done_b, again = anyio.run(after_restart)
        assert done_a["status"] == "success" and done_b["status"] == "success", (done_a, done_b)
        assert done_b["images"][0]["filename"].startswith("b_")
        assert again["job_id"] == b["job_id"] and again["deduplicated"]  # a retry after the crash runs nothing
        assert _get(port, f"/history/{b['job_id']}")[b["job_id"]]["status"]["completed"] is True
    finally:
        _stop(proc)


def test_queue_runner_follows_the_server_queue_in_process(tmp_path):
    """Without a worker running: waiting jobs count against the limit, and a prompt a browser
    deletes from the server's queue ends the MCP job as cancelled."""
    from nodeloom import Engine
    from nodeloom.errors import PolicyDeniedError
    from nodeloom.mcp.jobs import JobStore
    from nodeloom.mcp_client.policy import Policy
    from nodeloom.mcp.queue_runner import QueueJobRunner
    from nodeloom.server.queue import PromptQueue
    from nodeloom.server.store import JobStore as QueueStore

    engine = Engine(base_dir=tmp_path)
    queue = PromptQueue(QueueStore(":memory:"))

    class Idle:  # the server's worker, asleep: jobs stay pending
        def interrupt(self, prompt_id=None):
            return False

    policy = Policy()
    policy.limits.max_queued_jobs = 2
    runner = QueueJobRunner(engine, JobStore(None), policy, queue=queue, worker=Idle())
    try:
        browser = queue.put("from-browser", queue.next_number(), image_workflow(), {"client_id": "ui"}, [])
        job, created = runner.submit(image_workflow(prefix="agent"), key="k", who="test")
        assert created and job.status == "queued"
        assert [j.prompt_id for j in queue.pending()] == [browser.prompt_id, job.id]
        with pytest.raises(PolicyDeniedError, match="max_queued_jobs"):
            runner.submit(image_workflow(prefix="third"))
        assert runner.submit(image_workflow(prefix="agent"), key="k")[0] is job  # a retry is not a new job
        queue.delete([job.id])  # what the frontend's "delete from queue" does
        assert job.status == "cancelled" and "removed from the server's queue" in job.error["message"]
        assert job.done.is_set()
    finally:
        runner.close()
        engine.close()
