"""``server``: a ``PromptServer`` stand-in for packs that add routes, read the queue or send events.

``PromptServer.instance.routes`` is the aiohttp ``RouteTableDef`` :data:`ROUTES` and
``PromptServer.instance.app`` the aiohttp application :data:`APP`; nodeloom's HTTP server
copies whatever packs registered on either into its own application (bare and under ``/api``),
so pack routes sit behind the server's token and Host/Origin checks like every other route.
``prompt_queue`` shows the server's queue as ComfyUI's tuples and queues validated prompts;
``send_sync(event, data, sid)`` sends a custom event through the active engine's services
(WebSocket clients, CLI, MCP). Outside any engine context — e.g. in a pack's route handler —
it uses what the server gave :func:`bind_server`; with neither, the event is dropped. This
module-level state exists only because ComfyUI packs expect ``PromptServer.instance``.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiohttp import web

from nodeloom.core.context import current_node_context, current_services

__all__ = ["APP", "ROUTES", "BinaryEventTypes", "PromptServer", "bind_server", "bind_services", "pack_route_defs",
           "reset_app"]


class BinaryEventTypes:
    """ComfyUI's binary WebSocket frame types (``server`` / ``protocol``); ``send_sync`` with a
    preview type shows the image as the running node's preview."""

    PREVIEW_IMAGE = 1
    UNENCODED_PREVIEW_IMAGE = 2
    TEXT = 3
    PREVIEW_IMAGE_WITH_METADATA = 4


_PREVIEWS = {BinaryEventTypes.PREVIEW_IMAGE, BinaryEventTypes.UNENCODED_PREVIEW_IMAGE,
             BinaryEventTypes.PREVIEW_IMAGE_WITH_METADATA}

#: Routes packs add with ``@PromptServer.instance.routes.get(...)``.
ROUTES = web.RouteTableDef()
#: The application packs add routes to with ``PromptServer.instance.app.router.add_*``.
APP = web.Application()

_bound: dict[str, Any] = {"services": None, "queue": None, "validate": None}


def bind_services(services: Any) -> None:
    """Make ``services`` the fallback target of ``send_sync`` outside engine contexts."""
    _bound["services"] = services


def bind_server(services: Any, queue: Any, validate: Any) -> None:
    """Called by the HTTP server at start: its engine services, job queue and ``validate(prompt)``."""
    _bound.update(services=services, queue=queue, validate=validate)


def reset_app() -> web.Application:
    """A fresh :data:`APP` before packs (re)load: a pack imported again adds its routes again."""
    global APP
    APP = web.Application()
    PromptServer.instance.app = APP
    return APP


def pack_route_defs() -> list[web.AbstractRouteDef]:
    """Every route packs registered, on :data:`ROUTES` or on :data:`APP`'s router; when a pack was
    imported more than once, its latest registration of a method and path wins."""
    defs: list[web.AbstractRouteDef] = [r for r in ROUTES if isinstance(r, web.RouteDef)]
    for resource in APP.router.resources():
        info = resource.get_info()
        if isinstance(resource, web.StaticResource):
            defs.append(web.StaticDef(info["prefix"], str(info["directory"]), {}))
            continue
        path = info.get("path") or info.get("formatter")
        for route in resource:
            if path is not None and route.method != "HEAD":
                defs.append(web.RouteDef(route.method, path, route.handler, {}))
    latest: dict[tuple[str, str], web.AbstractRouteDef] = {}
    for d in defs:
        key = (d.method, d.path) if isinstance(d, web.RouteDef) else ("STATIC", d.prefix)  # type: ignore[attr-defined]
        latest.pop(key, None)
        latest[key] = d
    return list(latest.values())


class PromptQueue:
    """ComfyUI's ``prompt_queue`` as packs use it, over the server's job queue."""

    @property
    def currently_running(self) -> dict[int, tuple[Any, ...]]:
        """``{i: (number, prompt_id, prompt, extra_data, outputs_to_execute, sensitive)}``."""
        queue = _bound["queue"]
        running = queue.running() if queue is not None else []
        return {i: (*job.queue_item(), {}) for i, job in enumerate(running)}

    def get_current_queue(self) -> tuple[list[Any], list[Any]]:
        """(running items, pending items) as ComfyUI's 5-element lists."""
        queue = _bound["queue"]
        if queue is None:
            return [], []
        return [j.queue_item() for j in queue.running()], [j.queue_item() for j in queue.pending()]

    get_current_queue_volatile = get_current_queue

    def get_tasks_remaining(self) -> int:
        queue = _bound["queue"]
        return queue.remaining() if queue is not None else 0

    def put(self, item: tuple[Any, ...] | list[Any]) -> None:
        """Queue ``(number, prompt_id, prompt, extra_data, outputs_to_execute[, sensitive])``.

        Raises:
            RuntimeError: no nodeloom server is running (``nodeloom run`` has no queue).
            ValueError: the item is malformed or the prompt does not validate.
        """
        queue, validate = _bound["queue"], _bound["validate"]
        if queue is None or validate is None:
            raise RuntimeError("`PromptServer.instance.prompt_queue.put` needs `nodeloom serve`: "
                               "a run without a server has no queue to put prompts on")
        if not isinstance(item, (tuple, list)) or len(item) < 5:
            raise ValueError(f"`prompt_queue.put` expects (number, prompt_id, prompt, extra_data, outputs), got {item!r:.80}")
        number, prompt_id, prompt, extra_data, _outputs = item[:5]
        result = validate(prompt)
        if not result.ok:
            raise ValueError(f"`prompt_queue.put`: the prompt does not validate: {result.error}")
        queue.put(str(prompt_id or uuid.uuid4()), float(number), prompt, dict(extra_data or {}),
                  list(result.outputs_to_execute))


class PromptServer:
    """The part of ComfyUI's ``PromptServer`` that custom nodes touch."""

    instance: PromptServer

    def __init__(self) -> None:
        self.routes = ROUTES
        self.app = APP
        self.prompt_queue = PromptQueue()
        self.number = 0
        self.last_prompt_id: str | None = None
        self.supports = ["custom_nodes_from_web"]
        self.on_prompt_handlers: list[Any] = []

    @property
    def client_id(self) -> str | None:
        """The client that submitted the running prompt (None outside a run)."""
        running = self.prompt_queue.currently_running
        if running:
            return next(iter(running.values()))[3].get("client_id")
        return None

    @property
    def last_node_id(self) -> str | None:
        """The node running in this context (ComfyUI: the last node that started)."""
        ctx = current_node_context()
        return ctx.node_id if ctx is not None else None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.get_event_loop_policy().get_event_loop()

    def send_sync(self, event: str | int, data: Any, sid: str | None = None) -> None:
        """Send a custom event ``{type: event, data}`` to the submitting client (or ``sid``); a
        binary preview event (``[format, PIL image, max_size]``) becomes the running node's preview.

        Raises:
            ValueError: a binary event type other than the preview ones.
        """
        if isinstance(event, int):
            self._send_binary(event, data)
            return
        services = current_services(required=False) or _bound["services"]
        if services is not None:
            services.send_event(event, data, sid)

    def _send_binary(self, event: int, data: Any) -> None:
        if event not in _PREVIEWS:
            raise ValueError(f"`PromptServer.send_sync`: binary event type {event} is not supported by nodeloom "
                             "(it shows preview images: BinaryEventTypes.PREVIEW_IMAGE / UNENCODED_PREVIEW_IMAGE)")
        ctx = current_node_context()
        image = data[1] if isinstance(data, (list, tuple)) and len(data) >= 2 else data
        if ctx is not None:
            ctx.progress(1, 1, preview=image)

    async def send(self, event: str, data: Any, sid: str | None = None) -> None:
        self.send_sync(event, data, sid)

    async def send_json(self, event: str, data: Any, sid: str | None = None) -> None:
        self.send_sync(event, data, sid)

    def add_on_prompt_handler(self, handler: Any) -> None:
        """Recorded, not called: nodeloom does not let packs rewrite submitted prompts."""
        self.on_prompt_handlers.append(handler)


PromptServer.instance = PromptServer()
