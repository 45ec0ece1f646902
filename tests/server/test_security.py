"""Security by default: traversal refused everywhere, tokens on HTTP and WS, Host/Origin checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
import websocket

from nodeloom.errors import PolicyDeniedError
from nodeloom.server.app import create_app
from nodeloom.server.config import ServerConfig
from nodeloom.server.security import resolve_token
from tests.server.conftest import LiveServer, free_port, make_engine, request
from tests.server.test_files_users import _png, upload

ROOT = Path(__file__).resolve().parents[2]
q = urllib.parse.quote


def _secret(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    return secret


def test_traversal_refused_on_view(server, engine, tmp_path):
    _secret(tmp_path)
    (engine.paths.output_dir / "link.txt").symlink_to(tmp_path / "secret.txt")
    attempts = [
        "/view?filename=../secret.txt", "/view?filename=..%2Fsecret.txt", "/view?filename=secret.txt&subfolder=..",
        f"/view?filename={q(str(tmp_path / 'secret.txt'), safe='')}", "/view?filename=secret.txt&subfolder=%2Ftmp",
        "/view?filename=..%2F..%2Fsecret.txt%20%5Boutput%5D", "/view?filename=link.txt",
        "/viewvideo?filename=../secret.txt", "/api/view?filename=secret.txt&subfolder=a/../../..",
    ]
    for path in attempts:
        reply = request(server.url, "GET", path)
        assert reply.status in (400, 403), (path, reply.status)
        assert b"top secret" not in reply.body, path


def test_traversal_refused_on_uploads(server, engine, tmp_path):
    red = _png((255, 0, 0))
    assert upload(server.url, "../evil.png", red).status == 400
    assert upload(server.url, "..", red).status == 400
    assert upload(server.url, "ok.png", red, subfolder="../../escape").status == 400
    assert upload(server.url, "ok.png", red, subfolder=str(tmp_path)).status == 400
    ref = json.dumps({"filename": "../secret.txt", "subfolder": "", "type": "input"})
    assert upload(server.url, "m.png", red, path="/upload/mask", original_ref=ref).status == 400
    ref = json.dumps({"filename": "x.png", "subfolder": "../..", "type": "output"})
    assert upload(server.url, "m.png", red, path="/upload/mask", original_ref=ref).status == 400
    assert not list(tmp_path.glob("**/evil.png")) and not (tmp_path / "escape").exists()


def test_traversal_refused_on_userdata(server, engine, tmp_path):
    _secret(tmp_path)
    for name in ("../../secret.txt", "..", "/etc/passwd", "a/../../../secret.txt"):
        enc = q(name, safe="")
        assert request(server.url, "GET", f"/userdata/{enc}").status in (400, 403), name
        assert request(server.url, "POST", f"/userdata/{enc}", data=b"x").status in (400, 403), name
        assert request(server.url, "DELETE", f"/userdata/{enc}").status in (400, 403), name
    request(server.url, "POST", "/userdata/ok.json", data=b"{}")
    assert request(server.url, "POST", f"/userdata/ok.json/move/{q('../../moved.json', safe='')}").status == 400
    assert request(server.url, "GET", "/userdata?dir=../..").status == 400
    assert request(server.url, "GET", "/v2/userdata?path=../..").status == 400
    assert (engine.paths.user_dir / "default" / "ok.json").exists() and not (tmp_path / "moved.json").exists()
    assert request(server.url, "GET", "/view_metadata/checkpoints?filename=..%2F..%2Fx.safetensors").status == 400


def test_traversal_refused_on_static_routes(server):
    for path in ("/../pyproject.toml", "/extensions/../../secret.txt", "/assets/..%2F..%2F..%2F__init__.py"):
        reply = request(server.url, "GET", path)
        assert reply.status in (400, 403, 404), path
        assert b"comfyui_frontend_package" not in reply.body


def test_active_content_is_downloaded_never_rendered(server, engine):
    (engine.paths.input_dir / "page.html").write_text("<script>alert(1)</script>")
    reply = request(server.url, "GET", "/view?filename=page.html&type=input")
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/octet-stream"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


def test_resolve_token_policy():
    assert resolve_token(["127.0.0.1"], None, insecure=False, env={}) is None
    assert resolve_token(["localhost", "::1"], None, insecure=False, env={}) is None
    with pytest.raises(PolicyDeniedError, match="needs an access token"):
        resolve_token(["0.0.0.0"], None, insecure=False, env={})
    assert resolve_token(["0.0.0.0"], None, insecure=True, env={}) is None
    assert resolve_token(["0.0.0.0"], None, insecure=False, env={"NODELOOM_TOKEN": "abc"}) == "abc"
    generated = resolve_token(["0.0.0.0"], "generate", insecure=False, env={})
    assert generated and len(generated) >= 24


def test_non_loopback_bind_refuses_to_start_without_token(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + str(ROOT)}
    env.pop("NODELOOM_TOKEN", None)
    proc = subprocess.run(
        [sys.executable, "-m", "nodeloom.server", "--listen", "0.0.0.0", "--port", str(free_port()),
         "--base-dir", str(tmp_path)], env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "needs an access token" in proc.stderr and "--insecure" in proc.stderr


@pytest.fixture
def token_server(tmp_path):
    engine = make_engine(tmp_path)
    srv = LiveServer(create_app(engine, ServerConfig(db_path=tmp_path / "q.db"), token="s3cret-token"))
    yield srv
    srv.close()
    engine.close()


def test_token_required_on_http(token_server):
    base = token_server.url
    for path in ("/prompt", "/api/queue", "/object_info", "/", "/view?filename=x.png", "/internal/logs",
                 "/userdata?dir=x", "/extensions"):
        reply = request(base, "GET", path)
        assert reply.status == 401, path
        assert reply.json()["error"]["type"] == "unauthorized"
    assert request(base, "GET", "/prompt", headers={"Authorization": "Bearer wrong"}).status == 401
    assert request(base, "POST", "/prompt", {"prompt": {}}).status == 401
    assert request(base, "GET", "/prompt", headers={"Authorization": "Bearer s3cret-token"}).status == 200
    page = request(base, "GET", "/?token=s3cret-token")
    assert page.status == 200 and "nodeloom_token=s3cret-token" in page.headers["Set-Cookie"]
    assert "HttpOnly" in page.headers["Set-Cookie"]
    assert request(base, "GET", "/api/queue", headers={"Cookie": "nodeloom_token=s3cret-token"}).status == 200


def test_token_required_on_websocket(token_server):
    ws_url = token_server.url.replace("http", "ws") + "/ws?clientId=abc"
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(ws_url, timeout=10)
    assert info.value.status_code == 401
    ws = websocket.create_connection(ws_url + "&token=s3cret-token", timeout=10)
    assert json.loads(ws.recv())["data"]["sid"] == "abc"
    ws.close()
    ws = websocket.create_connection(ws_url, header=["Authorization: Bearer s3cret-token"], timeout=10)
    assert json.loads(ws.recv())["type"] == "status"
    ws.close()


def test_dns_rebinding_and_cross_origin_refused(server):
    host = f"127.0.0.1:{server.port}"
    assert request(server.url, "GET", "/prompt", headers={"Host": f"evil.example:{server.port}"}).status == 403
    evil = {"Origin": "http://evil.example", "Host": host}
    assert request(server.url, "POST", "/prompt", {"prompt": {}}, headers=evil).status == 403
    assert request(server.url, "GET", "/prompt", headers={"Origin": "null"}).status == 403
    same = {"Origin": f"http://{host}", "Host": host}
    assert request(server.url, "GET", "/prompt", headers=same).status == 200
    assert request(server.url, "GET", "/prompt", headers={"Host": f"localhost:{server.port}"}).status == 200
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(server.url.replace("http", "ws") + "/ws", origin="http://evil.example", timeout=10)
    assert info.value.status_code == 403


def test_non_loopback_bind_with_token_serves_only_with_it(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + str(ROOT), "HF_HUB_OFFLINE": "1"}
    env.pop("NODELOOM_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "nodeloom.server", "--listen", "0.0.0.0", "--port", str(port), "--token", "generate",
         "--base-dir", str(tmp_path), "--verbose", "WARNING"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        token = None
        for line in proc.stdout:
            if line.startswith("Access token: "):
                token = line.split(": ", 1)[1].strip()
            if line.startswith("To see the GUI go to:"):
                assert f"?token={token}" in line
                break
        assert token and len(token) >= 24
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                reply = request(base, "GET", "/prompt")
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        assert reply.status == 401
        ok = request(base, "GET", "/prompt", headers={"Authorization": f"Bearer {token}"})
        assert ok.status == 200 and ok.json() == {"exec_info": {"queue_remaining": 0}}
    finally:
        proc.kill()
        proc.wait(30)
