"""A ComfyUI-style client over HTTP + WebSocket: queue, watch events, history, view."""

from __future__ import annotations

import io
import json
import struct
import uuid

from PIL import Image

from tests.server.conftest import collect, open_ws, request, submit, wait_history
from tests.server.server_pack import save_prompt, slow_prompt


def test_queue_watch_history_view(server):
    cid = uuid.uuid4().hex
    ws = open_ws(server.url, cid)
    reply = submit(server.url, save_prompt("client", value=1.0), cid)
    assert reply.status == 200, reply.body
    body = reply.json()
    assert set(body) == {"prompt_id", "number", "node_errors"} and body["node_errors"] == {}
    pid = body["prompt_id"]
    events, _ = collect(ws, pid)
    types = [t for t, _ in events]
    assert "execution_start" in types and "execution_success" in types
    executed = [d for t, d in events if t == "executed"]
    assert executed and executed[0]["node"] == "2" and executed[0]["prompt_id"] == pid
    image = executed[0]["output"]["images"][0]
    # the end-of-prompt message comes after history is written: no polling needed
    entry = request(server.url, "GET", f"/history/{pid}").json()[pid]
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
    assert entry["outputs"]["2"]["images"][0] == image
    assert entry["prompt"][1] == pid and entry["prompt"][3]["client_id"] == cid
    assert [m[0] for m in entry["status"]["messages"]][0] == "execution_start"
    view = request(server.url, "GET", f"/view?filename={image['filename']}&type=output&subfolder={image['subfolder']}")
    assert view.status == 200 and view.headers["Content-Type"] == "image/png"
    pixels = Image.open(io.BytesIO(view.body)).convert("RGB")
    assert pixels.size == (8, 8) and pixels.getpixel((0, 0)) == (255, 255, 255)
    # the same under /api
    assert request(server.url, "GET", f"/api/history/{pid}").json()[pid]["outputs"] == entry["outputs"]
    ws.close()


def test_view_preview_and_channels(server):
    pid = submit(server.url, save_prompt("chan", value=0.25)).json()["prompt_id"]
    name = wait_history(server.url, pid)["outputs"]["2"]["images"][0]["filename"]
    jpeg = request(server.url, "GET", f"/view?filename={name}&preview=jpeg;50")
    assert jpeg.status == 200 and jpeg.headers["Content-Type"] == "image/jpeg"
    webp = request(server.url, "GET", f"/view?filename={name}&preview=webp")
    assert webp.headers["Content-Type"] == "image/webp"
    alpha = Image.open(io.BytesIO(request(server.url, "GET", f"/view?filename={name}&channel=a").body))
    assert alpha.mode == "RGBA" and alpha.getchannel("A").getextrema() == (255, 255)
    rgb = Image.open(io.BytesIO(request(server.url, "GET", f"/view?filename={name}&channel=rgb").body))
    assert rgb.mode == "RGB"
    assert request(server.url, "GET", f"/view?filename={name}%20%5Boutput%5D").status == 200
    assert request(server.url, "GET", "/view?filename=missing.png").status == 404
    assert request(server.url, "GET", f"/view?filename={name}&type=models").status == 400


def test_validation_error_shape(server):
    bad = {"1": {"class_type": "SolidImage", "inputs": {"size": 0, "value": 0.5}},
           "2": {"class_type": "SaveTestImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}
    reply = submit(server.url, bad)
    assert reply.status == 400
    body = reply.json()
    assert set(body["error"]) >= {"type", "message", "details", "extra_info"}
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert "2" in body["node_errors"] or "1" in body["node_errors"]
    no_prompt = request(server.url, "POST", "/prompt", {"client_id": "x"})
    assert no_prompt.status == 400 and no_prompt.json()["error"]["type"] == "no_prompt"
    not_json = request(server.url, "POST", "/prompt", data=b"{nope", headers={"Content-Type": "application/json"})
    assert not_json.status == 400 and not_json.json()["error"]["type"] == "invalid_json"
    unknown = submit(server.url, {"1": {"class_type": "NoSuchNode", "inputs": {}}})
    assert unknown.status == 400 and "error" in unknown.json()


def test_execution_error_reaches_client_and_history(server):
    cid = uuid.uuid4().hex
    ws = open_ws(server.url, cid)
    pid = submit(server.url, {"1": {"class_type": "FailingNode", "inputs": {"message": "kaput"}}}, cid).json()["prompt_id"]
    events, _ = collect(ws, pid)
    err = [d for t, d in events if t == "execution_error"]
    assert err and err[0]["node_id"] == "1" and "kaput" in err[0]["exception_message"]
    entry = wait_history(server.url, pid)
    assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
    ws.close()


def test_previews_as_binary_frames(server):
    plain = open_ws(server.url, "plain")
    rich = open_ws(server.url, "rich", flags={"supports_preview_metadata": True})
    p1 = submit(server.url, slow_prompt(steps=2, seconds=0.0), "plain").json()["prompt_id"]
    _, frames = collect(plain, p1)
    assert frames and struct.unpack(">II", frames[0][:8]) == (1, 1)
    Image.open(io.BytesIO(frames[0][8:])).verify()
    p2 = submit(server.url, slow_prompt(steps=2, seconds=0.0, seed=1), "rich").json()["prompt_id"]
    _, frames = collect(rich, p2)
    kind, size = struct.unpack(">II", frames[0][:8])
    meta = json.loads(frames[0][8:8 + size])
    assert kind == 4 and meta["prompt_id"] == p2 and meta["node_id"] == "1" and meta["image_type"] == "image/jpeg"
    Image.open(io.BytesIO(frames[0][8 + size:])).verify()
    plain.close()
    rich.close()


def test_feature_flags_and_features(server):
    ws = open_ws(server.url, "ff")
    ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
    answer = json.loads(ws.recv())
    assert answer["type"] == "feature_flags" and answer["data"]["supports_preview_metadata"] is True
    assert answer["data"]["max_upload_size"] > 0
    assert request(server.url, "GET", "/api/features").json() == answer["data"]
    ws.close()


def test_ws_without_client_id_gets_a_sid(server):
    import websocket

    ws = websocket.create_connection(server.url.replace("http", "ws") + "/ws", timeout=10)
    first = json.loads(ws.recv())
    assert first["type"] == "status" and len(first["data"]["sid"]) == 32
    assert first["data"]["status"]["exec_info"]["queue_remaining"] == 0
    ws.close()
