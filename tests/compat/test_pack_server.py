"""Packs that use ``server.PromptServer.instance``: routes on ``routes`` and on ``app``, served
behind the token and Host checks; ``prompt_queue`` / ``client_id`` / ``last_node_id`` seen from a
running node; ``execution`` and ``folder_paths["custom_nodes"]`` as rgthree / VideoHelperSuite use them.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from nodeloom.core.graph_builder import GraphBuilder
from nodeloom.engine import Engine
from nodeloom.server.app import create_app
from nodeloom.server.config import ServerConfig
from tests.server.conftest import LiveServer, request, submit, wait_history

ROUTE_PACK = '''
import execution
import folder_paths
import server
from aiohttp import web

PromptServer = server.PromptServer

@PromptServer.instance.routes.get("/route_pack/hello")
async def hello(request):
    return web.json_response({"hello": "routes"})

async def from_app(request):
    return web.json_response({"hello": "app"})

PromptServer.instance.app.router.add_get("/route_pack/app", from_app)

ORIGINAL_HANDLER = execution.PromptExecutor.handle_execution_error  # what Impact Pack wraps
CUSTOM_DIRS = folder_paths.folder_names_and_paths["custom_nodes"][0]

class QueueProbe:
    OUTPUT_NODE = True
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"tag": ("STRING", {"default": "x"})}}
    RETURN_TYPES = ()
    FUNCTION = "run"
    CATEGORY = "test"
    def run(self, tag):
        running = list(PromptServer.instance.prompt_queue.currently_running.values())
        item = running[0]
        return {"ui": {"probe": [len(running), len(item), item[1], PromptServer.instance.client_id,
                                 PromptServer.instance.last_node_id, sorted(item[2])]}}

NODE_CLASS_MAPPINGS = {"QueueProbe": QueueProbe}
'''


@pytest.fixture
def pack_engine(tmp_path: Path) -> Iterator[Engine]:
    pack = tmp_path / "custom_nodes" / "route_pack"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text(textwrap.dedent(ROUTE_PACK))
    engine = Engine(base_dir=tmp_path / "base", custom_nodes_dirs=[tmp_path / "custom_nodes"])
    yield engine
    engine.close()


def _serve(engine: Engine, tmp_path: Path, **config: Any) -> LiveServer:
    return LiveServer(create_app(engine, ServerConfig(db_path=tmp_path / "queue.sqlite3", **config),
                                 token=config.get("token")))


def test_pack_routes_are_served_behind_the_token(pack_engine: Engine, tmp_path: Path) -> None:
    assert pack_engine.registry.get("QueueProbe") is not None
    srv = _serve(pack_engine, tmp_path, token="s3cret")
    try:
        assert request(srv.url, "GET", "/route_pack/hello").status == 401
        auth = {"Authorization": "Bearer s3cret"}
        assert request(srv.url, "GET", "/route_pack/hello", headers=auth).json() == {"hello": "routes"}
        assert request(srv.url, "GET", "/api/route_pack/app", headers=auth).json() == {"hello": "app"}
        evil = request(srv.url, "GET", "/route_pack/app", headers={**auth, "Host": "evil.example:80"})
        assert evil.status == 403
    finally:
        srv.close()


def test_prompt_queue_and_client_id_seen_from_a_running_node(pack_engine: Engine, tmp_path: Path) -> None:
    module = next(m for m in list(sys.modules.values())
                  if str(getattr(m, "__file__", "")).startswith(str(tmp_path / "custom_nodes")))
    assert str((tmp_path / "custom_nodes").resolve()) in module.CUSTOM_DIRS
    srv = _serve(pack_engine, tmp_path)
    try:
        g = GraphBuilder(prefix="")
        probe = g.node("QueueProbe", tag="t")
        reply = submit(srv.url, g.finalize(), client_id="client-7")
        prompt_id = reply.json()["prompt_id"]
        entry = wait_history(srv.url, prompt_id)
        assert entry["status"]["status_str"] == "success", entry["status"]
        assert entry["outputs"][probe.id]["probe"] == [1, 6, prompt_id, "client-7", probe.id, [probe.id]]
    finally:
        srv.close()


def test_prompt_queue_put_needs_a_server_and_execute_is_refused() -> None:
    from nodeloom.compat.comfy import execution_shim, server_shim

    queue = server_shim.PromptQueue()
    server_shim.bind_server(None, None, None)
    with pytest.raises(RuntimeError, match="needs `nodeloom serve`"):
        queue.put((1, "id", {}, {}, []))
    assert queue.currently_running == {} and queue.get_tasks_remaining() == 0
    with pytest.raises(RuntimeError, match="not available in nodeloom"):
        execution_shim.PromptExecutor().execute({}, "id")
    assert isinstance(server_shim.APP, web.Application)
