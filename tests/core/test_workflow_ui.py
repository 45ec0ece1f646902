"""UI-format → API conversion: widget order, links, virtual/muted/bypassed nodes, subgraphs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nodeloom.compat.ui_export import api_to_ui
from nodeloom.core.workflow_ui import detect_format, to_api, ui_to_api, widget_layout
from nodeloom.errors import WorkflowFormatError
from nodeloom.nodes.core import NODE_CLASS_MAPPINGS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "workflows"

SAMPLER_TYPES = {
    "required": {
        "model": ("MODEL",),
        "seed": ("INT", {"default": 0, "min": 0, "max": 2**64 - 1}),
        "steps": ("INT", {"default": 20, "min": 1}),
        "cfg": ("FLOAT", {"default": 8.0}),
        "sampler_name": (["euler", "ddim"],),
        "positive": ("CONDITIONING",),
        "latent_image": ("LATENT",),
        "denoise": ("FLOAT", {"default": 1.0}),
    }
}
EXTRA_TYPES: dict[str, dict[str, Any]] = {
    "KSampler": SAMPLER_TYPES,
    "FixedSeed": {"required": {"seed": ("INT", {"control_after_generate": False}), "tag": ("STRING", {})}},
    "Picker": {"required": {"choice": (["a", "b"], {"control_after_generate": True}), "n": ("INT", {})}},
    "Loader": {"required": {"name": ("STRING", {})}},
    "Forced": {"required": {"a": ("INT", {"forceInput": True}), "b": ("INT", {})}},
}


def lookup(class_type: str) -> dict[str, Any] | None:
    if class_type in EXTRA_TYPES:
        return EXTRA_TYPES[class_type]
    cls = NODE_CLASS_MAPPINGS.get(class_type)
    return cls.INPUT_TYPES() if cls is not None else None


def node(node_id: int, type_: str, widgets: Any = (), inputs: Any = (), mode: int = 0, **extra: Any) -> dict[str, Any]:
    out = {"id": node_id, "type": type_, "mode": mode, "inputs": list(inputs), "outputs": [], "widgets_values": widgets}
    out.update(extra)
    return out


def ui(nodes: list[dict[str, Any]], links: list[Any], **extra: Any) -> dict[str, Any]:
    return {"last_node_id": 99, "last_link_id": 99, "nodes": nodes, "links": links, "version": 0.4, **extra}


def test_detect_format_tells_api_from_ui_and_rejects_other_json() -> None:
    assert detect_format({"1": {"class_type": "X", "inputs": {}}}) == "api"
    assert detect_format(ui([], [])) == "ui"
    for bad in ([], {"1": {"inputs": {}}}, {}, "text"):
        with pytest.raises(WorkflowFormatError):
            detect_format(bad)


def test_widget_layout_marks_seed_controls_and_uploads() -> None:
    assert widget_layout(SAMPLER_TYPES) == [
        ("seed", True, False, False), ("steps", False, False, False), ("cfg", False, False, False),
        ("sampler_name", False, False, False), ("denoise", False, False, False),
    ]
    assert widget_layout(lookup("LoadImage")) == [("image", False, True, False)]
    assert widget_layout(EXTRA_TYPES["FixedSeed"])[0] == ("seed", False, False, False)
    assert widget_layout(EXTRA_TYPES["Picker"])[0] == ("choice", True, False, False)


def test_widgets_by_order_skip_control_value_and_links_override() -> None:
    wf = ui(
        [
            node(1, "KSampler", [123, "randomize", 30, 6.5, "ddim", 0.75],
                 inputs=[{"name": "model", "type": "MODEL", "link": 1},
                         {"name": "steps", "type": "INT", "widget": {"name": "steps"}, "link": 2}]),
            node(2, "Loader", ["m"]),
            node(3, "PrimitiveInt", [7, "fixed"]),
        ],
        [[1, 2, 0, 1, 0, "MODEL"], [2, 3, 0, 1, 1, "INT"]],
    )
    prompt = ui_to_api(wf, lookup)
    assert prompt["1"]["inputs"] == {
        "seed": 123, "steps": ["3", 0], "cfg": 6.5, "sampler_name": "ddim", "denoise": 0.75, "model": ["2", 0],
    }
    assert prompt["3"]["inputs"] == {"value": 7}


def test_old_widget_values_without_control_value_still_map() -> None:
    wf = ui([node(1, "KSampler", [5, 10, 2.0, "euler", 1.0])], [])
    assert ui_to_api(wf, lookup)["1"]["inputs"] == {"seed": 5, "steps": 10, "cfg": 2.0, "sampler_name": "euler", "denoise": 1.0}


def test_missing_widget_values_take_the_defaults_the_frontend_shows() -> None:
    wf = ui([node(1, "SaveImage", None, inputs=[{"name": "images", "type": "IMAGE", "link": None}]),
             node(2, "ImageScale", ["bicubic"]), node(3, "FixedSeed", [])], [])
    prompt = ui_to_api(wf, lookup)
    assert prompt["1"]["inputs"] == {"filename_prefix": "ComfyUI"}
    assert prompt["2"]["inputs"] == {"upscale_method": "bicubic", "width": 512, "height": 512, "crop": "disabled"}
    assert prompt["3"]["inputs"] == {"seed": 0, "tag": ""}


def test_explicit_control_flags_and_dict_widget_values() -> None:
    wf = ui([node(1, "FixedSeed", [9, "tag"]), node(2, "Picker", ["b", "fixed", 3]),
             node(3, "FixedSeed", {"seed": 4, "tag": "t", "extra": 1})], [])
    prompt = ui_to_api(wf, lookup)
    assert prompt["1"]["inputs"] == {"seed": 9, "tag": "tag"}
    assert prompt["2"]["inputs"] == {"choice": "b", "n": 3}
    assert prompt["3"]["inputs"] == {"seed": 4, "tag": "t"}


def test_force_input_values_of_old_workflows_are_skipped() -> None:
    assert ui_to_api(ui([node(1, "Forced", [1, 2])], []), lookup)["1"]["inputs"] == {"a": 1, "b": 2}
    assert ui_to_api(ui([node(1, "Forced", [2])], []), lookup)["1"]["inputs"] == {"b": 2}


def test_upload_widget_value_is_skipped_and_title_kept() -> None:
    wf = ui([node(1, "LoadImage", ["cat.png", "image"], title="My photo")], [])
    assert ui_to_api(wf, lookup) == {"1": {"inputs": {"image": "cat.png"}, "class_type": "LoadImage", "_meta": {"title": "My photo"}}}
    assert ui_to_api(ui([node(1, "LoadImage", ["a.png", "image"])], []), lookup, lambda t: f"<{t}>")["1"]["_meta"] == {"title": "<LoadImage>"}


def test_virtual_muted_and_bypassed_nodes() -> None:
    img_out = {"name": "IMAGE", "type": "IMAGE", "links": []}
    wf = ui(
        [
            node(1, "EmptyImage", [8, 8, 1, 0]),
            node(2, "Reroute", inputs=[{"name": "", "type": "*", "link": 1}]),
            node(3, "ImageInvert", [], inputs=[{"name": "image", "type": "IMAGE", "link": 2}], mode=4, outputs=[img_out]),
            node(4, "SaveImage", ["a"], inputs=[{"name": "images", "type": "IMAGE", "link": 3}]),
            node(5, "ImageInvert", [], inputs=[{"name": "image", "type": "IMAGE", "link": 4}], mode=2),
            node(6, "PreviewImage", [], inputs=[{"name": "images", "type": "IMAGE", "link": 5}]),
            node(7, "Note", ["hello"]),
            node(8, "MarkdownNote", ["# hi"]),
        ],
        [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"], [3, 3, 0, 4, 0, "IMAGE"],
         [4, 1, 0, 5, 0, "IMAGE"], [5, 5, 0, 6, 0, "IMAGE"]],
    )
    prompt = ui_to_api(wf, lookup)
    assert set(prompt) == {"1", "4", "6"}
    assert prompt["4"]["inputs"] == {"filename_prefix": "a", "images": ["1", 0]}
    assert prompt["6"]["inputs"] == {}  # its source is muted: the input is left out


def test_bypass_picks_a_same_typed_input() -> None:
    wf = ui(
        [
            node(1, "EmptyImage", [8, 8, 1, 0]),
            node(2, "ImagePadForOutpaint", [0, 0, 0, 0, 0], mode=4,
                 inputs=[{"name": "image", "type": "IMAGE", "link": 1}],
                 outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [2]}, {"name": "MASK", "type": "MASK", "links": [3]}]),
            node(3, "SaveImage", ["x"], inputs=[{"name": "images", "type": "IMAGE", "link": 2}]),
        ],
        [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]],
    )
    assert ui_to_api(wf, lookup)["3"]["inputs"]["images"] == ["1", 0]


def test_ui_example_with_subgraph_converts() -> None:
    workflow = json.loads((EXAMPLES / "ui_subgraph_example.json").read_text())
    prompt = to_api(workflow, lookup)
    assert prompt == {
        "1": {"inputs": {"width": 40, "height": 32, "batch_size": 1, "color": 0}, "class_type": "EmptyImage", "_meta": {"title": "EmptyImage"}},
        "5:1": {"inputs": {"image": ["1", 0]}, "class_type": "ImageInvert", "_meta": {"title": "ImageInvert"}},
        "5:2": {"inputs": {"upscale_method": "nearest-exact", "width": 64, "height": 0, "crop": "disabled", "image": ["5:1", 0]},
                "class_type": "ImageScale", "_meta": {"title": "ImageScale"}},
        "6": {"inputs": {"filename_prefix": "nodeloom/ui_example", "images": ["5:2", 0]}, "class_type": "SaveImage", "_meta": {"title": "SaveImage"}},
    }


def test_nested_subgraphs_get_path_ids() -> None:
    inner = {"id": "inner", "nodes": [node(1, "ImageInvert", [], inputs=[{"name": "image", "type": "IMAGE", "link": 1}])],
             "links": [{"id": 1, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0, "type": "IMAGE"},
                       {"id": 2, "origin_id": 1, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "IMAGE"}]}
    outer = {"id": "outer", "nodes": [node(4, "inner", [], inputs=[{"name": "image", "type": "IMAGE", "link": 1}])],
             "links": [{"id": 1, "origin_id": -10, "origin_slot": 0, "target_id": 4, "target_slot": 0, "type": "IMAGE"},
                       {"id": 2, "origin_id": 4, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "IMAGE"}],
             "definitions": {"subgraphs": [inner]}}
    wf = ui([node(1, "EmptyImage", [8, 8, 1, 0]), node(2, "outer", [], inputs=[{"name": "image", "type": "IMAGE", "link": 1}]),
             node(3, "SaveImage", ["n"], inputs=[{"name": "images", "type": "IMAGE", "link": 2}])],
            [{"id": 1, "origin_id": 1, "origin_slot": 0, "target_id": 2, "target_slot": 0},
             {"id": 2, "origin_id": 2, "origin_slot": 0, "target_id": 3, "target_slot": 0}],
            definitions={"subgraphs": [outer]})
    prompt = ui_to_api(wf, lookup)
    assert prompt["2:4:1"]["inputs"] == {"image": ["1", 0]}
    assert prompt["3"]["inputs"]["images"] == ["2:4:1", 0]


def test_unknown_node_type_is_named_in_the_error() -> None:
    with pytest.raises(WorkflowFormatError, match=r"node 12 \(`NoSuchNode`\).*unknown node type") as info:
        ui_to_api(ui([node(12, "NoSuchNode", [])], []), lookup)
    assert info.value.extra_info == {"node_id": "12", "class_type": "NoSuchNode"}
    # a muted unknown node is never sent, so it is no error
    assert ui_to_api(ui([node(12, "NoSuchNode", [], mode=2)], []), lookup) == {}


def test_broken_links_are_reported() -> None:
    missing_link = ui([node(1, "SaveImage", ["x"], inputs=[{"name": "images", "type": "IMAGE", "link": 9}])], [])
    with pytest.raises(WorkflowFormatError, match="input `images`: link 9 does not exist"):
        ui_to_api(missing_link, lookup)
    missing_node = ui([node(1, "SaveImage", ["x"], inputs=[{"name": "images", "type": "IMAGE", "link": 9}])],
                      [[9, 42, 0, 1, 0, "IMAGE"]])
    with pytest.raises(WorkflowFormatError, match="node 42, which does not exist"):
        ui_to_api(missing_node, lookup)
    with pytest.raises(WorkflowFormatError, match="link"):
        ui_to_api(ui([], [[1, 2]]), lookup)


def test_reroute_loop_is_reported_not_recursed_forever() -> None:
    wf = ui([node(1, "Reroute", inputs=[{"name": "", "type": "*", "link": 2}]),
             node(2, "Reroute", inputs=[{"name": "", "type": "*", "link": 1}]),
             node(3, "SaveImage", ["x"], inputs=[{"name": "images", "type": "IMAGE", "link": 3}])],
            [[1, 1, 0, 2, 0, "*"], [2, 2, 0, 1, 0, "*"], [3, 1, 0, 3, 0, "IMAGE"]])
    with pytest.raises(WorkflowFormatError, match="a loop"):
        ui_to_api(wf, lookup)


@pytest.mark.parametrize("name", ["invert_scale.json", "branching.json"])
def test_api_examples_round_trip_through_ui(name: str) -> None:
    prompt = json.loads((EXAMPLES / name).read_text())
    workflow = api_to_ui(prompt, lookup)
    assert detect_format(workflow) == "ui"
    assert ui_to_api(json.loads(json.dumps(workflow)), lookup) == prompt


def test_round_trip_with_seed_widget_and_linked_widget() -> None:
    prompt = {
        "4": {"inputs": {"name": "m"}, "class_type": "Loader", "_meta": {"title": "Model"}},
        "7": {"inputs": {"value": 99}, "class_type": "PrimitiveInt", "_meta": {"title": "Steps"}},
        "3": {"inputs": {"seed": 2**63, "steps": ["7", 0], "cfg": 4.0, "sampler_name": "euler", "denoise": 1.0,
                         "model": ["4", 0]}, "class_type": "KSampler", "_meta": {"title": "Sampler"}},
    }
    workflow = api_to_ui(prompt, lookup)
    sampler = next(n for n in workflow["nodes"] if n["id"] == 3)
    assert sampler["widgets_values"][:2] == [2**63, "fixed"]
    assert ui_to_api(workflow, lookup) == prompt


# --------------------------------------------------------------------------- robustness

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 30) | st.text(max_size=4) | st.sampled_from(["IMAGE", "INT", "*", -10, -20]),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.sampled_from(
        ["id", "type", "mode", "inputs", "outputs", "link", "links", "name", "widget", "widgets_values", "origin_id",
         "origin_slot", "target_id", "target_slot", "title", "subgraphs", "definitions", "nodes"]), inner, max_size=6),
    max_leaves=30,
)
_node = st.fixed_dictionaries(
    {"id": st.integers(1, 6), "type": st.sampled_from(["EmptyImage", "ImageInvert", "Reroute", "PrimitiveNode", "SaveImage", "sg"])},
    optional={"mode": st.integers(0, 4), "inputs": _json, "outputs": _json, "widgets_values": _json, "title": _json},
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nodes=st.lists(_node | _json, max_size=6), links=_json | st.lists(st.lists(st.integers(-20, 8), max_size=7), max_size=6),
       defs=_json)
def test_malformed_ui_json_gives_a_format_error_never_a_crash(nodes: Any, links: Any, defs: Any) -> None:
    workflow = {"nodes": nodes, "links": links, "definitions": {"subgraphs": [{"id": "sg", "nodes": nodes, "links": defs}]}}
    try:
        prompt = ui_to_api(workflow, lookup)
    except WorkflowFormatError:
        return
    assert all(isinstance(v, dict) and "class_type" in v for v in prompt.values())


def test_dynamic_combo_widgets_follow_the_selected_option():
    from nodeloom.core.graph import input_info
    from nodeloom.core.workflow_ui import expand_dynamic

    inner = {"required": {"fps": ["FLOAT", {"default": 6.0}], "loop": ["INT", {"default": 0}]}}
    mode = ["COMFY_DYNAMICCOMBO_V3", {"options": [{"key": "still", "inputs": {}}, {"key": "animated", "inputs": inner}]}]
    fmt = ["COMFY_DYNAMICCOMBO_V3", {"options": [
        {"key": "png", "inputs": {"required": {"bits": [["8", "16"], {}]}}},
        {"key": "avif", "inputs": {"required": {"crf": ["INT", {"default": 18}], "mode": mode}}},
    ]}]
    types = {"required": {"images": ["IMAGE", {}], "format": fmt, "prefix": ["STRING", {}]}}
    expanded = expand_dynamic(types, ["avif", 20, "animated", 12.0, 1, "out"])
    assert list(expanded["required"]) == ["images", "format", "format.crf", "format.mode", "format.mode.fps",
                                          "format.mode.loop", "prefix"]
    assert list(expand_dynamic(types, ["png", "16", "out"])["required"]) == ["images", "format", "format.bits", "prefix"]
    assert list(types["required"]) == ["images", "format", "prefix"]  # the declaration is left alone
    assert input_info(types, "format.mode.fps") == ("FLOAT", "required", {"default": 6.0})
    assert input_info(types, "format.nothing")[1] is None and input_info(types, "images.x")[1] is None


def test_color_widgets_take_their_value():
    types = {"required": {"color": ["COLOR", {"default": "#ffffff"}]}}
    ui = {"last_node_id": 1, "links": [], "nodes": [{"id": 1, "type": "ColorToRGBInt", "mode": 0, "inputs": [],
                                                       "outputs": [], "widgets_values": ["#0a9299"]}]}
    assert to_api(ui, lambda t: types)["1"]["inputs"] == {"color": "#0a9299"}
