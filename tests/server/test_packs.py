"""What custom-node packs bring to the server: web folders, routes, example workflows, translations."""

from __future__ import annotations

import json

from aiohttp import web

from nodeloom.core.registry import PackInfo
from nodeloom.server.app import create_app
from nodeloom.server.config import ServerConfig
from tests.server.conftest import LiveServer, make_engine, open_ws, request


class _Echo:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ()
    FUNCTION = "run"


def test_pack_web_directory_routes_templates_and_translations(tmp_path):
    pack = tmp_path / "my_pack"
    (pack / "web" / "js").mkdir(parents=True)
    (pack / "web" / "js" / "widget.js").write_text("export const x = 1;")
    (pack / "example_workflows").mkdir()
    (pack / "example_workflows" / "demo.json").write_text("{}")
    (pack / "locales" / "fr").mkdir(parents=True)
    (pack / "locales" / "fr" / "main.json").write_text(json.dumps({"hello": "bonjour"}))
    (pack / "locales" / "fr" / "nodeDefs.json").write_text(json.dumps({"Echo": {"display_name": "Écho"}}))
    engine = make_engine(tmp_path / "base")
    engine.registry.register_pack(PackInfo("my_pack", "my_pack", path=str(pack), web_directory=pack / "web"),
                                  {"Echo": _Echo})

    from nodeloom.compat.comfy import server_shim

    async def hello(request: web.Request) -> web.Response:
        sid = request.query.get("sid")
        if sid:
            server_shim.PromptServer.instance.send_sync("my_pack.ping", {"n": 1}, sid)
        return web.json_response({"pack": "hello"})

    server_shim.PromptServer.instance.routes.get("/my_pack/hello")(hello)
    srv = LiveServer(create_app(engine, ServerConfig(db_path=tmp_path / "q.db")))
    try:
        scripts = request(srv.url, "GET", "/extensions").json()
        assert "/extensions/my_pack/js/widget.js" in scripts
        js = request(srv.url, "GET", "/extensions/my_pack/js/widget.js")
        assert js.status == 200 and js.body == b"export const x = 1;"
        assert request(srv.url, "GET", "/my_pack/hello").json() == {"pack": "hello"}
        assert request(srv.url, "GET", "/api/my_pack/hello").json() == {"pack": "hello"}
        ws = open_ws(srv.url, "c1")
        request(srv.url, "GET", "/my_pack/hello?sid=c1")
        assert json.loads(ws.recv()) == {"type": "my_pack.ping", "data": {"n": 1}}
        ws.close()
        assert request(srv.url, "GET", "/workflow_templates").json() == {"my_pack": ["demo"]}
        assert request(srv.url, "GET", "/api/workflow_templates/my_pack/demo.json").json() == {}
        assert request(srv.url, "GET", "/i18n").json() == {"fr": {"hello": "bonjour",
                                                                  "nodeDefs": {"Echo": {"display_name": "Écho"}}}}
    finally:
        srv.close()
        engine.close()
