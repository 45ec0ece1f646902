"""HTTP route groups, one module each; every module exposes ``ROUTES`` (a RouteTableDef).

Handlers are plain module functions that reach the server's objects through
``get_state(request)``; :mod:`nodeloom.server.app` mounts each table bare and under ``/api``.
This module also holds the small request-parsing helpers the groups share.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from nodeloom.errors import ValidationError

__all__ = ["json_body", "query_bool", "query_int"]


async def json_body(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    """The request body as a JSON object.

    Raises:
        ValidationError: the body is not JSON, or not an object (empty is ``{}`` unless required).
    """
    raw = await request.read()
    if not raw.strip():
        if required:
            raise ValidationError("the request body must be a JSON object, got an empty body", type="invalid_json")
        return {}
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"the request body is not valid JSON: {exc}", type="invalid_json") from exc
    if not isinstance(data, dict):
        raise ValidationError(f"the request body must be a JSON object, got {type(data).__name__}", type="invalid_json")
    return data


def query_int(request: web.Request, name: str, default: int | None = None, *, minimum: int | None = None) -> int | None:
    """An integer query parameter.

    Raises:
        ValidationError: not an integer, or below ``minimum``.
    """
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValidationError(f"`{name}` must be an integer, got {raw!r}", type="invalid_query") from exc
    if minimum is not None and value < minimum:
        raise ValidationError(f"`{name}` must be ≥ {minimum}, got {value}", type="invalid_query")
    return value


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    return raw.lower() in ("1", "true", "yes", "on")
