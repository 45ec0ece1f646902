"""The event hub without a network: per-client outboxes, slow clients, preview encoding."""

from __future__ import annotations

import asyncio
import io
import json
import struct

from PIL import Image

from nodeloom.core.events import Event, Preview
from nodeloom.server import ws as ws_module
from nodeloom.server.ws import EventHub, _Client, encode_preview


class _StubSocket:
    def __init__(self) -> None:
        self.closed = False
        self.sent: list[object] = []

    async def close(self) -> None:
        self.closed = True

    async def send_str(self, text: str) -> None:
        self.sent.append(text)

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)


def test_a_client_too_far_behind_is_disconnected_others_keep_receiving(monkeypatch):
    monkeypatch.setattr(ws_module, "MAX_BACKLOG", 5)

    async def scenario() -> tuple[_StubSocket, _StubSocket]:
        hub = EventHub({}, lambda: {"exec_info": {"queue_remaining": 0}})
        await hub.start()
        stuck, live = _Client(_StubSocket(), asyncio.Queue(5)), _Client(_StubSocket(), asyncio.Queue(5))
        live.writer = asyncio.create_task(live.write())  # the stuck client never gets a writer
        hub.clients.update(stuck=stuck, live=live)
        for i in range(8):
            hub.publish("progress", {"value": i}, None)
            await asyncio.sleep(0.01)
        await hub.stop()
        live.writer.cancel()
        return stuck.ws, live.ws

    stuck, live = asyncio.run(scenario())
    assert stuck.closed
    assert [json.loads(t)["data"]["value"] for t in live.sent] == list(range(8))


def test_preview_frames_follow_the_client_flags():
    async def scenario() -> dict[str, list[object]]:
        hub = EventHub({}, lambda: {})
        await hub.start()
        plain, rich = _Client(_StubSocket()), _Client(_StubSocket(), flags={"supports_preview_metadata": True})
        for c in (plain, rich):
            c.writer = asyncio.create_task(c.write())
        hub.clients.update(plain=plain, rich=rich)
        meta = {"node_id": "5", "prompt_id": "p"}
        hub.publish_engine_event(Event("preview", meta, "p", None, Preview(Image.new("RGB", (4, 4)), "PNG", None, meta)))
        await asyncio.sleep(0.05)
        await hub.stop()
        return {"plain": plain.ws.sent, "rich": rich.ws.sent}

    sent = asyncio.run(scenario())
    assert struct.unpack(">II", sent["plain"][0][:8]) == (1, 2)
    kind, size = struct.unpack(">II", sent["rich"][0][:8])
    assert kind == 4 and json.loads(sent["rich"][0][8:8 + size])["image_type"] == "image/png"


def test_encode_preview_shrinks_to_max_size():
    big = Preview(Image.new("RGBA", (64, 32)), "JPEG", 16, {})
    payload = encode_preview(big, with_metadata=False)
    assert struct.unpack(">I", payload[:4]) == (1,)
    assert Image.open(io.BytesIO(payload[4:])).size == (16, 8)


def _progress_state(prompt_id: str, *nodes: str) -> dict[str, object]:
    return {"prompt_id": prompt_id, "nodes": {n: {"state": "running"} for n in nodes}}


def test_coalesce_drops_only_fully_superseded_progress_states():
    batch = [
        ("progress_state", _progress_state("p", "1"), "a"),  # node 1 is in no later state: kept
        ("executing", {"node": "2"}, "a"),
        ("progress_state", _progress_state("p", "1", "2"), "b"),  # another client: kept
        ("progress_state", _progress_state("p", "2"), "a"),  # the last one lists node 2: dropped
        ("progress_state", _progress_state("q", "2", "3"), "a"),  # another prompt: kept
        ("progress_state", _progress_state("p", "2", "3"), "a"),
    ]
    kept = ws_module._coalesce(batch)
    assert kept == [batch[0], batch[1], batch[2], batch[4], batch[5]]


def _delivered(publish, expected: int) -> list[object]:
    """Run a hub with one client ``c``, call ``publish(hub)`` on a thread, wait for ``expected`` frames."""
    async def scenario() -> list[object]:
        hub = EventHub({}, lambda: {})
        await hub.start()
        client = _Client(_StubSocket())
        client.writer = asyncio.create_task(client.write())
        hub.clients["c"] = client
        await asyncio.get_running_loop().run_in_executor(None, publish, hub)
        for _ in range(200):
            if len(client.ws.sent) >= expected:
                break
            await asyncio.sleep(0.01)
        await hub.stop()
        client.writer.cancel()
        return client.ws.sent

    return asyncio.run(scenario())


def test_messages_from_another_thread_arrive_in_order_in_few_batches(monkeypatch):
    batches: list[int] = []
    coalesce = ws_module._coalesce

    def counting(batch):
        batches.append(len(batch))
        return coalesce(batch)

    monkeypatch.setattr(ws_module, "_coalesce", counting)

    def worker(hub: EventHub) -> None:
        for i in range(300):
            hub.publish("executing", {"node": str(i)}, "c")
        hub.publish_prompt_done("p", "c")

    nodes = [json.loads(t)["data"]["node"] for t in _delivered(worker, 301)]
    assert nodes == [str(i) for i in range(300)] + [None]
    assert sum(batches) == 301 and len(batches) < 30  # one loop wake-up per batch, not per message


def test_the_end_of_prompt_marker_does_not_wait_for_the_next_batch(monkeypatch):
    monkeypatch.setattr(ws_module, "FLUSH_DELAY", 30.0)

    def worker(hub: EventHub) -> None:
        hub.publish("executed", {"node": "1", "output": {}}, "c")
        hub.publish_prompt_done("p", "c")

    assert [json.loads(t)["type"] for t in _delivered(worker, 2)] == ["executed", "executing"]
