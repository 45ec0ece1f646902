"""Fixtures for server tests: a real engine with the test pack, a real server on loopback,
and a small ComfyUI-style client (urllib for HTTP, websocket-client for the WebSocket)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import websocket
from aiohttp import web

from nodeloom import Engine
from nodeloom.server.app import create_app
from nodeloom.server.config import ServerConfig
from tests.server import server_pack


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """Runs an aiohttp application on its own event loop thread."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1") -> None:
        self.app, self.host, self.port = app, host, free_port()
        self.url = f"http://{host}:{self.port}"
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("server did not start")

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner = web.AppRunner(self.app)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port).start()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def close(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@dataclass
class Reply:
    status: int
    body: bytes
    headers: Any

    def json(self) -> Any:
        return json.loads(self.body)


def request(base: str, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
            data: bytes | None = None) -> Reply:
    """One HTTP request; never raises for HTTP error statuses."""
    hdrs = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(base + path, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return Reply(r.status, r.read(), r.headers)
    except urllib.error.HTTPError as e:
        return Reply(e.code, e.read(), e.headers)


def open_ws(base: str, client_id: str, *, flags: dict[str, Any] | None = None, query: str = "") -> websocket.WebSocket:
    ws = websocket.create_connection(f"{base.replace('http', 'ws', 1)}/ws?clientId={client_id}{query}", timeout=30)
    first = json.loads(ws.recv())
    assert first["type"] == "status" and first["data"]["sid"] == client_id
    if flags is not None:
        ws.send(json.dumps({"type": "feature_flags", "data": flags}))
        answer = json.loads(ws.recv())
        assert answer["type"] == "feature_flags"
    return ws


def collect(ws: websocket.WebSocket, prompt_id: str, timeout: float = 60) -> tuple[list[tuple[str, Any]], list[bytes]]:
    """Messages until ``executing`` with node None for ``prompt_id``: (json events, binary frames)."""
    events: list[tuple[str, Any]] = []
    frames: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ws.settimeout(max(0.1, deadline - time.monotonic()))
        msg = ws.recv()
        if isinstance(msg, bytes):
            frames.append(msg)
            continue
        m = json.loads(msg)
        events.append((m["type"], m["data"]))
        if m["type"] == "executing" and m["data"].get("node") is None and m["data"].get("prompt_id") == prompt_id:
            return events, frames
    raise TimeoutError(f"prompt {prompt_id} did not finish; got {[e[0] for e in events]}")


def make_engine(base: Path) -> Engine:
    engine = Engine(base_dir=base)
    server_pack.add_to(engine)
    return engine


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    eng = make_engine(tmp_path)
    yield eng
    eng.close()


@pytest.fixture
def server(engine: Engine, tmp_path: Path) -> Any:
    srv = LiveServer(create_app(engine, ServerConfig(db_path=tmp_path / "queue.sqlite3")))
    yield srv
    srv.close()


def submit(base: str, prompt: dict[str, Any], client_id: str | None = None, **extra: Any) -> Reply:
    body: dict[str, Any] = {"prompt": prompt, **extra}
    if client_id is not None:
        body["client_id"] = client_id
    return request(base, "POST", "/prompt", body)


def wait_history(base: str, prompt_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = request(base, "GET", f"/history/{prompt_id}").json()
        if prompt_id in h:
            return h[prompt_id]
        time.sleep(0.05)
    raise TimeoutError(f"{prompt_id} not in history")
