"""The WebSocket endpoint and the hub that routes events to connected clients.

Any thread may publish (the worker, engine threads, pack code); messages collect in one
ordered buffer that the server's event loop drains in batches — one loop wake-up per
``FLUSH_DELAY`` while a prompt runs, not one per message, so the running thread and the loop
do not hand the GIL to each other per node (the end-of-prompt marker is flushed at once).
A batch is fanned out by one publisher task into a bounded outbox per client, each message
encoded once for all its recipients, and written by that client's own writer task: a slow
client never blocks a run nor the other clients, and one that falls ``MAX_BACKLOG`` messages
behind is disconnected (it reconnects and gets the current ``status``). Within a batch, a
``progress_state`` that a later one of the same prompt and client fully supersedes is dropped
(ComfyUI's types and order are kept; clients only ever show the latest state). Events of a prompt go only to the client that submitted it;
``status`` and events without a client are broadcast, as ComfyUI does. Preview images become
binary frames: type 1 (``uint32`` image type + bytes) or, for clients that announced
``supports_preview_metadata``, type 4 (``uint32`` length + JSON metadata + bytes).
A prompt's outcome (``execution_success``/``_error``/``_interrupted``) is held back until the
worker has stored it in history and sends the end-of-prompt marker: nobody hears that a prompt
finished before a crash could no longer run it again.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import struct
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

__all__ = ["BINARY_PREVIEW", "BINARY_PREVIEW_WITH_METADATA", "BINARY_TEXT", "EventHub", "encode_preview"]

log = logging.getLogger(__name__)

BINARY_PREVIEW = 1
BINARY_TEXT = 3
BINARY_PREVIEW_WITH_METADATA = 4
#: engine events that announce a prompt's outcome; sent only once the outcome is stored
OUTCOME_EVENTS = ("execution_success", "execution_error", "execution_interrupted")


def encode_preview(preview: Any, *, with_metadata: bool) -> bytes:
    """Encode an engine preview as the payload of a binary frame (without the event type).

    Args:
        preview: an object with ``image`` (PIL), ``format`` ("JPEG"/"PNG"), ``max_size`` and
            ``metadata`` (dict) attributes.
        with_metadata: build a type-4 payload instead of a type-1 payload.
    """
    from PIL import Image, ImageOps

    image = preview.image
    fmt = (preview.format or "JPEG").upper()
    if getattr(preview, "max_size", None):
        image = ImageOps.contain(image, (preview.max_size, preview.max_size), Image.Resampling.BILINEAR)
    if fmt == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buf = io.BytesIO()
    image.save(buf, format=fmt, quality=95, compress_level=1)
    body = buf.getvalue()
    if not with_metadata:
        return struct.pack(">I", 2 if fmt == "PNG" else 1) + body
    meta = dict(getattr(preview, "metadata", None) or {})
    meta["image_type"] = "image/png" if fmt == "PNG" else "image/jpeg"
    meta_bytes = json.dumps(meta).encode("utf-8")
    return struct.pack(">I", len(meta_bytes)) + meta_bytes + body


MAX_BACKLOG = 10_000
#: seconds a published message may wait for the next batch (the end-of-prompt marker never waits)
FLUSH_DELAY = 0.02

_Message = tuple[str, Any, "str | None"]


@dataclass
class _Client:
    """One connected WebSocket and its outbox (text or bytes frames, in order)."""

    ws: web.WebSocketResponse
    outbox: asyncio.Queue[str | bytes] = field(default_factory=lambda: asyncio.Queue(MAX_BACKLOG))
    flags: dict[str, Any] = field(default_factory=dict)
    writer: asyncio.Task[None] | None = None

    def push(self, frame: str | bytes) -> bool:
        """Queue a frame; False when the client is too far behind."""
        try:
            self.outbox.put_nowait(frame)
        except asyncio.QueueFull:
            return False
        return True

    async def write(self) -> None:
        while True:
            frame = await self.outbox.get()
            if self.ws.closed:
                return
            if isinstance(frame, bytes):
                await self.ws.send_bytes(frame)
            else:
                await self.ws.send_str(frame)


class EventHub:
    """Connected WebSocket clients and the ordered delivery of events to them.

    Args:
        server_features: the flags answered to a client's ``feature_flags`` message.
        status: returns the current queue status for ``status`` messages.
    """

    def __init__(self, server_features: dict[str, Any], status: Callable[[], dict[str, Any]]) -> None:
        self.server_features = server_features
        self._status = status
        self.clients: dict[str, _Client] = {}
        self.last_node: dict[str, str] = {}
        self.log_subscribers: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[list[_Message]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._status_pending = False
        self._buffer: deque[_Message] = deque()
        self._buffer_lock = threading.Lock()
        self._armed = False  # a drain of the buffer is scheduled
        self._urgent = False  # an immediate drain is scheduled
        self._held: dict[str, list[tuple[str, Any, str | None]]] = {}
        self._held_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._publish_loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for client in list(self.clients.values()):
            await client.ws.close()

    # ------------------------------------------------------------------ publishing
    def publish(self, event_type: str, data: Any, sid: str | None = None, *, now: bool = False) -> None:
        """Queue a JSON event (or, with ``event_type`` "binary:<n>", raw bytes) from any thread.

        Args:
            now: deliver without waiting for the next batch (and everything queued before it).
        """
        loop = self._loop
        if loop is None or self._queue is None or loop.is_closed():
            return
        with self._buffer_lock:
            self._buffer.append((event_type, data, sid))
            if now and not self._urgent:
                self._urgent = self._armed = True
                wake: Callable[[], None] | None = self._drain
            elif not self._armed:
                self._armed = True
                wake = self._arm
            else:
                wake = None  # a scheduled drain takes this message too
        if wake is not None:
            loop.call_soon_threadsafe(wake)

    def _arm(self) -> None:
        assert self._loop is not None
        self._loop.call_later(FLUSH_DELAY, self._drain)

    def _drain(self) -> None:
        """Hand everything buffered to the publisher task as one batch (on the loop)."""
        with self._buffer_lock:
            batch = list(self._buffer)
            self._buffer.clear()
            self._armed = self._urgent = False
        if batch and self._queue is not None:
            self._queue.put_nowait(_coalesce(batch))

    def publish_status(self) -> None:
        """Broadcast the queue status (from any thread).

        Bursts of queue changes are coalesced: one ``status`` message, computed when it is
        sent, answers all changes made since the previous one, so clients always end on the
        current state without being flooded.
        """
        if self._loop is None or self._loop.is_closed() or self._status_pending:
            return
        self._status_pending = True
        self._loop.call_soon_threadsafe(self._queue_status)

    def _queue_status(self) -> None:
        self._status_pending = False
        self.publish("status", {"status": self._status()}, None, now=True)

    def publish_engine_event(self, event: Any) -> None:
        """Route one engine event (any thread) to its client; previews become binary frames."""
        sid = getattr(event, "client_id", None)
        etype = event.type
        if etype == "preview":
            preview = getattr(event, "preview", None)
            if preview is not None:
                self._publish_preview(preview, sid)
            return
        if isinstance(etype, int):
            self.publish(f"binary:{etype}", bytes(event.data), sid)
            return
        data = event.data
        if etype in OUTCOME_EVENTS and isinstance(data, dict) and data.get("prompt_id") is not None:
            with self._held_lock:
                self._held.setdefault(str(data["prompt_id"]), []).append((etype, data, sid))
            return
        if etype == "executing" and isinstance(data, dict):
            if data.get("node") is None:
                # the end-of-prompt marker is sent by the worker once history is written, so a
                # client that reads /history on this message always finds the prompt there
                return
            if sid:
                self.last_node[sid] = data["node"]
        self.publish(etype, data, sid)

    def publish_prompt_done(self, prompt_id: str, sid: str | None) -> None:
        """Send the prompt's held outcome, then ComfyUI's end-of-prompt marker
        ``executing {node: None}`` (any thread; call it once the outcome is stored)."""
        for etype, data, target in self.drop_held(prompt_id):
            self.publish(etype, data, target)
        if sid:
            self.last_node.pop(sid, None)
        self.publish("executing", {"node": None, "display_node": None, "prompt_id": prompt_id}, sid, now=True)

    def drop_held(self, prompt_id: str) -> list[tuple[str, Any, str | None]]:
        """Forget (and return) the outcome events held for ``prompt_id``, e.g. when it is re-queued."""
        with self._held_lock:
            return self._held.pop(prompt_id, [])

    def _publish_preview(self, preview: Any, sid: str | None) -> None:
        targets = [sid] if sid is not None else list(self.clients)
        encoded: dict[bool, bytes] = {}
        for target in targets:
            client = self.clients.get(target)
            rich = bool(client is not None and client.flags.get("supports_preview_metadata", False))
            if rich not in encoded:
                encoded[rich] = encode_preview(preview, with_metadata=rich)
            kind = BINARY_PREVIEW_WITH_METADATA if rich else BINARY_PREVIEW
            self.publish(f"binary:{kind}", encoded[rich], target)

    async def _publish_loop(self) -> None:
        assert self._queue is not None
        while True:
            for event_type, data, sid in await self._queue.get():
                try:
                    await self._send(event_type, data, sid)
                except Exception:  # one broken socket must not stop delivery to the others
                    log.exception("failed to deliver %s event", event_type)

    async def _send(self, event_type: str, data: Any, sid: str | None) -> None:
        if sid is None:
            targets = list(self.clients.items())
        elif sid in self.clients:
            targets = [(sid, self.clients[sid])]
        else:
            return
        frame: str | bytes
        if event_type.startswith("binary:"):
            frame = struct.pack(">I", int(event_type.split(":", 1)[1])) + data
        else:
            frame = json.dumps({"type": event_type, "data": data})
        for target, client in targets:
            if not client.push(frame):
                log.warning("websocket client %s is %d messages behind; disconnecting it", target, MAX_BACKLOG)
                await client.ws.close()

    # ------------------------------------------------------------------ endpoint
    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """``GET /ws?clientId=``: register the client, send ``status`` with its ``sid``, read flags."""
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=2**22)
        await ws.prepare(request)
        sid = request.query.get("clientId") or uuid.uuid4().hex
        old = self.clients.pop(sid, None)
        if old is not None and not old.ws.closed:
            await old.ws.close()
        client = _Client(ws)
        client.push(json.dumps({"type": "status", "data": {"status": self._status(), "sid": sid}}))
        if sid in self.last_node:
            client.push(json.dumps({"type": "executing", "data": {"node": self.last_node[sid]}}))
        client.writer = asyncio.create_task(client.write())
        self.clients[sid] = client
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_message(client, sid, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    log.warning("websocket of client %s closed with %s", sid, ws.exception())
        finally:
            client.writer.cancel()
            if self.clients.get(sid) is client:
                self.clients.pop(sid, None)
                self.log_subscribers.discard(sid)
        return ws

    def _on_message(self, client: _Client, sid: str, text: str) -> None:
        try:
            message = json.loads(text)
        except json.JSONDecodeError:
            log.warning("invalid JSON from websocket client %s", sid)
            return
        if isinstance(message, dict) and message.get("type") == "feature_flags":
            flags = message.get("data")
            client.flags = dict(flags) if isinstance(flags, dict) else {}
            client.push(json.dumps({"type": "feature_flags", "data": self.server_features}))


def _coalesce(batch: list[_Message]) -> list[_Message]:
    """Drop each ``progress_state`` that a later one in ``batch`` (same client and prompt, every
    node it lists) supersedes; everything else keeps its place."""
    latest: dict[tuple[str | None, Any], set[str]] = {}
    keep = [True] * len(batch)
    for i in range(len(batch) - 1, -1, -1):
        event_type, data, sid = batch[i]
        if event_type != "progress_state" or not isinstance(data, dict) or not isinstance(data.get("nodes"), dict):
            continue
        key = (sid, data.get("prompt_id"))
        nodes = data["nodes"]
        later = latest.get(key)
        if later is not None and later.issuperset(nodes):
            keep[i] = False
        else:
            latest[key] = set(nodes)
    return [m for m, k in zip(batch, keep) if k]
