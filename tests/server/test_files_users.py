"""Uploads, user data, settings, and the informational routes the frontend boots from."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import urllib.parse
import uuid

from PIL import Image

import nodeloom

from tests.server.conftest import request, submit, wait_history


def _png(color: tuple[int, ...], mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (4, 4), color).save(buf, format="PNG")
    return buf.getvalue()


def _multipart(fields: dict[str, str], filename: str, payload: bytes) -> tuple[bytes, dict[str, str]]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
                 f"Content-Type: image/png\r\n\r\n".encode() + payload + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def upload(base: str, filename: str, payload: bytes, path: str = "/upload/image", **fields: str):
    body, headers = _multipart(fields, filename, payload)
    return request(base, "POST", path, data=body, headers=headers)


def test_upload_dedup_and_rename(server, engine):
    red, blue = _png((255, 0, 0)), _png((0, 0, 255))
    first = upload(server.url, "pic.png", red)
    assert first.status == 200 and first.json() == {"name": "pic.png", "subfolder": "", "type": "input"}
    assert upload(server.url, "pic.png", red).json()["name"] == "pic.png"  # same bytes: no copy
    assert upload(server.url, "pic.png", blue).json()["name"] == "pic (1).png"
    assert upload(server.url, "pic.png", _png((0, 255, 0))).json()["name"] == "pic (2).png"
    assert upload(server.url, "pic.png", blue, overwrite="true").json()["name"] == "pic.png"
    assert (engine.paths.input_dir / "pic.png").read_bytes() == blue
    sub = upload(server.url, "s.png", red, subfolder="nested/dir", type="temp").json()
    assert sub == {"name": "s.png", "subfolder": "nested/dir", "type": "temp"}
    assert (engine.paths.temp_dir / "nested" / "dir" / "s.png").is_file()
    assert upload(server.url, "x.png", red, type="models").status == 400


def test_upload_mask_replaces_alpha(server, engine):
    Image.new("RGB", (4, 4), (10, 20, 30)).save(engine.paths.input_dir / "base.png")
    ref = json.dumps({"filename": "base.png", "subfolder": "", "type": "input"})
    reply = upload(server.url, "clipspace-mask.png", _png((0, 0, 0, 0), "RGBA"), path="/upload/mask", original_ref=ref)
    assert reply.status == 200
    out = Image.open(engine.paths.input_dir / reply.json()["name"])
    assert out.mode == "RGBA" and out.getpixel((0, 0)) == (10, 20, 30, 0)
    missing = json.dumps({"filename": "nope.png", "type": "input"})
    assert upload(server.url, "m.png", _png((0, 0, 0, 0), "RGBA"), path="/upload/mask", original_ref=missing).status == 404


def test_upload_size_limit(tmp_path):
    from nodeloom.server.app import create_app
    from nodeloom.server.config import ServerConfig
    from tests.server.conftest import LiveServer, make_engine

    engine = make_engine(tmp_path)
    srv = LiveServer(create_app(engine, ServerConfig(db_path=tmp_path / "q.db", max_upload_size=1000)))
    try:
        reply = upload(srv.url, "big.png", b"\0" * 5000)
        assert reply.status == 413 and reply.json()["error"]["type"] == "too_large"
        assert upload(srv.url, "small.png", b"\0" * 10).status == 200
    finally:
        srv.close()
        engine.close()


def test_userdata_roundtrip(server, engine):
    name = urllib.parse.quote("workflows/my flow.json", safe="")
    put = request(server.url, "POST", f"/userdata/{name}", data=b'{"a": 1}')
    assert put.status == 200 and put.json() == "workflows/my flow.json"
    assert (engine.paths.user_dir / "default" / "workflows" / "my flow.json").read_bytes() == b'{"a": 1}'
    again = request(server.url, "POST", f"/userdata/{name}?overwrite=false", data=b"{}")
    assert again.status == 409
    got = request(server.url, "GET", f"/api/userdata/{name}")
    assert got.status == 200 and got.body == b'{"a": 1}'
    listing = request(server.url, "GET", "/userdata?dir=workflows&recurse=true&full_info=true").json()
    assert listing[0]["path"] == "my flow.json" and listing[0]["size"] == 8
    assert request(server.url, "GET", "/userdata?dir=workflows&split=true").json() == [["my flow.json", "my flow.json"]]
    assert request(server.url, "GET", "/userdata?dir=nothing").status == 404
    v2 = request(server.url, "GET", "/v2/userdata").json()
    assert v2[0] == {"name": "workflows", "path": "workflows", "type": "directory"}
    dest = urllib.parse.quote("workflows/renamed.json", safe="")
    moved = request(server.url, "POST", f"/userdata/{name}/move/{dest}?full_info=true")
    assert moved.status == 200 and moved.json()["path"] == "workflows/renamed.json"
    assert request(server.url, "DELETE", f"/userdata/{dest}").status == 204
    assert request(server.url, "GET", f"/userdata/{dest}").status == 404


def test_settings_and_users(server):
    assert request(server.url, "GET", "/settings").json() == {}
    assert request(server.url, "POST", "/settings", {"Comfy.A": 1, "Comfy.B": "x"}).status == 200
    assert request(server.url, "POST", "/settings/Comfy.A", data=b"2").status == 200
    assert request(server.url, "GET", "/settings").json() == {"Comfy.A": 2, "Comfy.B": "x"}
    assert request(server.url, "GET", "/api/settings/Comfy.B").json() == "x"
    assert request(server.url, "GET", "/settings/Missing").json() is None
    users = request(server.url, "GET", "/users").json()
    assert users == {"storage": "server", "migrated": True}


def test_object_info_shape(server):
    info = request(server.url, "GET", "/object_info").json()
    entry = info["SaveTestImage"]
    for key in ("input", "input_order", "output", "output_is_list", "output_name", "name", "display_name",
                "description", "python_module", "category", "output_node"):
        assert key in entry, key
    assert entry["display_name"] == "Save Test Image" and entry["output_node"] is True
    assert entry["input"]["required"]["images"][0] == "IMAGE"
    assert entry["input_order"] == {"required": ["images", "filename_prefix"]}
    one = request(server.url, "GET", "/api/object_info/SolidImage").json()
    assert list(one) == ["SolidImage"] and one["SolidImage"]["output"] == ["IMAGE"]
    assert request(server.url, "GET", "/object_info/NoSuch").json() == {}


def test_boot_routes(server):
    stats = request(server.url, "GET", "/system_stats").json()
    assert stats["system"]["ram_total"] > 0 and stats["devices"][0]["type"] in ("cpu", "cuda")
    # a ComfyUI release number the frontend's version checks accept, next to nodeloom's own
    assert re.fullmatch(r"0\.\d+\.\d+", stats["system"]["comfyui_version"])
    assert stats["system"]["nodeloom_version"] == nodeloom.__version__ != stats["system"]["comfyui_version"]
    assert request(server.url, "GET", "/api/extensions").json()  # the frontend's own core extensions
    assert "checkpoints" in request(server.url, "GET", "/models").json()
    assert request(server.url, "GET", "/models/checkpoints").json() == []
    assert request(server.url, "GET", "/models/nope").status == 404
    assert request(server.url, "GET", "/embeddings").json() == []
    assert any(m["name"] == "loras" for m in request(server.url, "GET", "/api/experiment/models").json())
    for path in ("/api/workflow_templates", "/api/i18n", "/api/global_subgraphs", "/api/node_replacements"):
        assert request(server.url, "GET", path).json() == {}, path
    if importlib.util.find_spec("comfyui_workflow_templates_json") is None:  # empty indexes, not 404s
        assert request(server.url, "GET", "/templates/index.json").json() == []
        assert request(server.url, "GET", "/templates/index_logo.json").json() == {}
    else:  # the official templates: index, workflows and the thumbnails of the media bundles
        groups = request(server.url, "GET", "/templates/index.json").json()
        first = groups[0]["templates"][0]
        assert request(server.url, "GET", f"/templates/{first['name']}.json").json()["nodes"]
        thumb = request(server.url, "GET", f"/templates/{first['name']}-1.{first['mediaSubtype']}")
        assert thumb.status == 200 and len(thumb.body) > 100
    assert request(server.url, "GET", "/templates/missing.json").status == 404
    assert request(server.url, "GET", "/templates/..%2Fpyproject.toml").status == 404
    assert "checkpoints" in request(server.url, "GET", "/internal/folder_paths").json()
    assert request(server.url, "GET", "/internal/files/output").json() == []
    assert request(server.url, "GET", "/internal/files/models").status == 400
    raw = request(server.url, "GET", "/internal/logs/raw").json()
    assert set(raw) == {"entries", "size"}
    sub = {"clientId": "c", "enabled": True}
    assert request(server.url, "PATCH", "/internal/logs/subscribe", sub).status == 200


def test_frontend_index_and_missing_package_page(server, tmp_path, monkeypatch):
    index = request(server.url, "GET", "/")
    assert index.status == 200 and b'<div id="vue-app">' in index.body
    assert request(server.url, "GET", "/index.html").status == 200

    from nodeloom.server import static

    monkeypatch.setattr(static.importlib, "import_module", _raise_import)
    root, reason = static.frontend_dir()
    assert root is None and "not installed" in reason
    from nodeloom.server.app import create_app
    from nodeloom.server.config import ServerConfig
    from tests.server.conftest import LiveServer, make_engine

    engine = make_engine(tmp_path / "bare")
    srv = LiveServer(create_app(engine, ServerConfig(db_path=tmp_path / "bare.db")))
    try:
        page = request(srv.url, "GET", "/")
        assert page.status == 200 and b"pip install comfyui-frontend-package" in page.body
        assert request(srv.url, "GET", "/prompt").status == 200
    finally:
        srv.close()
        engine.close()


def _raise_import(name: str):
    raise ImportError(f"No module named {name!r}")


def test_multi_user_settings_are_separate(tmp_path):
    from nodeloom.server.app import create_app
    from nodeloom.server.config import ServerConfig
    from tests.server.conftest import LiveServer, make_engine

    engine = make_engine(tmp_path)
    srv = LiveServer(create_app(engine, ServerConfig(db_path=tmp_path / "q.db", multi_user=True)))
    try:
        alice = request(srv.url, "POST", "/users", {"username": "alice"}).json()
        bob = request(srv.url, "POST", "/users", {"username": "bob"}).json()
        assert request(srv.url, "POST", "/users", {"username": "alice"}).status == 400
        users = request(srv.url, "GET", "/users").json()
        assert users["storage"] == "server" and users["users"][alice] == "alice"
        request(srv.url, "POST", "/settings", {"theme": "dark"}, headers={"comfy-user": alice})
        assert request(srv.url, "GET", "/settings", headers={"comfy-user": alice}).json() == {"theme": "dark"}
        assert request(srv.url, "GET", "/settings", headers={"comfy-user": bob}).json() == {}
        assert request(srv.url, "GET", "/settings", headers={"comfy-user": "mallory"}).status == 403
        assert (tmp_path / "user" / alice / "comfy.settings.json").is_file()
        assert json.loads((tmp_path / "user" / "users.json").read_text())[bob] == "bob"
    finally:
        srv.close()
        engine.close()


def test_uploaded_image_feeds_load_image(server):
    name = upload(server.url, "fed.png", _png((0, 128, 255))).json()["name"]
    combo = request(server.url, "GET", "/object_info/LoadImage").json()["LoadImage"]["input"]["required"]["image"]
    assert name in combo[0]  # the combo is re-scanned on every /object_info
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": name}},
              "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    pid = submit(server.url, prompt).json()["prompt_id"]
    entry = wait_history(server.url, pid)
    assert entry["status"]["status_str"] == "success"
    preview = entry["outputs"]["2"]["images"][0]
    assert preview["type"] == "temp"
    shown = Image.open(io.BytesIO(request(server.url, "GET", "/view?" + urllib.parse.urlencode(preview)).body))
    assert shown.convert("RGB").getpixel((0, 0)) == (0, 128, 255)
