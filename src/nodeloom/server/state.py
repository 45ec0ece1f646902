"""The objects one server shares between its routes (no module-level singleton).

Handlers reach them with ``request.config_dict[STATE]``, which also works in sub-apps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from nodeloom.server.config import ServerConfig
from nodeloom.server.logbuffer import LogBuffer
from nodeloom.server.queue import PromptQueue
from nodeloom.server.users import UserStore
from nodeloom.server.worker import Worker
from nodeloom.server.ws import EventHub

if TYPE_CHECKING:
    from nodeloom.engine import Engine

__all__ = ["STATE", "ServerState", "get_state"]


@dataclass
class ServerState:
    """Everything a route handler may use."""

    engine: Engine
    config: ServerConfig
    queue: PromptQueue
    hub: EventHub
    worker: Worker
    users: UserStore
    logs: LogBuffer
    web_root: Path | None
    token: str | None

    @property
    def paths(self) -> Any:
        return self.engine.paths

    def features(self) -> dict[str, Any]:
        """The server's feature flags (``GET /features`` and the WebSocket negotiation)."""
        return self.hub.server_features


STATE: web.AppKey[ServerState] = web.AppKey("nodeloom_state", ServerState)


def get_state(request: web.Request) -> ServerState:
    return request.config_dict[STATE]
