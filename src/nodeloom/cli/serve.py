"""``nodeloom serve [--mcp]``: the server's flags, plus the MCP endpoint wired in beside it.

This is the composition root for ``serve``: the HTTP server (``nodeloom.server``) and the MCP
adapter (``nodeloom.mcp``) never import each other; here the MCP server is attached to the
server's aiohttp application, over the server's engine, with its jobs going through the
server's durable queue (:class:`~nodeloom.mcp.queue_runner.QueueJobRunner`). At start the MCP
app is served over streamable HTTP by uvicorn on a thread of its own (its own port: aiohttp
does not host ASGI apps); at shutdown it stops before the server's worker and stores do.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nodeloom.errors import NodeloomError

if TYPE_CHECKING:
    from nodeloom.engine import Engine
    from aiohttp import web

    from nodeloom.mcp_client.policy import Policy
    from nodeloom.server.config import ServerConfig

__all__ = ["McpAlongside", "add_arguments", "attach_mcp", "main", "serve"]

log = logging.getLogger("nodeloom.mcp")

_MCP: Any = None  # the aiohttp AppKey, made on first use so that importing this needs no aiohttp


def _key() -> Any:
    global _MCP
    if _MCP is None:
        from aiohttp import web

        _MCP = web.AppKey("nodeloom_mcp", McpAlongside)
    return _MCP


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The server's flags (:func:`nodeloom.server.cli.add_serve_arguments`) and the MCP ones."""
    from nodeloom.server.cli import add_serve_arguments

    add_serve_arguments(parser)
    agents = parser.add_argument_group("MCP (agents)")
    agents.add_argument("--mcp", action="store_true",
                        help="also serve MCP (streamable HTTP) for agents; their jobs go through this server's queue "
                             "and history (needs the mcp extra)")
    agents.add_argument("--mcp-port", type=int, default=8765, help="port of the MCP endpoint (default 8765)")
    agents.add_argument("--mcp-policy", default=None, metavar="FILE",
                        help="MCP policy file (.toml, .yaml or .json); defaults apply without one")
    return parser


def serve(args: argparse.Namespace, *, engine: Engine | None = None) -> int:
    """Run the server (with the MCP endpoint when ``--mcp``); returns the exit code."""
    from nodeloom.server.cli import serve_main

    extensions = [functools.partial(_attach_from_args, args)] if getattr(args, "mcp", False) else []
    return serve_main(args, engine=engine, extensions=extensions)


def main(argv: list[str] | None = None, *, prog: str = "nodeloom serve") -> int:
    """``nodeloom serve`` and ``python -m nodeloom.server``: parse ``argv`` and serve."""
    parser = argparse.ArgumentParser(prog=prog, description="nodeloom's ComfyUI-compatible HTTP/WebSocket server")
    return serve(add_arguments(parser).parse_args(argv))


def _attach_from_args(args: argparse.Namespace, app: web.Application, config: ServerConfig, token: str | None) -> str:
    """Add the MCP endpoint to ``app`` (``--mcp``); its host is the server's first address."""
    from nodeloom.errors import require

    require("mcp", "mcp")
    from nodeloom.mcp_client.policy import load_policy

    policy = load_policy(args.mcp_policy)
    mcp = attach_mcp(app, host=config.hosts[0], port=args.mcp_port, policy=policy, token=token,
                     allowed_hosts=list(config.allowed_hosts))
    return f"MCP endpoint (streamable HTTP): {mcp.url}"


@dataclass
class McpAlongside:
    """Where the MCP endpoint of a server is, and what runs it."""

    host: str
    port: int
    path: str = "/mcp"
    policy: Policy | None = None
    token: str | None = None
    allowed_hosts: list[str] = field(default_factory=list)
    app: Any = None
    server: Any = None
    thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        from nodeloom.server.cli import base_url

        return base_url(self.host, self.port) + self.path


def attach_mcp(web_app: web.Application, *, host: str, port: int, path: str = "/mcp", policy: Policy | None = None,
               token: str | None = None, allowed_hosts: list[str] | None = None) -> McpAlongside:
    """Serve MCP next to ``web_app`` (made by :func:`nodeloom.server.app.create_app`).

    Args:
        web_app: the server's application (not started yet).
        host / port / path: where the MCP endpoint listens.
        policy: the MCP policy (default: its defaults).
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


async def _start(web_app: web.Application) -> None:
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


async def _stop(web_app: web.Application) -> None:
    mcp: McpAlongside = web_app[_key()]
    if mcp.server is not None:
        mcp.server.should_exit = True
    if mcp.thread is not None:
        mcp.thread.join(10)
    if mcp.app is not None:
        mcp.app.close()
