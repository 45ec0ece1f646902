"""Malformed requests get a 4xx with a JSON error, never a 500; stored numbers stay standard JSON."""

from __future__ import annotations

import json
import urllib.parse

from nodeloom.server.app import create_app
from nodeloom.server.config import ServerConfig
from nodeloom.limits import RunLimits
from tests.server.conftest import LiveServer, request, submit, wait_history
from tests.server.server_pack import save_prompt
from tests.server.test_files_users import _png, upload
from tests.test_limits import _png_claiming


def _json_error(reply, status: int = 400) -> dict:
    assert reply.status == status, (reply.status, reply.body[:300])
    body = reply.json()
    assert set(body["error"]) >= {"type", "message", "details", "extra_info"}, body
    return body["error"]


def test_numbers_must_be_finite(server):
    prompt = save_prompt()
    raw = json.dumps({"prompt": prompt}).encode()
    for literal in (b"NaN", b"Infinity", b"-Infinity", b"1" * 400, b"1e400"):
        body = raw[:-1] + b', "number": ' + literal + b"}"
        err = _json_error(request(server.url, "POST", "/prompt", data=body, headers={"Content-Type": "application/json"}))
        assert "number" in err["message"] or "JSON" in err["message"]
    assert "-Infinity" not in request(server.url, "GET", "/history").body.decode()
    assert _json_error(submit(server.url, prompt, number="3"))["type"] == "invalid_number"
    assert _json_error(submit(server.url, prompt, number=True))["type"] == "invalid_number"
    ok = submit(server.url, prompt, number=2.5)
    assert ok.status == 200 and ok.json()["number"] == 2.5


def test_deep_json_and_wrong_id_types(server):
    deep = b'{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert "nests too deeply" in _json_error(request(server.url, "POST", "/prompt", data=deep))["message"]
    for key, value in (("client_id", {"a": 1}), ("client_id", [1]), ("prompt_id", {"x": 1}), ("prompt_id", 7)):
        err = _json_error(request(server.url, "POST", "/prompt", {"prompt": save_prompt(), key: value}))
        assert f"`{key}` must be a string" in err["message"]
    assert _json_error(request(server.url, "POST", "/queue", data=b"[" * 5000))["type"] == "invalid_json"


def test_huge_paging_values(server):
    for path in ("/history?offset=" + "9" * 30, "/history?max_items=" + "9" * 400, "/jobs?limit=" + "9" * 25,
                 "/jobs?offset=99999999999999999999", "/history?offset=-" + "9" * 20):
        assert _json_error(request(server.url, "GET", path))["type"] == "invalid_query", path


def test_nul_in_file_names(server):
    for path in ("/view?filename=a%00.png", "/view?filename=a.png&subfolder=x%00y", "/view?filename=%00"):
        assert _json_error(request(server.url, "GET", path))["type"] == "invalid_path", path
    ref = json.dumps({"filename": "a\x00.png", "type": "input"})
    assert upload(server.url, "m.png", _png((1, 2, 3)), path="/upload/mask", original_ref=ref).status == 400


def test_non_ascii_token(engine, tmp_path):
    srv = LiveServer(create_app(engine, ServerConfig(db_path=tmp_path / "q.sqlite3"), token="sécret-token"))
    try:
        for header in ("Bearer ünïcode".encode("utf-8").decode("latin-1"), "Bearer \u00ff\u00fe", "Bearer x"):
            assert _json_error(request(srv.url, "GET", "/prompt", headers={"Authorization": header}), 401)
        quoted = urllib.parse.quote("sécret-token")
        assert request(srv.url, "GET", f"/prompt?token={quoted}").status == 200
        assert _json_error(request(srv.url, "GET", "/prompt?token=%FF%FE"), 401)
    finally:
        srv.close()


def test_decompression_bombs_refused_before_decoding(engine, tmp_path):
    config = ServerConfig(db_path=tmp_path / "q.sqlite3", limits=RunLimits(max_pixels=4096 * 4096))
    srv = LiveServer(create_app(engine, config))
    try:
        bomb = _png_claiming(12000, 12000)
        (engine.paths.output_dir / "bomb.png").write_bytes(bomb)
        for query in ("preview=webp;90", "preview=jpeg;80", "channel=rgb", "channel=a"):
            err = _json_error(request(srv.url, "GET", f"/view?filename=bomb.png&{query}"))
            assert err["type"] == "image_too_large" and "144000000 pixels" in err["message"]
        assert request(srv.url, "GET", "/view?filename=bomb.png").status == 200  # the bytes as they are
        (engine.paths.input_dir / "small.png").write_bytes(_png((1, 2, 3)))
        ref = json.dumps({"filename": "small.png", "type": "input"})
        reply = upload(srv.url, "mask.png", bomb, path="/upload/mask", original_ref=ref)
        assert _json_error(reply)["type"] == "image_too_large"
        ref = json.dumps({"filename": "bomb.png", "type": "output"})
        assert _json_error(upload(srv.url, "mask.png", _png((0, 0, 0)), path="/upload/mask", original_ref=ref))
        assert _json_error(upload(srv.url, "mask.png", b"not an image", path="/upload/mask",
                                  original_ref=json.dumps({"filename": "small.png", "type": "input"})))["type"] == "invalid_mask"
    finally:
        srv.close()


def test_history_is_standard_json_when_a_node_reports_nan(server):
    pid = submit(server.url, {"1": {"class_type": "NanReport", "inputs": {}}}).json()["prompt_id"]
    entry = wait_history(server.url, pid)
    raw = request(server.url, "GET", "/history").body.decode()
    assert "NaN" not in raw and "Infinity" not in raw
    assert entry["outputs"]["1"]["values"] == [None, 1.5, None]


def test_numbers_stored_before_the_check_are_shown_finite(tmp_path):
    """A database written when ``-Infinity`` was accepted still gives standard JSON."""
    import time as _time

    from nodeloom.server.store import Job, JobStore

    store = JobStore(tmp_path / "old.sqlite3")
    for pid, number in (("low", float("-inf")), ("high", float("inf"))):
        store.add(Job(prompt_id=pid, number=0, state="pending", prompt={}, extra_data={}, targets=[], created=_time.time()))
        with store._lock:
            store._db.execute("UPDATE jobs SET number=? WHERE prompt_id=?", (number, pid))
    jobs = store.jobs(["pending"])
    assert [j.prompt_id for j in jobs] == ["low", "high"]
    json.dumps([j.queue_item() for j in jobs], allow_nan=False)
    store.close()
