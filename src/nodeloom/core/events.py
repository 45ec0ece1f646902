"""The event bus: one stream of execution events that the CLI, server and MCP all consume.

An :class:`Event` carries ComfyUI's WebSocket payload for its type unchanged, so the server
forwards it as is. Events are delivered synchronously to subscribers in the emitting
thread; subscribers must be quick (queue the event, don't work on it). No I/O.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EVENT_TYPES", "Event", "EventBus", "Preview", "timestamp_ms"]

EVENT_TYPES = (
    "execution_start",
    "execution_cached",
    "executing",
    "progress",
    "progress_state",
    "executed",
    "execution_success",
    "execution_error",
    "execution_interrupted",
    "preview",
)


def timestamp_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Preview:
    """A preview image sent while a node runs (binary WebSocket frames 1 and 4)."""

    image: Any  # PIL.Image.Image
    format: str = "JPEG"
    max_size: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Event:
    """One execution event.

    Attributes:
        type: ComfyUI's message type (``executing``, ``progress``...) or a pack's custom type.
        data: the message payload, exactly as ComfyUI sends it.
        prompt_id: the run it belongs to.
        client_id: the submitting client; events go only to it.
        preview: set for ``type == "preview"``.
    """

    type: str
    data: dict[str, Any]
    prompt_id: str | None = None
    client_id: str | None = None
    preview: Preview | None = None

    @property
    def binary(self) -> bool:
        return self.preview is not None


Subscriber = Callable[[Event], None]


class EventBus:
    """Fan-out of events to subscribers; a failing subscriber never breaks a run."""

    def __init__(self) -> None:
        self._subs: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it."""
        with self._lock:
            self._subs = [*self._subs, callback]

        def unsubscribe() -> None:
            with self._lock:
                self._subs = [s for s in self._subs if s is not callback]

        return unsubscribe

    @property
    def active(self) -> bool:
        return bool(self._subs)

    def emit(self, event: Event) -> None:
        for sub in self._subs:
            try:
                sub(event)
            except Exception:  # noqa: BLE001 - a broken listener must not stop execution
                import logging

                logging.getLogger("nodeloom.events").exception("event subscriber failed on %s", event.type)
