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


def test_stdio_python_m_nodeloom_mcp_runs_an_example(tmp_path):
    progress = []

    async def on_progress(value, total, message):
        progress.append((value, total, message))

    async def main():
        async with Client(stdio_params(tmp_path)) as client:
            found = await _discovery(client)
            examples = await client.call_tool("list_example_workflows", {})
            run = await client.call_tool("run_workflow", {"example": "invert_scale", "wait_seconds": 120}, progress_callback=on_progress)
            return found, examples.structured_content, run

    found, examples, run = anyio.run(main)
    _check_discovery(*found)
    assert "invert_scale" in [e["name"] for e in examples["examples"]]
    assert run.structured_content["status"] == "success", run.content[0].text
    image = run.structured_content["images"][0]
    assert (image["width"], image["height"]) == (128, 75) and image["uri"].startswith("nodeloom://output/nodeloom/invert_scale_")
    assert [b.type for b in run.content].count("image") == 1
    # each node's step is reported even when the run outpaces the waiter, in increasing order
    values = [v for v, _, _ in progress]
    assert len(progress) >= 3 and values == sorted(values) and progress[-1][0] == progress[-1][1]
    audit = [json.loads(line) for line in (tmp_path / "user" / "mcp_audit.jsonl").read_text().splitlines()]
    assert [a["tool"] for a in audit][-1] == "run_workflow" and all(a["who"].startswith("stdio") for a in audit)


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


def test_stdio_channel_carries_only_protocol_messages(tmp_path):
    """A custom-node pack that prints while loading must not corrupt the stdio channel."""
    from tests.mcp.helpers import ROOT

    proc = subprocess.Popen(
        [sys.executable, "-m", "nodeloom.mcp", "--base-dir", str(tmp_path), "--custom-nodes", str(ROOT / "tests" / "mcp" / "custom_nodes")],
        env={"PYTHONPATH": pythonpath(), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}
    try:
        out, err = proc.communicate(json.dumps(init) + "\n", timeout=120)
    finally:
        proc.kill()
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines and all(json.loads(line)["jsonrpc"] == "2.0" for line in lines)
    assert json.loads(lines[0])["result"]["serverInfo"]["name"] == "nodeloom"
    assert "tiny MCP test pack loaded" in err


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
        [sys.executable, "-m", "nodeloom.mcp", "--http", "--port", str(port), "--base-dir", str(tmp_path), "--token", "tok", "--read-only"],
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
                        return await client.list_tools(), await client.call_tool("run_workflow", {"workflow": BROKEN})
                except Exception:  # noqa: BLE001 - the server is still starting
                    if time.monotonic() > deadline:
                        raise
                    await anyio.sleep(0.3)

        tools, run = anyio.run(main)
        assert "run_workflow" in {t.name for t in tools.tools}
        assert run.is_error and json.loads(run.content[0].text)["extra_info"]["rule"] == "read_only"
    finally:
        proc.terminate()
        proc.wait(20)
        if proc.stderr:
            proc.stderr.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_loopback_names(host):
    assert is_loopback(host)


def test_cli_options_fit_a_parent_parser_with_its_own_engine_options(capsys):
    import argparse

    from nodeloom.mcp.cli import add_mcp_arguments, mcp_main

    parent = argparse.ArgumentParser(prog="nodeloom")
    sub = parent.add_subparsers(dest="command")
    mcp = sub.add_parser("mcp")
    mcp.add_argument("--base-dir", default=".")  # the main CLI's own engine options
    add_mcp_arguments(mcp, engine_options=False)
    args = parent.parse_args(["mcp", "--http", "--host", "10.1.2.3", "--base-dir", "/srv", "--read-only"])
    assert (args.http, args.host, args.base_dir, args.read_only, args.port) == (True, "10.1.2.3", "/srv", True, 8765)
    assert mcp_main(args) == 2 and "needs a bearer token" in capsys.readouterr().err
    full = argparse.ArgumentParser()
    add_mcp_arguments(full)
    args = full.parse_args(["--custom-nodes", "a", "--custom-nodes", "b", "--cpu", "--policy", "p.toml"])
    assert args.custom_nodes == ["a", "b"] and args.cpu and args.policy == "p.toml" and not args.http
    assert mcp_main(full.parse_args(["--policy", "/nonexistent/policy.toml"])) == 2
    assert "cannot read policy file" in capsys.readouterr().err
