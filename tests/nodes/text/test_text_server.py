"""Token streaming over the real server's WebSocket: JSON stream events and progress-text frames."""

from __future__ import annotations

import struct

from nodeloom import Engine
from nodeloom.nodes.text._common import STREAM_EVENT
from nodeloom.server.app import create_app
from nodeloom.server.config import ServerConfig
from tests.server.conftest import LiveServer, collect, open_ws, submit


def test_stream_reaches_the_websocket_client(llm_base, tmp_path):
    engine = Engine(base_dir=llm_base, device="cpu")
    server = LiveServer(create_app(engine, ServerConfig(db_path=tmp_path / "queue.sqlite3")))
    try:
        ws = open_ws(server.url, "text-client")
        prompt = {
            "1": {"class_type": "LLMLoader", "inputs": {"model_name": "llama", "dtype": "float32", "device": "cpu"}},
            "2": {"class_type": "TextGenerate", "inputs": {
                "llm": ["1", 0], "prompt": "a fox", "max_new_tokens": 10, "temperature": 0.0, "top_k": 0,
                "top_p": 1.0, "repetition_penalty": 1.0, "seed": 0, "cache_mode": "static", "sliding_window": 64,
                "stop": "", "use_chat_template": True}},
            "3": {"class_type": "TextPreview", "inputs": {"text": ["2", 0]}},
        }
        reply = submit(server.url, prompt, client_id="text-client")
        assert reply.status == 200, reply.body
        events, frames = collect(ws, reply.json()["prompt_id"])
        ws.close()
    finally:
        server.close()
        engine.close()
    stream = [data for kind, data in events if kind == STREAM_EVENT]
    assert stream and stream[-1]["done"] and stream[-1]["node"] == "2"
    progress = [data for kind, data in events if kind == "progress" and data["node"] == "2"]
    assert progress and progress[-1]["max"] == 10
    text_frames = [f for f in frames if f[:4] == struct.pack(">I", 3)]
    shown = [s["text"] for s in stream[:-1] if s["delta"]][-1]
    assert text_frames and text_frames[-1][4:] == b"\x00\x00\x00\x012" + shown.encode("utf-8")
