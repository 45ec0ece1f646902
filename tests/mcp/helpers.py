"""Shared helpers of the MCP transport tests: subprocess parameters, a loopback HTTP server."""

from __future__ import annotations

import os
import socket
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from mcp import StdioServerParameters

ROOT = Path(__file__).resolve().parents[2]


def pythonpath() -> str:
    """PYTHONPATH that makes this checkout's ``src`` and ``tests`` importable in a child process."""
    return os.pathsep.join([str(ROOT / "src"), str(ROOT)])


def stdio_params(base_dir: Path, *extra: str, with_pack: bool = False) -> StdioServerParameters:
    """Parameters that start ``python -m nodeloom.mcp`` over stdio (with the tiny pack as custom nodes)."""
    pack = ["--custom-nodes", str(ROOT / "tests" / "mcp" / "custom_nodes")] if with_pack else []
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "nodeloom.mcp", "--base-dir", str(base_dir), *pack, *extra],
        env={"PYTHONPATH": pythonpath(), "HF_HUB_OFFLINE": "1"},
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_http(asgi, port: int):
    """Run an ASGI app with uvicorn on 127.0.0.1:port in a thread for the duration of the block."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(asgi, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        threading.Event().wait(0.05)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        thread.join(10)


def http_client(url: str, token: str | None = None):
    """An SDK client for ``url`` sending ``Authorization: Bearer <token>``."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {token}"} if token else None
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=120.0))
    return Client(streamable_http_client(url, http_client=http)), http
