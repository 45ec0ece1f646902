"""V3 node replacements: a pack registers ``io.NodeReplace`` while it loads, ``/node_replacements``
lists what packs registered, and prompts naming the retired node type run as the new one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from nodeloom.engine import Engine
from nodeloom.errors import NodeloomError
from nodeloom.server.app import create_app
from nodeloom.server.config import ServerConfig
from tests.server.conftest import LiveServer, request

REPLACE_PACK = r'''
from comfy_api.latest import ComfyAPI, ComfyAPISync, ComfyExtension, io

api = ComfyAPI()
# at import, with the synchronous API; registering the same pair twice keeps one entry
for _ in range(2):
    ComfyAPISync().node_replacement.register(io.NodeReplace(new_node_id="RepNew", old_node_id="RepOlder"))


class New(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="RepNew", category="reptest", search_aliases=["RepOld", "RepOlder"],
                         inputs=[io.Float.Input("value"), io.Float.Input("offset", default=0.0)],
                         outputs=[io.Float.Output("plain"), io.Float.Output("shifted")])

    @classmethod
    def execute(cls, value, offset):
        return io.NodeOutput(value, value + offset)


class Show(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="RepShow", category="reptest", is_output_node=True, is_dev_only=True,
                         essentials_category="Basic",
                         inputs=[io.AnyType.Input("source")], outputs=[])

    @classmethod
    def execute(cls, source):
        return io.NodeOutput(ui={"text": [str(source)]})


class Ext(ComfyExtension):
    async def on_load(self):
        await api.node_replacement.register(io.NodeReplace(
            new_node_id="RepNew", old_node_id="RepOld", old_widget_ids=["amount"],
            input_mapping=[{"new_id": "value", "old_id": "amount"}, {"new_id": "offset", "set_value": 10.0}],
            output_mapping=[{"old_idx": 0, "new_idx": 1}]))
        await api.node_replacement.register(io.NodeReplace(new_node_id="RepMissing", old_node_id="RepGone"))

    async def get_node_list(self):
        return [New, Show]


async def comfy_entrypoint():
    return Ext()
'''

REP_OLD = {"new_node_id": "RepNew", "old_node_id": "RepOld", "old_widget_ids": ["amount"],
           "input_mapping": [{"new_id": "value", "old_id": "amount"}, {"new_id": "offset", "set_value": 10.0}],
           "output_mapping": [{"old_idx": 0, "new_idx": 1}]}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    root = tmp_path_factory.mktemp("v3replace")
    (root / "custom_nodes").mkdir()
    (root / "custom_nodes" / "rep_pack.py").write_text(REPLACE_PACK)
    engine = Engine(base_dir=root / "base", custom_nodes_dirs=[root / "custom_nodes"])
    yield engine
    engine.close()


def _prompt(class_type: str) -> dict[str, Any]:
    return {"1": {"class_type": class_type, "inputs": {"amount": 2.5}, "_meta": {"title": "old"}},
            "2": {"class_type": "RepShow", "inputs": {"source": ["1", 0]}}}


def test_packs_register_replacements_while_loading(engine: Engine) -> None:
    assert engine.registry.node_replacements() == {
        "RepOlder": [{"new_node_id": "RepNew", "old_node_id": "RepOlder", "old_widget_ids": None,
                      "input_mapping": None, "output_mapping": None}],
        "RepOld": [REP_OLD],
        "RepGone": [{"new_node_id": "RepMissing", "old_node_id": "RepGone", "old_widget_ids": None,
                     "input_mapping": None, "output_mapping": None}],
    }


def test_newer_listing_flags_appear_only_when_set(engine: Engine) -> None:
    new, show = engine.object_info("RepNew")["RepNew"], engine.object_info("RepShow")["RepShow"]
    assert new["search_aliases"] == ["RepOld", "RepOlder"] and "dev_only" not in new
    assert "essentials_category" not in new and new["deprecated"] is False
    assert show["dev_only"] is True and show["essentials_category"] == "Basic" and "search_aliases" not in show


def test_a_retired_node_runs_as_its_replacement(engine: Engine) -> None:
    prompt = _prompt("RepOld")
    checked = engine.validate(prompt)
    assert checked.ok, checked.node_errors
    assert checked.prompt["1"]["class_type"] == "RepNew" and checked.prompt["1"]["_meta"] == {"title": "old"}
    assert checked.prompt["1"]["inputs"] == {"value": 2.5, "offset": 10.0}
    assert checked.prompt["2"]["inputs"]["source"] == ["1", 1]  # old output 0 is the new output 1
    assert prompt["1"]["class_type"] == "RepOld"  # the caller's prompt is not changed
    result = engine.run(prompt)
    assert result.status == "success", result.errors
    assert result.value("1", 1) == 12.5


def test_replacement_whose_new_node_is_missing_leaves_the_node_unknown(engine: Engine) -> None:
    checked = engine.validate(_prompt("RepGone"))
    assert not checked.ok
    assert checked.node_errors["1"]["errors"][0]["message"] == "Cannot execute because node RepGone does not exist."


def test_registering_outside_pack_loading_is_refused() -> None:
    from nodeloom.compat.comfy.api.latest import ComfyAPI, ComfyAPISync, io

    with pytest.raises(NodeloomError, match="only be registered while custom-node packs load"):
        ComfyAPISync().node_replacement.register(io.NodeReplace("A", "B"))
    with pytest.raises(NodeloomError, match="only be registered while custom-node packs load"):
        asyncio.run(ComfyAPI().node_replacement.register(io.NodeReplace("A", "B")))
    with pytest.raises(TypeError, match="takes an io.NodeReplace"):
        ComfyAPISync().node_replacement.register("B")


def test_server_lists_replacements_and_runs_retired_nodes(engine: Engine, tmp_path: Path) -> None:
    srv = LiveServer(create_app(engine, ServerConfig(db_path=tmp_path / "queue.sqlite3")))
    try:
        listed = request(srv.url, "GET", "/api/node_replacements").json()
        assert listed["RepOld"] == [REP_OLD] and set(listed) == {"RepOld", "RepOlder", "RepGone"}
        reply = request(srv.url, "POST", "/prompt", {"prompt": _prompt("RepOld")})
        assert reply.status == 200, reply.json()
        queued = request(srv.url, "GET", f"/history/{reply.json()['prompt_id']}")
        for _ in range(200):
            if queued.json():
                break
            asyncio.run(asyncio.sleep(0.05))
            queued = request(srv.url, "GET", f"/history/{reply.json()['prompt_id']}")
        (item,) = queued.json().values()
        assert item["status"]["status_str"] == "success", item["status"]
        assert item["prompt"][2]["1"]["class_type"] == "RepNew"  # history keeps the prompt that ran
        assert item["outputs"]["2"] == {"text": ["12.5"]}
    finally:
        srv.close()
