"""``nodeloom mcp``: serve the MCP server over stdio (default) or streamable HTTP.

The main CLI calls :func:`add_mcp_arguments` and :func:`mcp_main`; ``python -m nodeloom.mcp``
runs :func:`main` directly. Over HTTP the server checks Host/Origin against an allow-list
(loopback names plus the policy's ``[http]`` entries and ``--allowed-host/--allowed-origin``)
and refuses to bind a non-loopback address without a bearer token.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nodeloom.errors import NodeloomError

if TYPE_CHECKING:
    from nodeloom.engine import Engine

__all__ = ["BearerTokenMiddleware", "add_mcp_arguments", "http_app", "is_loopback", "main", "mcp_main"]

log = logging.getLogger("nodeloom.mcp")

TOKEN_ENV = "NODELOOM_MCP_TOKEN"


def add_mcp_arguments(parser: argparse.ArgumentParser, *, engine_options: bool = True) -> None:
    """Add the ``nodeloom mcp`` options to ``parser``.

    Args:
        parser: the (sub)parser of ``nodeloom mcp``.
        engine_options: also add ``--base-dir``, ``--custom-nodes``, ``--disable-all-custom-nodes``,
            ``--extra-model-paths-config`` and ``--cpu``; pass False when the caller adds its own
            (:func:`mcp_main` reads whichever of them exist).
    """
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    parser.add_argument("--path", default="/mcp", help="HTTP endpoint path (default /mcp)")
    parser.add_argument("--policy", default=None, help="policy file (.toml, .yaml or .json); defaults apply without one")
    parser.add_argument("--token", default=None, help=f"bearer token HTTP clients must send (or set {TOKEN_ENV}); required off loopback")
    parser.add_argument("--read-only", action="store_true", help="allow discovery and validation only")
    parser.add_argument("--allowed-host", action="append", default=[], help="extra Host header value to accept (repeatable)")
    parser.add_argument("--allowed-origin", action="append", default=[], help="extra Origin header value to accept (repeatable)")
    if engine_options:
        group = parser.add_argument_group("engine")
        group.add_argument("--base-dir", default=".", help="parent of input/, output/, models/, user/ (default .)")
        group.add_argument("--custom-nodes", action="append", default=[], metavar="DIR", help="a folder of custom-node packs (repeatable)")
        group.add_argument("--disable-all-custom-nodes", action="store_true", help="load built-in nodes only")
        group.add_argument("--extra-model-paths-config", action="append", default=[], metavar="YAML", help="extra_model_paths.yaml (repeatable)")
        group.add_argument("--cpu", action="store_true", help="run models on the CPU")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback name or address."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def mcp_main(args: argparse.Namespace, *, engine: Engine | None = None) -> int:
    """Run the MCP server as ``args`` say; blocks until the transport closes.

    Args:
        args: parsed :func:`add_mcp_arguments` options.
        engine: an engine to serve (default: a new one over ``--base-dir``).

    Returns:
        The process exit status (2 for a refused configuration).
    """
    from nodeloom.mcp_client.policy import load_policy

    token = args.token or os.environ.get(TOKEN_ENV) or None
    if args.http and not is_loopback(args.host) and not token:
        print(f"nodeloom mcp: binding {args.host} (not loopback) needs a bearer token: pass --token or set {TOKEN_ENV}", file=sys.stderr)
        return 2
    try:
        policy = load_policy(args.policy)
    except NodeloomError as exc:
        print(f"nodeloom mcp: {exc.message}", file=sys.stderr)
        return 2
    if args.read_only:
        policy.read_only = True
    owned = engine is None
    if engine is None:
        # over stdio, stdout is the protocol channel: a custom-node pack that prints while it
        # loads must not write into it (the loader sends such lines to the log: show it on stderr)
        if not args.http:
            _pack_messages_to_stderr()
        with contextlib.redirect_stdout(sys.stderr) if not args.http else contextlib.nullcontext():
            engine = _engine(args)
    from nodeloom.mcp.server import NodeloomMCP

    app = NodeloomMCP(engine, policy, transport="http" if args.http else "stdio")
    try:
        if args.http:
            import uvicorn

            asgi = http_app(app, host=args.host, port=args.port, path=args.path, token=token,
                            allowed_hosts=args.allowed_host, allowed_origins=args.allowed_origin)
            uvicorn.run(asgi, host=args.host, port=args.port, log_level="warning")
        else:
            import anyio

            anyio.run(app.server.run_stdio_async)
    finally:
        app.close()
        if owned:
            engine.close()
    return 0


def _pack_messages_to_stderr() -> None:
    """Show what custom-node packs print while they load (logged as ``nodeloom.custom_nodes``) on
    stderr, once, unless logging was already set up for it."""
    pack_log = logging.getLogger("nodeloom.custom_nodes")
    if pack_log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    pack_log.addHandler(handler)
    pack_log.setLevel(logging.INFO)
    pack_log.propagate = False


def _engine(args: argparse.Namespace) -> Any:
    from nodeloom.engine import Engine, EngineConfig
    from nodeloom.paths import custom_node_dirs

    base_dir = getattr(args, "base_dir", ".")
    return Engine(EngineConfig(
        base_dir=base_dir,
        custom_nodes_dirs=custom_node_dirs(base_dir, getattr(args, "custom_nodes", None) or []),
        load_custom_nodes=not getattr(args, "disable_all_custom_nodes", False),
        extra_model_paths=list(getattr(args, "extra_model_paths_config", None) or []),
        device="cpu" if getattr(args, "cpu", False) else None,
    ))


def http_app(
    app: Any, *, host: str, port: int, path: str = "/mcp", token: str | None = None,
    allowed_hosts: Sequence[str] = (), allowed_origins: Sequence[str] = (),
) -> Any:
    """The streamable HTTP ASGI app of a :class:`~nodeloom.mcp.server.NodeloomMCP`.

    Args:
        app: the server to expose.
        host / port: where it is bound (they enter the Host/Origin allow-lists).
        path: the MCP endpoint.
        token: a bearer token every request must carry (None: no token check).
        allowed_hosts / allowed_origins: more accepted Host/Origin values.

    Returns:
        An ASGI application (Starlette, wrapped by :class:`BearerTokenMiddleware` when ``token``).
    """
    from mcp.server.transport_security import TransportSecuritySettings

    names = ["127.0.0.1", "localhost", "[::1]"]
    if not is_loopback(host) and host not in ("0.0.0.0", "::"):
        names.append(f"[{host}]" if ":" in host else host)
    hosts = [f"{n}:{port}" for n in names] + list(app.policy.allowed_hosts) + list(allowed_hosts)
    origins = [f"http://{n}:{port}" for n in names] + list(app.policy.allowed_origins) + list(allowed_origins)
    security = TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)
    asgi = app.server.streamable_http_app(streamable_http_path=path, transport_security=security, host=host)
    return BearerTokenMiddleware(asgi, token) if token else asgi


class BearerTokenMiddleware:
    """ASGI middleware: HTTP requests must carry ``Authorization: Bearer <token>`` (constant-time check)."""

    def __init__(self, app: Any, token: str) -> None:
        if not token:
            raise ValueError("the bearer token must not be empty")
        self.app = app
        self._digest = hashlib.sha256(token.encode()).digest()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not self._authorized(scope):
            from starlette.responses import JSONResponse

            response = JSONResponse(
                {"error": "unauthorized", "message": "a valid `Authorization: Bearer <token>` header is required"},
                status_code=401, headers={"WWW-Authenticate": 'Bearer realm="nodeloom"'},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _authorized(self, scope: Any) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, credential = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer":
                    return hmac.compare_digest(hashlib.sha256(credential.strip().encode()).digest(), self._digest)
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m nodeloom.mcp``."""
    parser = argparse.ArgumentParser(prog="nodeloom mcp", description="Serve nodeloom to MCP clients (agents).")
    add_mcp_arguments(parser)
    return mcp_main(parser.parse_args(argv))
