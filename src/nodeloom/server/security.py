"""Security by default: access tokens, Host/Origin checks and JSON error replies.

* A server bound only to loopback needs no token; binding any other address refuses to start
  unless a token is configured (``--token``, ``NODELOOM_TOKEN``; ``--token generate`` makes
  one and prints it) or ``--insecure`` is given explicitly.
* With a token, every HTTP route and the WebSocket need it: ``Authorization: Bearer <token>``,
  ``?token=<token>`` (browsers, WebSocket clients) or the cookie set after a valid ``?token=``.
* DNS rebinding: on a loopback-only server the ``Host`` header must name a loopback host;
  a request carrying an ``Origin`` must come from the same host and port as ``Host``.
* Errors leave as ``{"error": {type, message, details, extra_info}}`` with a 4xx status.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import secrets
import socket
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from nodeloom.errors import NodeloomError, PolicyDeniedError, ValidationError
from nodeloom.server.store import StorageError

__all__ = [
    "TOKEN_COOKIE",
    "TOKEN_ENV",
    "error_response",
    "errors_middleware",
    "guard_middleware",
    "is_loopback",
    "resolve_token",
]

log = logging.getLogger(__name__)

TOKEN_ENV = "NODELOOM_TOKEN"
TOKEN_COOKIE = "nodeloom_token"
GENERATE = ("generate", "auto")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, type_: str, message: str, *, details: str = "",
                   extra_info: dict[str, Any] | None = None, **extra: Any) -> web.Response:
    """A JSON error reply in the engine's error shape (extra top-level keys allowed)."""
    body = {"error": {"type": type_, "message": message, "details": details, "extra_info": extra_info or {}}}
    body.update(extra)
    return web.json_response(body, status=status)


def is_loopback(host: str | None, *, resolve: bool = True) -> bool:
    """Whether ``host`` (an address or a name) only ever means this machine.

    Args:
        host: an IP address or a host name.
        resolve: look names up in DNS (for bind addresses); without it only literal loopback
            addresses and ``localhost`` names count (for request headers: no lookup per request).
    """
    if not host:
        return False
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    if not resolve:
        return False
    found = False
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            infos = socket.getaddrinfo(host, None, family, socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            continue
        for info in infos:
            if not ipaddress.ip_address(info[4][0]).is_loopback:
                return False
            found = True
    return found


def resolve_token(hosts: Iterable[str], token: str | None, *, insecure: bool, env: dict[str, str] | None = None) -> str | None:
    """Decide the access token for a server bound to ``hosts``.

    Args:
        hosts: the addresses the server binds.
        token: the configured token, ``"generate"`` for a new random one, or None.
        insecure: allow a non-loopback bind without any token.
        env: environment to read ``NODELOOM_TOKEN`` from (default ``os.environ``).

    Returns:
        The token to require, or None when no token is required.

    Raises:
        PolicyDeniedError: a non-loopback address without a token and without ``insecure``.
    """
    env = os.environ if env is None else env
    token = token or env.get(TOKEN_ENV) or None
    if token is not None and token.lower() in GENERATE:
        token = secrets.token_urlsafe(24)
    exposed = [h for h in hosts if not is_loopback(h)]
    if exposed and token is None and not insecure:
        raise PolicyDeniedError(
            f"binding {', '.join(exposed)} exposes the server beyond this machine and needs an access token: "
            f"pass `--token TOKEN`, set {TOKEN_ENV}, use `--token generate` to create one, "
            "or pass `--insecure` to run without authentication",
            type="token_required",
        )
    return token


def _request_token(request: web.Request) -> tuple[str | None, bool]:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip(), False
    if "token" in request.query:
        return request.query["token"], True
    return request.cookies.get(TOKEN_COOKIE), False


def _netloc(host: str, scheme: str) -> tuple[str, int | None]:
    parts = urllib.parse.urlsplit(f"//{host}")
    port = parts.port
    if port is None:
        port = {"http": 80, "ws": 80, "https": 443, "wss": 443}.get(scheme)
    return (parts.hostname or "").lower(), port


def _origin_problem(request: web.Request, loopback_only: bool, allowed_hosts: frozenset[str]) -> str | None:
    host_header = request.headers.get("Host", "")
    host, port = _netloc(host_header, request.scheme)
    # a browser always sends Host; only non-browser clients (no rebinding risk) may omit it
    if loopback_only and host_header and host not in allowed_hosts and not is_loopback(host, resolve=False):
        return f"the Host header `{host_header}` is not a loopback host (DNS rebinding protection)"
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    parsed = urllib.parse.urlsplit(origin)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return f"requests from origin `{origin}` are not allowed"
    o_host, o_port = _netloc(parsed.netloc, parsed.scheme)
    if (o_host, o_port) != (host, port) and o_host not in allowed_hosts:
        return f"origin `{origin}` does not match the Host `{host_header}` (cross-site request refused)"
    return None


def guard_middleware(token: str | None, *, loopback_only: bool, allowed_hosts: Iterable[str] = ()) -> Any:
    """Build the middleware that checks Host/Origin and the access token on every request.

    Args:
        token: the required token, or None.
        loopback_only: the server listens on loopback addresses only (enables the Host check).
        allowed_hosts: extra host names accepted in ``Host``/``Origin`` (e.g. a reverse proxy).
    """
    allowed = frozenset(h.lower() for h in allowed_hosts)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        problem = _origin_problem(request, loopback_only, allowed)
        if problem is not None:
            log.warning("refused %s %s: %s", request.method, request.path, problem)
            return error_response(403, "forbidden_origin", problem)
        from_query = False
        if token is not None:
            given, from_query = _request_token(request)
            if given is None or not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode()):
                return error_response(
                    401, "unauthorized",
                    "this server needs an access token: send `Authorization: Bearer <token>` or add `?token=<token>`",
                )
        response = await handler(request)
        if from_query and token is not None and not response.prepared:
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict", path="/")
        return response

    return guard


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn errors into JSON 4xx/5xx replies; tracebacks go to the log, never to the client."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        kind = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status, "bad_request")
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        return error_response(exc.status, kind, message or exc.reason)
    except ValidationError as exc:
        return web.json_response({"error": exc.to_dict()}, status=400)
    except StorageError as exc:  # disk full under the queue database: nothing was queued
        log.error("%s %s: %s", request.method, request.path, exc.message)
        return web.json_response({"error": exc.to_dict()}, status=507)
    except PolicyDeniedError as exc:
        return web.json_response({"error": exc.to_dict()}, status=403)
    except NodeloomError as exc:
        return web.json_response({"error": exc.to_dict()}, status=400)
    except Exception as exc:  # the one boundary where unknown failures become a 500
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "server_error", f"internal error: {type(exc).__name__}")
