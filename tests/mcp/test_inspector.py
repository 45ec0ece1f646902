"""The MCP Inspector CLI (Node) lists and calls tools against ``nodeloom mcp`` and ``python -m nodeloom.mcp``.

Needs ``npx`` (Node 20) and the npm registry or a warm npm cache; skipped, with the reason
printed, only when ``npx`` is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.mcp.helpers import pythonpath

INSPECTOR = "@modelcontextprotocol/inspector@0.15.0"


NODELOOM_MCP = ("-m", "nodeloom.cli.main", "mcp")  # the `nodeloom mcp` command
PYTHON_M = ("-m", "nodeloom.mcp")


def _inspector(tmp_path, server: tuple[str, ...], *method: str) -> dict:
    npx = shutil.which("npx")
    if npx is None:
        reason = "npx (Node.js) is not installed, so the MCP Inspector CLI cannot run"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    env = {**os.environ, "PYTHONPATH": pythonpath(), "HF_HUB_OFFLINE": "1"}
    cmd = [npx, "-y", INSPECTOR, "--cli", sys.executable, *server, "--base-dir", str(tmp_path), *method]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_inspector_lists_tools(tmp_path):
    listed = _inspector(tmp_path, NODELOOM_MCP, "--method", "tools/list")
    tools = {t["name"]: t for t in listed["tools"]}
    assert {"search_nodes", "validate_workflow", "run_workflow", "get_job", "cancel_job", "list_jobs"} <= set(tools)
    assert tools["search_nodes"]["annotations"]["readOnlyHint"] is True
    assert "outputSchema" in tools["run_workflow"]


def test_inspector_calls_search_nodes(tmp_path):
    called = _inspector(tmp_path, PYTHON_M, "--method", "tools/call", "--tool-name", "search_nodes", "--tool-arg", "query=image")
    assert called["isError"] is False
    assert called["structuredContent"]["total"] >= 1
    assert all("image" in json.dumps(n).lower() for n in called["structuredContent"]["nodes"])
