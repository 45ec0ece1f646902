"""MCPToolCall against a small MCP server started by the test, and against nodeloom's own server."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest

from nodeloom import Engine
from nodeloom.core.context import activate_services
from nodeloom.core.registry import PackInfo
from nodeloom.errors import NodeExecutionError, PolicyDeniedError, ValidationError
from nodeloom.mcp_client.policy import Policy, ServerSpec
from nodeloom.nodes.mcp import MCPToolCall
from nodeloom.nodes.mcp.tool_call import build_arguments
from tests.fixtures import stub_pack
from tests.mcp import pack
from tests.mcp.helpers import pythonpath

ECHO = Path(__file__).with_name("echo_server.py")


def _policy(tmp_path: Path, **servers: ServerSpec) -> Policy:
    echo = ServerSpec("echo", command=sys.executable, args=[str(ECHO)], timeout=30, tools=["echo", "add", "make_image", "slow", "fail"])
    return Policy(mcp_servers={"echo": echo, **servers})


def _engine(tmp_path: Path, policy: Policy) -> Engine:
    engine = Engine(base_dir=tmp_path, settings={"mcp_policy": policy})
    pack.register(engine)
    engine.registry.register_pack(PackInfo("stub", stub_pack.__name__), {"Output": stub_pack.Output})
    return engine


def _call(engine: Engine, **inputs):
    kw = {"arguments": "{}", "timeout": 0.0, **inputs}

    async def main():
        return await MCPToolCall.execute(**kw)

    with activate_services(engine.services):
        return anyio.run(main)


def test_build_arguments_fills_placeholders_and_merges_objects():
    args = build_arguments('{"text": "{a}", "n": {b}, "keep": "{x}"}', {"a": 'say "hi"', "b": 3})
    assert args == {"text": 'say "hi"', "n": 3, "keep": "{x}"}
    assert build_arguments("", {}, {"k": 1}) == {"k": 1}
    assert build_arguments('{"k": 0, "j": 1}', {}, '{"k": 2}') == {"k": 2, "j": 1}
    for template, values, obj, needle in (
        ('{"t": {a}}', {}, None, "input `a` is not connected"),
        ("[1]", {}, None, "must be a JSON object"),
        ('{"t": {a}}', {"a": object()}, None, "cannot be encoded as JSON"),
        ("{}", {}, "[1]", "`json_object` must be a JSON object"),
        ("{oops", {}, None, "must be a JSON object after filling"),
    ):
        with pytest.raises(ValidationError) as exc:
            build_arguments(template, values, obj)
        assert needle in exc.value.message


def test_text_json_and_image_outputs(tmp_path):
    engine = _engine(tmp_path, _policy(tmp_path))
    text, js, image, has_image = _call(engine, server="echo", tool="add", arguments='{"a": {a}, "b": 2}', a=40)
    assert json.loads(js) == {"sum": 42} and not has_image and tuple(image.shape) == (1, 1, 1, 3)
    text, js, image, has_image = _call(engine, server="echo", tool="make_image", arguments="{}", json_object={"width": 5, "height": 3})
    assert has_image and tuple(image.shape) == (1, 3, 5, 3)
    assert float(image[0, 0, 0, 0]) == 1.0 and float(image[0, 0, 0, 1]) == 0.0


def test_errors_timeouts_and_policy_surface_as_node_errors(tmp_path):
    engine = _engine(tmp_path, _policy(tmp_path))
    with pytest.raises(NodeExecutionError) as exc:
        _call(engine, server="echo", tool="fail")
    assert "deliberate failure" in exc.value.message and "`fail` on server `echo`" in exc.value.message
    with pytest.raises(NodeExecutionError) as exc:
        _call(engine, server="echo", tool="slow", arguments='{"seconds": 20}', timeout=1.0)
    assert "did not answer within 1 s" in exc.value.message
    with pytest.raises(PolicyDeniedError) as exc:
        _call(engine, server="elsewhere", tool="echo")
    assert exc.value.extra_info["rule"] == "mcp_servers"
    with pytest.raises(PolicyDeniedError) as exc:
        _call(engine, server="echo", tool="rm_rf")
    assert exc.value.extra_info["rule"] == "mcp_servers.echo.tools"
    broken = Policy(mcp_servers={"gone": ServerSpec("gone", command=str(tmp_path / "no-such-binary"))})
    with pytest.raises(NodeExecutionError) as exc:
        _call(_engine(tmp_path / "b", broken), server="gone", tool="x")
    assert "server `gone` failed" in exc.value.message


def test_workflow_through_the_engine(tmp_path):
    engine = _engine(tmp_path, _policy(tmp_path))
    prompt = {
        "1": {"class_type": "TinyInt", "inputs": {"value": 7}},
        "2": {"class_type": "MCPToolCall", "inputs": {"server": "echo", "tool": "add", "arguments": '{"a": {a}, "b": {b}}', "timeout": 0.0, "a": ["1", 0], "b": 5}},
        "3": {"class_type": "Output", "inputs": {"value": ["2", 1]}},
        "4": {"class_type": "MCPToolCall", "inputs": {"server": "echo", "tool": "make_image", "arguments": '{"width": 6, "height": 4}', "timeout": 0.0}},
        "5": {"class_type": "TinySaveImage", "inputs": {"images": ["4", 2], "filename_prefix": "mcp"}},
        "6": {"class_type": "MCPToolCall", "inputs": {"server": "echo", "tool": "fail", "arguments": "{}", "timeout": 0.0}},
        "7": {"class_type": "Output", "inputs": {"value": ["6", 0]}},
    }
    result = engine.run(prompt)
    assert json.loads(result.value("2", 1)) == {"sum": 12}
    assert result.outputs["5"]["images"][0]["filename"].startswith("mcp_")
    assert result.status == "error" and "deliberate failure" in result.errors[0]["exception_message"]
    engine.close()


def test_against_nodeloom_own_server(tmp_path):
    own = ServerSpec(
        "nodeloom", command=sys.executable, args=["-m", "nodeloom.mcp", "--base-dir", str(tmp_path / "own"), "--read-only"],
        env={"PYTHONPATH": pythonpath(), "HF_HUB_OFFLINE": "1"}, timeout=90,
    )
    engine = _engine(tmp_path, _policy(tmp_path, nodeloom=own))
    text, js, _, has_image = _call(engine, server="nodeloom", tool="search_nodes", arguments='{"query": {a}}', a="mcp tool")
    assert json.loads(js)["nodes"][0]["class_type"] == "MCPToolCall" and not has_image


def test_against_nodeloom_over_streamable_http_with_token(tmp_path):
    from nodeloom.mcp.cli import http_app
    from nodeloom.mcp.server import NodeloomMCP
    from tests.mcp.helpers import free_port, serve_http

    served = Engine(base_dir=tmp_path / "served")
    pack.register(served)
    app = NodeloomMCP(served, transport="http")
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    remote = ServerSpec("remote", url=url, headers={"Authorization": "Bearer tok"}, timeout=30)
    wrong = ServerSpec("wrong", url=url, headers={"Authorization": "Bearer nope"}, timeout=30)
    engine = _engine(tmp_path, Policy(mcp_servers={"remote": remote, "wrong": wrong}))
    try:
        with serve_http(http_app(app, host="127.0.0.1", port=port, token="tok"), port):
            _, js, _, _ = _call(engine, server="remote", tool="describe_node", arguments='{"class_type": "TinySolidImage"}')
            with pytest.raises(NodeExecutionError) as exc:
                _call(engine, server="wrong", tool="describe_node", arguments='{"class_type": "TinySolidImage"}')
    finally:
        app.close()
        served.close()
    assert json.loads(js)["class_type"] == "TinySolidImage"
    assert "server `wrong` failed" in exc.value.message


def test_interrupting_the_run_stops_waiting_for_the_tool(tmp_path):
    import threading
    import time

    engine = _engine(tmp_path, _policy(tmp_path))
    prompt = {
        "1": {"class_type": "MCPToolCall", "inputs": {"server": "echo", "tool": "slow", "arguments": '{"seconds": 30}', "timeout": 0.0}},
        "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}},
    }
    timer = threading.Timer(6.0, engine.interrupt)  # long enough for the server process to start
    timer.start()
    t0 = time.monotonic()
    result = engine.run(prompt)
    timer.cancel()
    assert result.status == "interrupted" and time.monotonic() - t0 < 20
    engine.close()
