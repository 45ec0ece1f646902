"""``/internal/*`` routes for the frontend: logs, log subscription, folder paths, file lists.

Mounted as a sub-application (ComfyUI does the same); not a stable API for scripts.
"""

from __future__ import annotations

from aiohttp import web

from nodeloom.server.routes import json_body
from nodeloom.server.routes.files import FOLDER_TYPES
from nodeloom.server.security import error_response
from nodeloom.server.state import get_state

__all__ = ["ROUTES", "internal_app"]

ROUTES = web.RouteTableDef()


@ROUTES.get("/logs")
async def logs(request: web.Request) -> web.Response:
    return web.json_response(get_state(request).logs.text())


@ROUTES.get("/logs/raw")
async def logs_raw(request: web.Request) -> web.Response:
    buffer = get_state(request).logs
    return web.json_response({"entries": list(buffer.entries), "size": buffer.size()})


@ROUTES.patch("/logs/subscribe")
async def logs_subscribe(request: web.Request) -> web.Response:
    body = await json_body(request)
    client_id, enabled = body.get("clientId"), body.get("enabled")
    if not isinstance(client_id, str) or not isinstance(enabled, bool):
        return error_response(400, "invalid_request", "give `clientId` (string) and `enabled` (boolean)")
    subscribers = get_state(request).hub.log_subscribers
    if enabled:
        subscribers.add(client_id)
    else:
        subscribers.discard(client_id)
    return web.Response(status=200)


@ROUTES.get("/folder_paths")
async def folder_paths(request: web.Request) -> web.Response:
    paths = get_state(request).paths
    return web.json_response({name: [str(p) for p in dirs] for name, dirs in paths.folders.items()})


@ROUTES.get("/files/{directory_type}")
async def files(request: web.Request) -> web.Response:
    kind = request.match_info["directory_type"]
    if kind not in FOLDER_TYPES:
        return error_response(400, "invalid_folder_type", f"directory type must be one of {list(FOLDER_TYPES)}")
    folder = get_state(request).paths.directory(kind)
    entries = [e for e in folder.iterdir() if e.is_file()] if folder.is_dir() else []
    entries.sort(key=lambda e: -e.stat().st_mtime)
    return web.json_response([e.name for e in entries])


def internal_app() -> web.Application:
    """The ``/internal`` sub-application (the parent's middlewares apply to it too)."""
    app = web.Application()
    app.add_routes(ROUTES)
    return app
