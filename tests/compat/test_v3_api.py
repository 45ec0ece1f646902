"""ComfyUI's V3 node API through the Engine: a V3 pack and its V1 twin give the same results.

The packs are written by :mod:`tests.compat.v3_packs` into a temporary ``custom_nodes/``
folder and loaded like any custom-node pack.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from nodeloom.core.graph_builder import ExecutionBlocker
from nodeloom.engine import Engine
from tests.compat.v3_packs import write_packs

AG = "_$values_ag$"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    root = tmp_path_factory.mktemp("v3")
    engine = Engine(base_dir=root / "base", custom_nodes_dirs=[write_packs(root / "custom_nodes")])
    yield engine
    engine.close()


def _image(value: float = 0.25, batch: int = 1) -> dict[str, Any]:
    return {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": batch, "color": 0}}


def _graphs(kind: str) -> dict[str, Any]:
    """One prompt using every node of the ``kind`` pack ("V3" or "V1")."""
    sum_inputs = ({f"value1{AG}": ["10", 0], f"value2{AG}": ["11", 0], f"value3{AG}": ["10", 0]} if kind == "V3"
                  else {"value1": ["10", 0], "value2": ["11", 0], "value3": ["10", 0]})
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 3, "color": 0x404040}},
        "2": {"class_type": f"{kind}Scale", "inputs": {"image": ["1", 0], "factor": 0.5}},
        "3": {"class_type": f"{kind}Repeat", "inputs": {"image": ["2", 0], "times": 3}},
        "4": {"class_type": f"{kind}LazySwitch", "inputs": {"use_a": False, "a": ["2", 0], "b": ["3", 0]}},
        "5": {"class_type": f"{kind}Split", "inputs": {"images": ["4", 0]}},
        "6": {"class_type": f"{kind}Count", "inputs": {"images": ["5", 0]}},
        "7": {"class_type": f"{kind}Show", "inputs": {"value": ["6", 0]}},
        "10": {"class_type": f"{kind}Pick", "inputs": {"mode": "mul", "x": 1.5, "y": 2.0}},
        "11": {"class_type": f"{kind}Pick", "inputs": {"mode": "add", "x": 1.5, "y": 2.0}},
        "12": {"class_type": f"{kind}Sum", "inputs": sum_inputs},
        "13": {"class_type": f"{kind}Show", "inputs": {"value": ["12", 0]}},
        "20": {"class_type": f"{kind}Gate", "inputs": {"value": ["4", 0], "open": False}},
        "21": {"class_type": "PreviewImage", "inputs": {"images": ["20", 0]}},
    }


def test_v3_pack_loads_through_its_async_entrypoint(engine: Engine) -> None:
    pack = next(p for p in engine.registry.packs if p.name == "v3_pack")
    assert pack.error is None
    assert sorted(pack.node_ids) == sorted(f"V3{n}" for n in (
        "Scale", "LazySwitch", "Sum", "Repeat", "Split", "Count", "Gate", "Pick", "Clock", "Show", "Preview"))
    module = next(m for name, m in sys.modules.items() if name.startswith("nodeloom_custom_nodes.v3_pack"))
    assert module.LOADED == [True]  # on_load ran before get_node_list
    assert engine.registry.display_name("V3Scale") == "Scale (V3)"


def test_v3_and_v1_packs_give_the_same_results(engine: Engine) -> None:
    results = {kind: engine.run(_graphs(kind)) for kind in ("V3", "V1")}
    for kind, result in results.items():
        assert result.status == "success", (kind, result.errors)
    v3, v1 = results["V3"], results["V1"]
    assert torch.equal(v3.value("4"), v1.value("4"))
    assert torch.allclose(v3.value("4"), torch.full((3, 8, 8, 3), 0x40 / 255 * 0.5 * 8))
    assert v3.value("12") == v1.value("12") == 3.0 + 3.5 + 3.0
    assert v3.value("6") == v1.value("6") == 3  # three single-image list items
    assert v3.outputs["7"] == v1.outputs["7"] == {"text": ["7|13|3"]}
    assert v3.outputs["13"] == v1.outputs["13"] == {"text": ["13|13|9.5"]}
    assert "2" not in v3.outputs and "21" not in v3.outputs
    for result in (v3, v1):  # the lazy switch never asked for its unused input's branch beyond node 2
        assert isinstance(result.value("20"), ExecutionBlocker)


def test_v3_lazy_input_runs_only_the_branch_it_asks_for(engine: Engine) -> None:
    prompt = _graphs("V3")
    prompt["4"]["inputs"]["use_a"] = True
    result = engine.run({k: prompt[k] for k in ("1", "2", "3", "4", "5", "6", "7")})
    assert result.status == "success", result.errors
    assert "3" not in result.node_runs  # the expansion behind `b` never ran
    assert torch.allclose(result.value("4"), torch.full((3, 8, 8, 3), 0x40 / 255 * 0.5))


def test_v3_blocker_message_is_reported_like_v1(engine: Engine) -> None:
    reported = {}
    for kind in ("V3", "V1"):
        events: list[Any] = []
        prompt = {k: v for k, v in _graphs(kind).items() if k in ("1", "2", "3", "4", "20", "21")}
        assert engine.run(prompt, on_event=events.append).status == "success"
        reported[kind] = [(e.data["node_id"], e.data["exception_type"], e.data["exception_message"])
                          for e in events if e.type == "execution_error"]
    assert reported["V3"] == reported["V1"] == [("21", "ExecutionBlocked", "Execution Blocked: the gate is closed")]


def test_v3_preview_writes_temp_images(engine: Engine) -> None:
    result = engine.run({"1": _image(batch=2), "2": {"class_type": "V3Preview", "inputs": {"images": ["1", 0]}}})
    assert result.status == "success", result.errors
    images = result.outputs["2"]["images"]
    assert [i["type"] for i in images] == ["temp", "temp"]
    assert all((engine.paths.temp_dir / i["subfolder"] / i["filename"]).is_file() for i in images)
    assert result.outputs["2"]["animated"] == [False]


def test_v3_fingerprint_and_cache(engine: Engine) -> None:
    prompt = {"1": {"class_type": "V3Clock", "inputs": {"x": 1.0}}, "2": {"class_type": "V3Show", "inputs": {"value": ["1", 0]}},
              "3": {"class_type": "V3Pick", "inputs": {"mode": "add", "x": 1.0, "y": 1.0}},
              "4": {"class_type": "V3Show", "inputs": {"value": ["3", 0]}}}
    first, second = engine.run(prompt), engine.run(prompt)
    assert first.status == second.status == "success"
    assert first.outputs["2"] != second.outputs["2"]  # fingerprint NaN: the clock runs every time
    assert not first.node_runs["3"]["cached"] and second.node_runs["3"]["cached"]  # an ordinary V3 node is cached
    assert not second.node_runs["1"]["cached"]


def _errors(engine: Engine, prompt: dict[str, Any]) -> dict[str, list[str]]:
    checked = engine.validate(prompt)
    return {nid: [e["type"] for e in entry["errors"]] for nid, entry in checked.node_errors.items()}


def test_v3_validation_ranges_combos_custom_and_autogrow(engine: Engine) -> None:
    bad = {
        "1": _image(),
        "2": {"class_type": "V3Repeat", "inputs": {"image": ["1", 0], "times": 9}},
        "3": {"class_type": "V3Scale", "inputs": {"image": ["1", 0], "factor": 0.0}},
        "9": {"class_type": "V3Scale", "inputs": {"image": ["1", 0], "factor": 9.0}},
        "10": {"class_type": "V3Show", "inputs": {"value": ["9", 0]}},
        "4": {"class_type": "V3Pick", "inputs": {"mode": "pow", "x": 1.0, "y": 1.0}},
        "5": {"class_type": "V3Sum", "inputs": {f"value1{AG}": ["4", 0]}},
        "6": {"class_type": "V3Show", "inputs": {"value": ["2", 0]}},
        "7": {"class_type": "V3Show", "inputs": {"value": ["3", 0]}},
        "8": {"class_type": "V3Show", "inputs": {"value": ["5", 0]}},
    }
    errors = _errors(engine, bad)
    assert errors["2"] == ["value_bigger_than_max"]
    assert errors["3"] == ["custom_validation_failed"]
    assert "9" not in errors  # validate_inputs names `factor`: its range is the node's to check, as in ComfyUI
    assert errors["4"] == ["value_not_in_list"]
    assert errors["5"] == ["required_input_missing"]  # the second autogrow copy is required (min=2)


def test_v3_matchtype_output_takes_the_linked_type(engine: Engine) -> None:
    prompt = {
        "1": _image(),
        "2": {"class_type": "V3Pick", "inputs": {"mode": "add", "x": 1.0, "y": 1.0}},
        "3": {"class_type": "V3LazySwitch", "inputs": {"use_a": True, "a": ["1", 0], "b": ["1", 0]}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
        "5": {"class_type": "V3LazySwitch", "inputs": {"use_a": True, "a": ["2", 0], "b": ["2", 0]}},
        "6": {"class_type": "V3LazySwitch", "inputs": {"use_a": True, "a": ["5", 0], "b": ["5", 0]}},
        "7": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}},
    }
    errors = _errors(engine, prompt)
    assert "4" not in errors  # IMAGE through the template into an IMAGE input
    assert errors["7"] == ["return_type_mismatch"]  # FLOAT through two templates is still FLOAT


def test_v3_object_info_has_comfyui_shape(engine: Engine) -> None:
    info = engine.object_info("V3Scale")["V3Scale"]
    assert info["input"]["required"]["factor"] == ["FLOAT", {"tooltip": "The factor.", "default": 1.0, "min": -4.0,
                                                             "max": 4.0, "step": 0.25}]
    assert info["output"] == ["IMAGE"] and info["output_name"] == ["scaled"]
    assert info["output_tooltips"] == ["The scaled image."]
    assert info["description"] == "Multiply an image by a factor."
    assert info["python_module"] == "custom_nodes.v3_pack"
    assert (info["deprecated"], info["experimental"], info["api_node"], info["output_node"]) == (False,) * 4
    sum_info = engine.object_info("V3Sum")["V3Sum"]
    assert sum_info["input_order"] == {"required": [f"value1{AG}", f"value2{AG}"], "optional": [f"value3{AG}", f"value4{AG}"]}
    assert sum_info["input"]["required"][f"value1{AG}"] == ["FLOAT", {"forceInput": True}]
    assert sum_info["experimental"] is True and engine.object_info("V3Gate")["V3Gate"]["deprecated"] is True
    show = engine.object_info("V3Show")["V3Show"]
    assert show["input"]["hidden"] == {"unique_id": ["UNIQUE_ID"], "prompt": ["PROMPT"], "extra_pnginfo": ["EXTRA_PNGINFO"]}
    switch = engine.object_info("V3LazySwitch")["V3LazySwitch"]
    assert switch["input"]["required"]["a"] == ["COMFY_MATCHTYPE_V3", {"lazy": True, "template": {"template_id": "T", "allowed_types": "*"}}]
    assert engine.object_info("V3Pick")["V3Pick"]["input"]["required"]["mode"] == [
        "COMBO", {"multiselect": False, "options": ["add", "mul"]}]


def test_bad_v3_declarations_fail_clearly(tmp_path: Path) -> None:
    pack = tmp_path / "custom_nodes" / "bad_v3"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text(
        "from comfy_api.latest import ComfyExtension, io\n"
        "class Twice(io.ComfyNode):\n"
        "    @classmethod\n"
        "    def define_schema(cls):\n"
        "        return io.Schema(node_id='Twice', inputs=[io.Int.Input('a'), io.Int.Input('a')])\n"
        "    @classmethod\n"
        "    def execute(cls, a):\n"
        "        return io.NodeOutput(a)\n"
        "class Ext(ComfyExtension):\n"
        "    async def get_node_list(self):\n"
        "        return [Twice]\n"
        "def comfy_entrypoint():\n"
        "    return Ext()\n")
    with Engine(base_dir=tmp_path / "base", custom_nodes_dirs=[tmp_path / "custom_nodes"], builtin_packs=False) as engine:
        failed = engine.registry.failed_packs()
        assert len(failed) == 1 and "Input ids must be unique, but ['a'] are not" in failed[0].error


def test_ui_workflow_with_v3_nodes_converts(engine: Engine) -> None:
    from nodeloom.compat.ui_export import api_to_ui
    from nodeloom.core.workflow_ui import to_api

    def input_types(class_type: str) -> Any:
        cls = engine.registry.get(class_type)
        return cls.INPUT_TYPES() if cls is not None else None

    prompt = {k: v for k, v in _graphs("V3").items() if k not in ("12", "13")}
    back = to_api(api_to_ui(prompt, input_types), input_types)
    assert {k: (v["class_type"], v["inputs"]) for k, v in back.items()} == {
        k: (v["class_type"], v["inputs"]) for k, v in prompt.items()}
    workflow = api_to_ui({"1": {"class_type": "V3Pick", "inputs": {"x": 2.0, "y": 3.0, "mode": "mul"}}}, input_types)
    workflow["nodes"][0]["widgets_values"] = []  # a file without widget values: the frontend's defaults
    assert to_api(workflow, input_types)["1"]["inputs"] == {"mode": "add", "x": 1.0, "y": 1.0}  # first combo choice


def test_v3_classes_listed_in_node_class_mappings(tmp_path: Path) -> None:
    pack = tmp_path / "custom_nodes" / "mapped_v3.py"
    pack.parent.mkdir(parents=True)
    pack.write_text(
        "from comfy_api.v0_0_2 import io\n"
        "class Negate(io.ComfyNode):\n"
        "    @classmethod\n"
        "    def define_schema(cls):\n"
        "        return io.Schema(node_id='Negate', display_name='Negate it', category='t',\n"
        "                         inputs=[io.Int.Input('x')], outputs=[io.Int.Output()])\n"
        "    @classmethod\n"
        "    def execute(cls, x):\n"
        "        return (-x,)\n"  # a plain tuple is a result too
        "NODE_CLASS_MAPPINGS = {'Negate': Negate}\n")
    (tmp_path / "custom_nodes" / "show.py").write_text(
        "class Keep:\n"
        "    @classmethod\n"
        "    def INPUT_TYPES(cls):\n"
        "        return {'required': {'value': ('INT',)}}\n"
        "    RETURN_TYPES = ()\n"
        "    OUTPUT_NODE = True\n"
        "    FUNCTION = 'run'\n"
        "    def run(self, value):\n"
        "        return {'ui': {'value': [value]}}\n"
        "NODE_CLASS_MAPPINGS = {'Keep': Keep}\n")
    with Engine(base_dir=tmp_path / "base", custom_nodes_dirs=[tmp_path / "custom_nodes"], builtin_packs=False) as engine:
        assert engine.registry.display_name("Negate") == "Negate it"
        result = engine.run({"1": {"class_type": "Negate", "inputs": {"x": 4}},
                             "2": {"class_type": "Keep", "inputs": {"value": ["1", 0]}}})
        assert result.status == "success", result.errors
        assert result.outputs["2"] == {"value": [-4]}


def test_v3_tracks_socket_takes_wan_move_tracks(tmp_path: Path) -> None:
    """``io.Tracks`` (TRACKS) links to the built-in track nodes and receives their value."""
    pack = tmp_path / "custom_nodes" / "track_length.py"
    pack.parent.mkdir(parents=True)
    pack.write_text(
        "from comfy_api.latest import io\n"
        "class TrackShape(io.ComfyNode):\n"
        "    @classmethod\n"
        "    def define_schema(cls):\n"
        "        return io.Schema(node_id='TrackShape', category='t', is_output_node=True,\n"
        "                         inputs=[io.Tracks.Input('tracks')], outputs=[])\n"
        "    @classmethod\n"
        "    def execute(cls, tracks):\n"
        "        return io.NodeOutput(ui={'shape': list(tracks['track_path'].shape)})\n"
        "NODE_CLASS_MAPPINGS = {'TrackShape': TrackShape}\n")
    with Engine(base_dir=tmp_path / "base", custom_nodes_dirs=[tmp_path / "custom_nodes"]) as engine:
        info = engine.object_info()["TrackShape"]
        assert info["input"]["required"]["tracks"][0] == "TRACKS"
        result = engine.run({"1": {"class_type": "GenerateTracks", "inputs": {
                                 "width": 64, "height": 48, "start_x": 0.0, "start_y": 0.0, "end_x": 1.0, "end_y": 1.0,
                                 "num_frames": 9, "num_tracks": 3, "track_spread": 0.025, "bezier": False,
                                 "mid_x": 0.5, "mid_y": 0.5, "interpolation": "linear"}},
                             "2": {"class_type": "TrackShape", "inputs": {"tracks": ["1", 0]}}})
        assert result.status == "success", result.errors
        assert result.outputs["2"] == {"shape": [9, 3, 2]}
