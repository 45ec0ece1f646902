"""``nodeloom serve --mcp``: the MCP server in the same process as the HTTP server.

:func:`attach_mcp` adds start and stop hooks to the server's aiohttp application: at start an
:class:`~nodeloom.mcp.server.NodeloomMCP` over the server's engine, whose jobs go through the
server's durable queue (:class:`~nodeloom.mcp.queue_runner.QueueJobRunner`), is served over
streamable HTTP by uvicorn on a thread of its own (its own port: aiohttp does not host ASGI
apps); at shutdown it stops before the server's worker and stores do.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from nodeloom.errors import NodeloomError

__all__ = ["McpAlongside", "attach_mcp"]

log = logging.getLogger("nodeloom.mcp")

_MCP: Any = None  # the aiohttp AppKey, made on first use so that importing this needs no aiohttp


def _key() -> Any:
    global _MCP
    if _MCP is None:
        from aiohttp import web

        _MCP = web.AppKey("nodeloom_mcp", McpAlongside)
    return _MCP


@dataclass
class McpAlongside:
    """Where the MCP endpoint of a server is, and what runs it."""

    host: str
    port: int
    path: str = "/mcp"
    policy: Any = None
    token: str | None = None
    allowed_hosts: list[str] = field(default_factory=list)
    app: Any = None
    server: Any = None
    thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        from nodeloom.server.cli import base_url

        return base_url(self.host, self.port) + self.path


def attach_mcp(web_app: Any, *, host: str, port: int, path: str = "/mcp", policy: Any = None,
               token: str | None = None, allowed_hosts: list[str] | None = None) -> McpAlongside:
    """Serve MCP next to ``web_app`` (made by :func:`nodeloom.server.app.create_app`).

    Args:
        web_app: the server's application (not started yet).
        host / port / path: where the MCP endpoint listens.
        policy: the MCP :class:`~nodeloom.mcp.policy.Policy` (default: its defaults).
        token: the bearer token MCP clients must send (the server's own token, when it has one).
        allowed_hosts: more Host header values to accept.

    Returns:
        The endpoint's description; its ``app`` is set once the server has started.
    """
    mcp = McpAlongside(host=host, port=port, path=path, policy=policy, token=token,
                       allowed_hosts=list(allowed_hosts or []))
    web_app[_key()] = mcp
    web_app.on_startup.append(_start)
    web_app.on_shutdown.append(_stop)  # before the server's cleanup closes its queue
    return mcp


async def _start(web_app: Any) -> None:
    import uvicorn

    from nodeloom.mcp.cli import http_app
    from nodeloom.mcp.queue_runner import QueueJobRunner
    from nodeloom.mcp.server import NodeloomMCP
    from nodeloom.server.state import STATE

    mcp: McpAlongside = web_app[_key()]
    state = web_app[STATE]
    runner = functools.partial(QueueJobRunner, queue=state.queue, worker=state.worker)
    mcp.app = NodeloomMCP(state.engine, mcp.policy, runner=runner, transport="http")
    asgi = http_app(mcp.app, host=mcp.host, port=mcp.port, path=mcp.path, token=mcp.token,
                    allowed_hosts=mcp.allowed_hosts)
    mcp.server = uvicorn.Server(uvicorn.Config(asgi, host=mcp.host, port=mcp.port, log_level="warning", lifespan="on"))
    mcp.thread = threading.Thread(target=mcp.server.run, name="nodeloom-mcp-http", daemon=True)
    mcp.thread.start()
    deadline = time.monotonic() + 30
    while not mcp.server.started:
        if not mcp.thread.is_alive() or time.monotonic() > deadline:
            mcp.app.close()
            raise NodeloomError(f"the MCP endpoint could not listen on {mcp.host} port {mcp.port}",
                                type="mcp_unavailable")
        await asyncio.sleep(0.02)
    log.info("MCP endpoint: %s", mcp.url)


async def _stop(web_app: Any) -> None:
    mcp: McpAlongside = web_app[_key()]
    if mcp.server is not None:
        mcp.server.should_exit = True
    if mcp.thread is not None:
        mcp.thread.join(10)
    if mcp.app is not None:
        mcp.app.close()
