"""HTTP route groups, one module each; every module exposes ``ROUTES`` (a RouteTableDef).

Handlers are plain module functions that reach the server's objects through
``get_state(request)``; :mod:`nodeloom.server.app` mounts each table bare and under ``/api``.
This module also holds the small request-parsing helpers the groups share; they turn every
malformed value (non-standard JSON numbers, nesting deeper than the decoder's recursion limit,
integers beyond ``MAX_QUERY_INT``) into a 400 with a JSON error instead of a 500.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from nodeloom.errors import ValidationError

__all__ = ["MAX_QUERY_INT", "json_body", "query_bool", "query_int"]

#: largest magnitude of an integer query parameter (SQLite's and JavaScript's safe range)
MAX_QUERY_INT = 2**53


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"`{name}` is not a JSON number; numbers must be finite")


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
        data = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError as exc:  # the C decoder stops at the recursion limit (~1,000 levels)
        raise ValidationError("the request body nests too deeply", type="invalid_json") from exc
    except ValueError as exc:  # JSONDecodeError, bad UTF-8, NaN/Infinity, integers of > 4,300 digits
        raise ValidationError(f"the request body is not valid JSON: {exc}", type="invalid_json") from exc
    if not isinstance(data, dict):
        raise ValidationError(f"the request body must be a JSON object, got {type(data).__name__}", type="invalid_json")
    return data


def query_int(request: web.Request, name: str, default: int | None = None, *, minimum: int | None = None) -> int | None:
    """An integer query parameter.

    Raises:
        ValidationError: not an integer, below ``minimum`` or beyond ±``MAX_QUERY_INT``.
    """
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        if len(raw) > 40:  # int() of thousands of digits is slow and never a valid page
            raise ValueError(raw[:40])
        value = int(raw)
    except ValueError as exc:
        raise ValidationError(f"`{name}` must be an integer, got {raw[:40]!r}", type="invalid_query") from exc
    if abs(value) > MAX_QUERY_INT:
        raise ValidationError(f"`{name}` must be within ±{MAX_QUERY_INT}, got {raw[:40]}", type="invalid_query")
    if minimum is not None and value < minimum:
        raise ValidationError(f"`{name}` must be ≥ {minimum}, got {value}", type="invalid_query")
    return value


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    return raw.lower() in ("1", "true", "yes", "on")
