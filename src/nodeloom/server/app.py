"""Assemble the aiohttp application around one engine: routes, WebSocket, worker, stores.

:func:`create_app` builds everything from an engine and a :class:`ServerConfig`; the queue
worker and the event hub start with the application and stop with it. Every API route is
mounted bare and under ``/api``; ``/internal`` is a sub-application; static files come last.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from nodeloom.server.config import ServerConfig
from nodeloom.server.logbuffer import LogBuffer
from nodeloom.server.packs import workflow_template_dirs
from nodeloom.server.queue import PromptQueue
from nodeloom.server.routes import files, info, jobs, prompt, upload, users
from nodeloom.server.routes.internal import internal_app
from nodeloom.server.security import errors_middleware, guard_middleware, is_loopback
from nodeloom.server.state import STATE, ServerState
from nodeloom.server.static import frontend_dir, index_handler, static_routes, template_routes
from nodeloom.server.store import JobStore
from nodeloom.server.users import UserStore
from nodeloom.server.worker import Worker
from nodeloom.server.ws import EventHub

if TYPE_CHECKING:
    from nodeloom.engine import Engine

__all__ = ["STUCK", "create_app", "pack_routes"]

log = logging.getLogger(__name__)

ROUTE_GROUPS = (prompt.ROUTES, jobs.ROUTES, files.ROUTES, upload.ROUTES, info.ROUTES, users.ROUTES)
PACK_ROUTES_MODULE = "nodeloom.compat.comfy.server_shim"
_UNSUBSCRIBE: web.AppKey[Any] = web.AppKey("nodeloom_unsubscribe", object)
#: set at shutdown when the worker could not be stopped (a node stuck in a loop)
STUCK: web.AppKey[bool] = web.AppKey("nodeloom_worker_stuck", bool)


def _pack_server_module() -> Any:
    try:
        return importlib.import_module(PACK_ROUTES_MODULE)
    except ImportError:
        return None


def pack_routes() -> list[web.AbstractRouteDef]:
    """Routes custom-node packs registered on ComfyUI's ``PromptServer.instance.routes`` / ``.app``."""
    module = _pack_server_module()
    defs = getattr(module, "pack_route_defs", None)
    return list(defs()) if defs is not None else []


def _api_routes(defs: Iterable[web.AbstractRouteDef]) -> list[web.AbstractRouteDef]:
    """Every route twice: bare and with the ``/api`` prefix (the frontend uses the latter)."""
    out: list[web.AbstractRouteDef] = []
    for route in defs:
        if isinstance(route, web.RouteDef):
            out.append(web.RouteDef(route.method, "/api" + route.path, route.handler, route.kwargs))
            out.append(route)
        elif isinstance(route, web.StaticDef):
            out.append(web.StaticDef("/api" + route.prefix, route.path, route.kwargs))
            out.append(route)
    return out


def _db_path(engine: Engine, config: ServerConfig) -> Path:
    return Path(config.db_path) if config.db_path else Path(engine.paths.user_dir) / "nodeloom_queue.sqlite3"


def create_app(engine: Engine, config: ServerConfig | None = None, *, token: str | None = None) -> web.Application:
    """Build the server application.

    Args:
        engine: the :class:`nodeloom.Engine` that runs prompts.
        config: listening, security and storage settings (defaults: loopback, no token).
        token: the access token to require (as resolved by ``security.resolve_token``).

    Returns:
        An aiohttp application; run it with ``web.run_app`` or an ``AppRunner``.
    """
    config = config or ServerConfig()
    engine.paths.ensure()
    store = JobStore(_db_path(engine, config), history_limit=config.history_limit)
    queue = PromptQueue(store, max_attempts=config.max_attempts)
    if queue.requeued or queue.failed:
        log.warning("recovered after a crash: %d prompt(s) re-queued, %d failed after %d attempts",
                    len(queue.requeued), len(queue.failed), config.max_attempts)
    features = {"supports_preview_metadata": True, "max_upload_size": config.max_upload_size}
    hub = EventHub(features, queue.status)
    web_root, reason = frontend_dir()
    logs = LogBuffer(on_entry=lambda e: _forward_log(hub, logs, e))
    state = ServerState(
        engine=engine, config=config, queue=queue, hub=hub, worker=Worker(engine, queue, hub, limits=config.limits),
        users=UserStore(Path(engine.paths.user_dir), multi_user=config.multi_user), logs=logs,
        web_root=web_root, token=token,
    )
    loopback_only = all(is_loopback(h) for h in config.hosts)
    app = web.Application(
        client_max_size=config.max_upload_size,
        middlewares=[errors_middleware, guard_middleware(token, loopback_only=loopback_only,
                                                         allowed_hosts=config.allowed_hosts)],
    )
    app[STATE] = state
    app.router.add_route("GET", "/ws", hub.handle)
    app.router.add_route("GET", "/api/ws", hub.handle)
    app.add_routes([index_handler(web_root, reason)])
    for group in ROUTE_GROUPS:
        app.add_routes(_api_routes(group))
    app.add_routes(_api_routes(pack_routes()))
    app.add_subapp("/internal", internal_app())
    for name, folder in workflow_template_dirs(engine.registry).items():
        app.add_routes([web.static(f"/api/workflow_templates/{name}", folder)])
    app.add_routes(template_routes())
    app.add_routes(static_routes(web_root, engine.registry.web_directories()))
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    return app


def _forward_log(hub: EventHub, logs: LogBuffer, entry: dict[str, str]) -> None:
    for sid in list(hub.log_subscribers):
        hub.publish("logs", {"entries": [entry], "size": logs.size()}, sid)


async def _start(app: web.Application) -> None:
    state = app[STATE]
    await state.hub.start()
    state.queue.add_listener(state.hub.publish_status)
    app[_UNSUBSCRIBE] = state.engine.subscribe(state.hub.publish_engine_event)
    bind = getattr(_pack_server_module(), "bind_server", None)
    if bind is not None:  # packs' route handlers send events through this engine and see its queue
        bind(state.engine.services, state.queue, state.engine.validate)
    logging.getLogger().addHandler(state.logs)
    state.worker.start()


async def _stop(app: web.Application) -> None:
    state = app[STATE]
    logging.getLogger().removeHandler(state.logs)
    if not state.worker.stop():
        log.warning("a running node ignored the interruption; its prompt is re-queued at the next start")
        app[STUCK] = True
    unsubscribe = app.get(_UNSUBSCRIBE)
    if unsubscribe is not None:
        unsubscribe()
    await state.hub.stop()
    state.queue.store.close()
