"""BuildJsonPromptIdeogram: the JSON prompt for each style, the palette rules, and the template
chain Create Bounding Boxes → Build JSON Prompt through the engine."""

from __future__ import annotations

import json

import pytest

from nodeloom.errors import ValidationError
from nodeloom.nodes.utils import NODE_CLASS_MAPPINGS as NODES
from tests.nodes.conftest import run_prompt

# ComfyUI's element form, as Create Bounding Boxes writes it
ELEMENT = [{"type": "obj", "bbox": [0, 0, 500, 500], "desc": "a red kite", "color_palette": ["#FF0000"]}]


def build(**inputs):
    cls = NODES["BuildJsonPromptIdeogram"]
    base = dict(element=ELEMENT, high_level_description="", background="a beach", style="none",
                aesthetics="", lighting="", medium="")
    return getattr(cls(), cls.FUNCTION)(**{**base, **inputs})[0]


def test_no_style_gives_only_the_composition():
    assert build() == {"compositional_deconstruction": {"background": "a beach", "elements": ELEMENT}}
    described = build(high_level_description="A kite over the sea.")
    assert list(described) == ["high_level_description", "compositional_deconstruction"]
    assert build(high_level_description="   ")  == build()  # blank descriptions are left out


def test_photo_and_art_styles_fill_the_style_block_in_order():
    photo = build(style="photo", **{"style.photo": "35mm, f/1.4"}, aesthetics="moody", lighting="golden hour",
                  medium="photograph", color_palette=["#ff8800", "#00AAFF"])
    assert photo["style_description"] == {"aesthetics": "moody", "lighting": "golden hour", "photo": "35mm, f/1.4",
                                          "medium": "photograph", "color_palette": ["#FF8800", "#00AAFF"]}
    assert list(photo["style_description"]) == ["aesthetics", "lighting", "photo", "medium", "color_palette"]
    art = build(style={"style": "art_style", "art_style": "flat vector"}, medium="illustration")
    assert list(art["style_description"]) == ["aesthetics", "lighting", "medium", "art_style"]
    assert art["style_description"]["art_style"] == "flat vector"
    json.dumps(photo)  # the prompt is plain JSON


def test_bad_input_is_refused_with_the_input_named():
    with pytest.raises(ValidationError, match="color_palette"):
        build(style="photo", color_palette=["red"])
    with pytest.raises(ValidationError, match="at most 16"):
        build(style="photo", color_palette=["#000000"] * 17)
    with pytest.raises(ValidationError, match="style"):
        build(style="cartoon")
    with pytest.raises(ValidationError, match="element"):
        build(element=42)


def test_boxes_to_prompt_through_the_engine(image_engine):
    canvas = [{"x": 0, "y": 0, "width": 32, "height": 16,
               "metadata": {"type": "text", "text": "HELLO", "desc": "a sign", "palette": ["#112233"]}}]
    prompt = {"1": {"class_type": "CreateBoundingBoxes", "inputs": {"width": 64, "height": 64, "editor_state": {"__value__": canvas}}},
              "2": {"class_type": "BuildJsonPromptIdeogram",
                    "inputs": {"element": ["1", 2], "high_level_description": "A sign.", "background": "a wall",
                               "style": "photo", "style.photo": "50mm", "aesthetics": "clean", "lighting": "soft",
                               "medium": "photograph", "color_palette": {"__value__": ["#abcdef"]}}}}  # list widgets as the frontend sends them
    result = run_prompt(image_engine, prompt, sinks=[["2", 0]])
    assert result.status == "success", result.errors
    out = result.value("2")
    assert out["compositional_deconstruction"]["elements"] == [
        {"type": "text", "bbox": [0, 0, 250, 500], "text": "HELLO", "desc": "a sign", "color_palette": ["#112233"]}]
    assert list(out["compositional_deconstruction"]["elements"][0]) == ["type", "bbox", "text", "desc", "color_palette"]
    assert out["style_description"]["photo"] == "50mm" and out["style_description"]["color_palette"] == ["#ABCDEF"]
    info = image_engine.object_info("BuildJsonPromptIdeogram")["BuildJsonPromptIdeogram"]
    # the order of the template's widget values ["", "", "none", "", "", "", []]
    assert info["input_order"]["required"] == ["element", "high_level_description", "background", "style",
                                               "aesthetics", "lighting", "medium"]
    assert info["input_order"]["optional"] == ["color_palette"]
    assert info["output"] == ["DICT"] and info["output_name"] == ["prompt"] and info["category"] == "text"


def test_official_template_node_converts_and_runs(image_engine):
    # api_ideogram_p_image_t2i: style photo + a four-colour palette (a list widget the converter must wrap)
    import copy

    from nodeloom.core.context import activate_services
    from nodeloom.core.workflow_ui import to_api
    from nodeloom.workflows.files import _input_types
    from tests.nodes.diffusion.family_helpers import official_template

    template = official_template("api_ideogram_p_image_t2i")
    node = copy.deepcopy(next(n for n in template["nodes"] if n.get("type") == "BuildJsonPromptIdeogram"))
    for socket in node.get("inputs") or []:
        socket["link"] = None
    for socket in node.get("outputs") or []:
        socket["links"] = []
    ui = {"last_node_id": node["id"], "last_link_id": 0, "nodes": [node], "links": [], "version": 0.4}
    with activate_services(image_engine.services):
        prompt = to_api(ui, _input_types(image_engine), image_engine.registry.display_name)
    (entry,) = prompt.values()
    assert entry["inputs"]["style"] == "photo" and entry["inputs"]["style.photo"] == "editorial"
    assert entry["inputs"]["color_palette"] == {"__value__": ["#0a1628", "#ffffff", "#8b0000", "#c9a227"]}
    entry["inputs"]["element"] = ["els", 0]
    prompt["els"] = {"class_type": "TestTensor", "inputs": {"key": "els"}}
    result = run_prompt(image_engine, prompt, {"els": ELEMENT}, sinks=[[next(iter(prompt)), 0]])
    assert result.status == "success", result.errors
    out = result.value(next(iter(prompt)))
    assert out["style_description"]["color_palette"] == ["#0A1628", "#FFFFFF", "#8B0000", "#C9A227"]
    assert out["style_description"]["photo"] == "editorial" and out["compositional_deconstruction"]["elements"] == ELEMENT
