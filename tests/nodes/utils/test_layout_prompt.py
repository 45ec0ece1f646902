"""Flux3LayoutPrompt and MOSSImageLayoutPrompt: the exact prompt text for object, text, palette and
character boxes, the empty case, the declarations, refused input, and the templates' chain
Create Bounding Boxes → layout prompt through the engine."""

from __future__ import annotations

import copy
import json

import pytest

from nodeloom.errors import ValidationError
from nodeloom.nodes.utils import NODE_CLASS_MAPPINGS as NODES
from tests.nodes.conftest import run_prompt

# ComfyUI's element spelling: bbox [ymin, xmin, ymax, xmax] on 0..1000, desc, color_palette
SKY = {"type": "obj", "bbox": [0, 0, 400, 1000], "desc": "a stormy sky"}
KNIGHT = {"type": "obj", "bbox": [250, 100, 1000, 600], "desc": "a kneeling knight", "color_palette": ["#445522"]}
TITLE = {"type": "text", "bbox": [50, 200, 150, 800], "text": "MOSS", "desc": "cream serif capitals"}


def flux(prompt, element):
    cls = NODES["Flux3LayoutPrompt"]
    return getattr(cls(), cls.FUNCTION)(prompt=prompt, element=element)[0]


def moss(prompt, element, width=1024, height=1024, character_boxes=""):
    cls = NODES["MOSSImageLayoutPrompt"]
    return getattr(cls(), cls.FUNCTION)(prompt=prompt, element=element, width=width, height=height,
                                        character_boxes=character_boxes)[0]


def test_flux3_appends_one_row_per_box_with_obj_ids():
    out = flux("A knight <obj_2> under <obj_1>.", [SKY, KNIGHT])
    assert out == ('A knight <obj_2> under <obj_1>. [{"id": "obj_1", "bbox": [0, 0, 400, 1000], "desc": "a stormy sky"}, '
                   '{"id": "obj_2", "bbox": [250, 100, 1000, 600], "desc": "a kneeling knight"}]')


def test_flux3_quotes_the_wording_of_text_boxes_and_drops_palettes():
    out = flux("Poster <obj_1>\n", [TITLE, {**KNIGHT, "desc": ""}])
    table = json.loads(out[len("Poster <obj_1> "):])
    assert out.startswith("Poster <obj_1> [")
    assert table == [{"id": "obj_1", "bbox": [50, 200, 150, 800], "desc": '"MOSS", cream serif capitals'},
                     {"id": "obj_2", "bbox": [250, 100, 1000, 600], "desc": ""}]
    assert "#445522" not in out
    assert json.loads(flux("x", [{**TITLE, "desc": ""}])[2:])[0]["desc"] == '"MOSS"'


def test_flux3_reads_only_comfyui_element_keys_and_clamps_to_the_grid():
    # bbox is [ymin, xmin, ymax, xmax]; "description" / "palette" are not element keys
    other = {"type": "obj", "bbox": [250, 100, 1000, 600], "description": "a kneeling knight", "palette": ["#445522"]}
    assert flux("k", [other]) == 'k [{"id": "obj_1", "bbox": [250, 100, 1000, 600], "desc": ""}]'
    assert "color_palette" not in json.loads(moss("k", [other]))["layout"][0]
    assert json.loads(flux("k", [{**KNIGHT, "bbox": [1000, 600, 250, 100]}])[2:])[0]["bbox"] == [250, 100, 1000, 600]
    assert json.loads(flux("k", [{"bbox": [-5, 0.4, 1200, 999.6], "desc": "d"}])[2:])[0]["bbox"] == [0, 0, 1000, 1000]


def test_no_elements_return_the_prompt_unchanged():
    for empty in ([], None, ""):
        assert flux("  keep me  ", empty) == "  keep me  "
        assert moss("keep me", empty, character_boxes="1") == "keep me"


def test_moss_labels_boxes_and_centres_pixel_coordinates():
    out = moss("A poster.", [SKY, KNIGHT, TITLE], width=1024, height=768, character_boxes="2")
    assert out == json.dumps({
        "caption": "A poster.",
        "layout": [
            {"label": "object", "caption": "a stormy sky", "bbox": [-384, -512, -77, 512]},
            {"label": "character", "caption": "a kneeling knight", "color_palette": ["#445522"],
             "bbox": [-192, -410, 384, 102]},
            {"label": "text", "caption": "cream serif capitals", "text": "MOSS", "bbox": [-346, -307, -269, 307]},
        ],
        "bbox_format": "yxyx"})
    assert list(json.loads(out)) == ["caption", "layout", "bbox_format"]


def test_moss_character_numbers_take_any_separator_and_never_relabel_text():
    labels = lambda s: [e["label"] for e in json.loads(moss("p", [SKY, KNIGHT, TITLE], character_boxes=s))["layout"]]
    assert labels("1;3") == ["character", "object", "text"]
    assert labels("box 2 and #1, 9") == ["character", "character", "text"]
    assert labels("") == ["object", "object", "text"]
    assert json.loads(moss("名前", [TITLE]))["caption"] == "名前"  # kept as written, not escaped
    assert "名前" in moss("名前", [TITLE])


def test_bad_input_is_refused_with_the_input_named():
    with pytest.raises(ValidationError, match="element"):
        flux("p", 42)
    with pytest.raises(ValidationError, match="element.*bbox"):
        flux("p", [{"type": "obj", "bbox": [1, 2, 3]}])
    with pytest.raises(ValidationError, match="element"):
        moss("p", ["not an element"])
    with pytest.raises(ValidationError, match="element"):
        moss("p", "{not json")
    with pytest.raises(ValidationError, match="character_boxes"):
        moss("p", [SKY], character_boxes=3)
    with pytest.raises(ValidationError, match="width"):
        moss("p", [SKY], width=8)
    with pytest.raises(ValidationError, match="prompt"):
        flux(None, [SKY])


def test_declarations(image_engine):
    info = image_engine.object_info("Flux3LayoutPrompt")["Flux3LayoutPrompt"]
    assert info["display_name"] == "FLUX 3 Image Layout Prompt"
    assert info["input_order"]["required"] == ["prompt", "element"]
    assert info["input"]["required"]["element"][0] == "ARRAY"
    assert info["input"]["required"]["prompt"][1]["default"] == ""
    assert info["output"] == ["STRING"] and info["output_name"] == ["prompt"]
    info = image_engine.object_info("MOSSImageLayoutPrompt")["MOSSImageLayoutPrompt"]
    assert info["display_name"] == "MOSS-Image Layout Prompt"
    # the order of the template's widget values [prompt, 1024, 1024, "2"]
    assert info["input_order"]["required"] == ["prompt", "element", "width", "height", "character_boxes"]
    for side in ("width", "height"):
        assert info["input"]["required"][side] == ["INT", {"default": 1024, "min": 16, "max": 16384, "step": 16,
                                                          "tooltip": info["input"]["required"][side][1]["tooltip"]}]
    assert info["input"]["required"]["character_boxes"][1]["default"] == ""
    assert info["output"] == ["STRING"] and info["output_name"] == ["prompt"]


def test_boxes_to_layout_prompts_through_the_engine(image_engine):
    canvas = [{"x": 0, "y": 0, "width": 64, "height": 16, "metadata": {"type": "text", "text": "HI", "desc": "a sign"}},
              {"x": 16, "y": 32, "width": 32, "height": 32, "metadata": {"type": "obj", "desc": "a cat"}}]
    prompt = {"1": {"class_type": "CreateBoundingBoxes", "inputs": {"width": 64, "height": 64,
                                                                    "editor_state": {"__value__": canvas}}},
              "2": {"class_type": "Flux3LayoutPrompt", "inputs": {"prompt": "A cat <obj_2>.", "element": ["1", 2]}},
              "3": {"class_type": "MOSSImageLayoutPrompt",
                    "inputs": {"prompt": "A cat.", "element": ["1", 2], "width": 64, "height": 64,
                               "character_boxes": "2"}}}
    result = run_prompt(image_engine, prompt, sinks=[["2", 0], ["3", 0]])
    assert result.status == "success", result.errors
    assert result.value("2") == ('A cat <obj_2>. [{"id": "obj_1", "bbox": [0, 0, 250, 1000], "desc": "\\"HI\\", a sign"}, '
                                 '{"id": "obj_2", "bbox": [500, 250, 1000, 750], "desc": "a cat"}]')
    assert json.loads(result.value("3"))["layout"] == [
        {"label": "text", "caption": "a sign", "text": "HI", "bbox": [-32, -32, -16, 32]},
        {"label": "character", "caption": "a cat", "bbox": [0, -16, 32, 16]}]


@pytest.mark.parametrize("template,node_type", [("image_flux3_klein_t2i", "Flux3LayoutPrompt"),
                                                ("image_flux3_klein_image_edit", "Flux3LayoutPrompt"),
                                                ("image_moss_image_t2i_bboxes", "MOSSImageLayoutPrompt"),
                                                ("image_moss_image_base_t2i_bboxes", "MOSSImageLayoutPrompt")])
def test_official_template_wiring_converts_and_runs(image_engine, template, node_type):
    """The templates' CreateBoundingBoxes → layout prompt pair, widgets as saved, runs through the engine."""
    from nodeloom.core.context import activate_services
    from nodeloom.core.workflow_ui import to_api
    from nodeloom.workflows.files import _input_types
    from tests.nodes.diffusion.family_helpers import official_template

    doc = official_template(template)
    nodes = list(doc.get("nodes", []))
    for sg in doc.get("definitions", {}).get("subgraphs", []):
        nodes += sg.get("nodes", [])
    layout = copy.deepcopy(next(n for n in nodes if n.get("type") == node_type))
    canvas = copy.deepcopy(next(n for n in nodes if n.get("type") == "CreateBoundingBoxes"))
    for n in (layout, canvas):
        for socket in n.get("inputs") or []:
            socket["link"] = None
        for socket in n.get("outputs") or []:
            socket["links"] = []
    canvas["outputs"][2]["links"] = [1]
    next(s for s in layout["inputs"] if s["name"] == "element")["link"] = 1
    link = [1, canvas["id"], 2, layout["id"], 0, "ARRAY"]
    ui = {"last_node_id": max(canvas["id"], layout["id"]), "last_link_id": 1, "nodes": [canvas, layout],
          "links": [link], "version": 0.4}
    with activate_services(image_engine.services):
        prompt = to_api(ui, _input_types(image_engine), image_engine.registry.display_name)
    key = str(layout["id"])
    assert prompt[key]["inputs"]["element"] == [str(canvas["id"]), 2]
    assert prompt[key]["inputs"]["prompt"] == layout["widgets_values"][0]
    result = run_prompt(image_engine, prompt, sinks=[[key, 0]])
    assert result.status == "success", result.errors
    out = result.value(key)
    if node_type == "MOSSImageLayoutPrompt":
        layout_json = json.loads(out)
        assert layout_json["caption"] == layout["widgets_values"][0] and layout_json["bbox_format"] == "yxyx"
        assert len(layout_json["layout"]) == len(canvas["widgets_values"][2])
        if template == "image_moss_image_t2i_bboxes":
            assert prompt[key]["inputs"]["character_boxes"] == "2"
            labels = [e["label"] for e in layout_json["layout"]]
            assert labels == ["text", "character", "text", "text", "text", "text"]  # box 2 is the knight
            first = layout_json["layout"][0]  # x 0..1024, y 56..389 of a 1024² canvas
            assert first["text"] == "MOSS" and first["bbox"] == [-456, -512, -123, 512]
    elif template == "image_flux3_klein_image_edit":
        # one 736×896 box at (128, 192) on an 896×1152 canvas: [top, left, bottom, right] on 0..1000
        assert out == ('In <ref_image_0>, change the dress color <obj_1> to red '
                       '[{"id": "obj_1", "bbox": [167, 143, 944, 964], "desc": "dress"}]')
    else:
        assert out == layout["widgets_values"][0]  # an empty canvas: the prompt passes through
