"""``server``: a ``PromptServer`` stand-in for packs that add routes or send custom events.

``PromptServer.instance.routes`` is the aiohttp ``RouteTableDef`` :data:`ROUTES`; nodeloom's
HTTP server mounts whatever packs registered there (bare and under ``/api``).
``PromptServer.instance.send_sync(event, data, sid)`` sends a custom event through the
active engine's services (WebSocket clients, CLI, MCP). Outside any engine context — e.g.
in a pack's route handler — it uses the services given to :func:`bind_services` by the
server; with neither, the event is dropped. This module-level state exists only because
ComfyUI packs expect ``PromptServer.instance``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from nodeloom.core.context import current_services

__all__ = ["ROUTES", "PromptServer", "bind_services"]

#: Routes packs add with ``@PromptServer.instance.routes.get(...)``.
ROUTES = web.RouteTableDef()

_bound: dict[str, Any] = {"services": None}


def bind_services(services: Any) -> None:
    """Make ``services`` the fallback target of ``send_sync`` outside engine contexts."""
    _bound["services"] = services


class PromptServer:
    """The part of ComfyUI's ``PromptServer`` that custom nodes touch."""

    instance: PromptServer

    def __init__(self) -> None:
        self.routes = ROUTES
        self.app: web.Application | None = None
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.last_prompt_id: str | None = None
        self.supports = ["custom_nodes_from_web"]

    def send_sync(self, event: str, data: Any, sid: str | None = None) -> None:
        """Send a custom event ``{type: event, data}`` to the submitting client (or ``sid``)."""
        services = current_services(required=False) or _bound["services"]
        if services is not None:
            services.send_event(event, data, sid)

    async def send(self, event: str, data: Any, sid: str | None = None) -> None:
        self.send_sync(event, data, sid)

    async def send_json(self, event: str, data: Any, sid: str | None = None) -> None:
        self.send_sync(event, data, sid)

    def add_on_prompt_handler(self, handler: Any) -> None:
        """Accepted for compatibility; nodeloom does not rewrite prompts through packs."""


PromptServer.instance = PromptServer()
