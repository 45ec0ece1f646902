"""The services an engine hands to nodes: folders, the model manager, preview senders.

Built by ``Engine`` and made current with ``core.context.activate_services``; nodes reach it
through ``node_api.services()``. Packs may keep their own long-lived helpers in
:meth:`Services.component` instead of module globals.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from nodeloom.models.manager import ModelManager
from nodeloom.paths import FolderPaths

__all__ = ["Services"]


class Services:
    """Per-engine services.

    Attributes:
        paths: the engine's folders.
        models: the model manager.
        settings: free-form engine settings (e.g. ``{"allow_unsafe_pickle": False}``).
        limits: the running prompt's :class:`nodeloom.limits.RunLimits`, or None.
    """

    def __init__(self, paths: FolderPaths, models: ModelManager | None = None, settings: dict[str, Any] | None = None):
        self.paths = paths
        self.models = models or ModelManager()
        self.settings: dict[str, Any] = dict(settings or {})
        self.limits: Any = None
        self._components: dict[str, Any] = {}
        self._lock = threading.Lock()
        #: set by the engine: ``(event_type, data, client_id) -> None``; custom events from
        #: packs (ComfyUI's ``PromptServer.instance.send_sync``) go through it.
        self.event_sink: Callable[[str, dict[str, Any], str | None], None] | None = None

    def send_event(self, event_type: str, data: dict[str, Any], client_id: str | None = None) -> None:
        """Send a custom event to listeners (WebSocket clients, CLI, MCP); no-op without any."""
        if self.event_sink is not None:
            self.event_sink(event_type, data, client_id)

    def component(self, name: str, factory: Callable[[], Any]) -> Any:
        """A long-lived per-engine helper, created once by ``factory``."""
        with self._lock:
            if name not in self._components:
                self._components[name] = factory()
            return self._components[name]
