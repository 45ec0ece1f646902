"""The MCP server over real transports: stdio subprocesses and streamable HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import anyio
import pytest
from mcp import Client

from nodeloom.mcp.cli import http_app, is_loopback
from nodeloom.mcp.server import NodeloomMCP
from tests.mcp.helpers import free_port, http_client, pythonpath, serve_http, stdio_params
from tests.mcp.pack import image_workflow

BROKEN = {"1": {"class_type": "MCPToolCal", "inputs": {}}, "2": {"class_type": "MCPToolCall", "inputs": {"servr": "x"}}}


async def _discovery(client) -> tuple:
    tools = await client.list_tools()
    found = await client.call_tool("search_nodes", {"query": "mcp tool"})
    report = await client.call_tool("validate_workflow", {"workflow": BROKEN})
    return {t.name for t in tools.tools}, found.structured_content, report.structured_content


def _check_discovery(names, found, report) -> None:
    assert {"search_nodes", "run_workflow", "get_job"} <= names
    assert found["nodes"][0]["class_type"] == "MCPToolCall"
    assert report["ok"] is False
    assert "MCPToolCall" in report["node_errors"]["1"]["errors"][0]["extra_info"]["suggestions"]
    unknown = [e for e in report["node_errors"]["2"]["errors"] if e["type"] == "unknown_input"]
    assert unknown[0]["extra_info"]["suggestions"] == ["server"]


async def _run_flow(client) -> tuple:
    progress = []

    async def on_progress(value, total, message):
        progress.append(value)

    run = await client.call_tool("run_workflow", {"workflow": image_workflow(32, 32, steps=4, delay=0.02), "wait_seconds": 60}, progress_callback=on_progress)
    slow = await client.call_tool("run_workflow", {"workflow": image_workflow(steps=8, delay=0.1, prefix="slow"), "wait_seconds": 0, "idempotency_key": "job-A"})
    again = await client.call_tool("run_workflow", {"workflow": image_workflow(steps=8, delay=0.1, prefix="slow"), "wait_seconds": 0, "idempotency_key": "job-A"})
    done = await client.call_tool("get_job", {"job_id": slow.structured_content["job_id"], "wait_seconds": 60})
    return run, progress, slow.structured_content, again.structured_content, done.structured_content


def _check_run_flow(run, progress, slow, again, done, output_dir) -> None:
    assert run.structured_content["status"] == "success"
    assert [b.type for b in run.content].count("image") == 1
    assert len(progress) >= 2
    assert slow["status"] in ("queued", "running") and again["job_id"] == slow["job_id"] and again["deduplicated"]
    assert done["status"] == "success"
    assert len(list(output_dir.glob("slow_*.png"))) == 1


def test_stdio_python_m_nodeloom_mcp_read_only(tmp_path):
    async def main():
        async with Client(stdio_params(tmp_path, "--read-only")) as client:
            found = await _discovery(client)
            run = await client.call_tool("run_workflow", {"workflow": BROKEN})
            return found, run

    found, run = anyio.run(main)
    _check_discovery(*found)
    assert run.is_error and json.loads(run.content[0].text)["extra_info"]["rule"] == "read_only"
    audit = [json.loads(line) for line in (tmp_path / "user" / "mcp_audit.jsonl").read_text().splitlines()]
    assert [a["tool"] for a in audit][-1] == "run_workflow" and audit[-1]["outcome"] == "denied"
    assert all(a["who"].startswith("stdio") for a in audit)


def test_stdio_runs_workflows_with_progress_images_and_jobs(tmp_path):
    async def main():
        async with Client(stdio_params(tmp_path, with_pack=True)) as client:
            return await _run_flow(client)

    _check_run_flow(*anyio.run(main), tmp_path / "output")


def test_http_with_token_and_host_checks(engine, make_app):
    app: NodeloomMCP = make_app(transport="http")
    port = free_port()
    asgi = http_app(app, host="127.0.0.1", port=port, token="s3cret")

    async def main(url):
        client, http = http_client(url, "s3cret")
        async with http, client:
            discovery = await _discovery(client)
            flow = await _run_flow(client)
        import httpx2

        async with httpx2.AsyncClient() as raw:
            body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
            no_token = await raw.post(url, json=body)
            bad_token = await raw.post(url, json=body, headers={"Authorization": "Bearer nope"})
            bad_host = await raw.post(url, json=body, headers={"Authorization": "Bearer s3cret", "Host": "evil.example:80"})
            bad_origin = await raw.post(url, json=body, headers={"Authorization": "Bearer s3cret", "Origin": "http://evil.example"})
        return discovery, flow, [no_token.status_code, bad_token.status_code, bad_host.status_code, bad_origin.status_code]

    with serve_http(asgi, port) as url:
        discovery, flow, statuses = anyio.run(main, url)
    _check_discovery(*discovery)
    _check_run_flow(*flow, engine.paths.output_dir)
    assert statuses == [401, 401, 421, 403]
    assert any(r.who.startswith("http") and "@127.0.0.1#" in r.who for r in app.audit.records())


def test_cli_refuses_non_loopback_bind_without_token(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "nodeloom.mcp", "--http", "--host", "0.0.0.0", "--base-dir", str(tmp_path)],
        env={"PYTHONPATH": pythonpath(), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2 and "bearer token" in proc.stderr
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and not is_loopback("0.0.0.0")


def test_cli_http_subprocess(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nodeloom.mcp", "--http", "--port", str(port), "--base-dir", str(tmp_path), "--token", "tok"],
        env={"PYTHONPATH": pythonpath(), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/mcp"

        async def main():
            deadline = time.monotonic() + 60
            while True:
                client, http = http_client(url, "tok")
                try:
                    async with http, client:
                        return await client.list_tools()
                except Exception:  # noqa: BLE001 - the server is still starting
                    if time.monotonic() > deadline:
                        raise
                    await anyio.sleep(0.3)

        tools = anyio.run(main)
        assert "run_workflow" in {t.name for t in tools.tools}
    finally:
        proc.terminate()
        proc.wait(20)
        if proc.stderr:
            proc.stderr.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_loopback_names(host):
    assert is_loopback(host)
