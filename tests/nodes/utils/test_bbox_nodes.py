"""DrawBBoxes: outlines, COCO labels and the blank canvas."""

from __future__ import annotations

import json

import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.nodes.utils import NODE_CLASS_MAPPINGS as NODES
from nodeloom.nodes.utils.bboxes import COCO_CLASSES


def draw(**inputs) -> torch.Tensor:
    cls = NODES["DrawBBoxes"]
    return getattr(cls(), cls.FUNCTION)(**inputs)[0]


BOX = {"x": 10, "y": 30, "width": 20, "height": 15}


def test_draw_bboxes_outlines_the_box_and_leaves_the_rest() -> None:
    image = torch.full((1, 64, 64, 3), 0.25)
    out = draw(bboxes=[BOX], image=image)
    assert out.shape == image.shape
    assert (out[0, 30, 20] - 0.25).abs().max() > 0.2 and (out[0, 37, 10] - 0.25).abs().max() > 0.2  # top and left edges
    assert torch.allclose(out[0, 37, 20], image[0, 37, 20], atol=1 / 255)  # inside untouched
    assert torch.allclose(out[0, 5, 50], image[0, 5, 50], atol=1 / 255)
    assert torch.equal(image, torch.full((1, 64, 64, 3), 0.25))


def test_draw_bboxes_labels_only_coco_classes_with_their_score() -> None:
    image = torch.zeros(1, 96, 96, 3)
    plain = draw(bboxes=[BOX], image=image)
    unknown = draw(bboxes=[{**BOX, "label": "spaceship", "score": 0.9}], image=image)
    labelled = draw(bboxes=[{**BOX, "label": "dog", "score": 0.9}], image=image)
    assert torch.equal(plain, unknown)
    assert (labelled[0, :30] > 0).sum() > (plain[0, :30] > 0).sum()  # a filled label above the box
    assert "traffic light" in COCO_CLASSES and len(COCO_CLASSES) == 80


def test_draw_bboxes_per_image_sets_and_a_blank_canvas() -> None:
    batch = torch.zeros(2, 64, 64, 3)
    out = draw(bboxes=[[BOX], []], image=batch)
    assert out[0].sum() > 0 and out[1].sum() == 0
    shared = draw(bboxes=BOX, image=batch)
    assert torch.equal(shared[0], shared[1]) and shared[0].sum() > 0
    canvas = draw(bboxes=[{"x": 600, "y": 10, "width": 200, "height": 50}])
    assert canvas.shape == (1, 640, 800, 3)
    assert draw(bboxes=[[BOX], [BOX]]).shape == (2, 640, 640, 3)
    with pytest.raises(ValidationError, match="bboxes"):
        draw(bboxes=[{"x": 1}], image=batch)
    with pytest.raises(ValidationError, match="bboxes"):
        draw(bboxes="boxes", image=batch)


def canvas(**inputs):
    """(preview, pixel boxes, elements, ui) of one CreateBoundingBoxes run."""
    cls = NODES["CreateBoundingBoxes"]
    out = getattr(cls(), cls.FUNCTION)(**inputs)
    return (*out["result"], out["ui"])


DRAWN = [{"x": 0, "y": 0, "width": 200, "height": 100, "metadata": {"type": "obj", "text": "", "desc": "sky",
                                                                    "palette": ["#4e86c8", "#A9C9E8"]}},
         {"x": 50, "y": 60, "width": 100, "height": 20, "metadata": {"type": "text", "text": "HELLO", "desc": "title",
                                                                     "palette": ["#1E2A38", ""]}}]


def test_create_bounding_boxes_from_the_editor_gives_pixels_elements_and_a_preview() -> None:
    preview, boxes, elements, ui = canvas(width=200, height=100, editor_state=DRAWN, last_incoming=[])
    assert preview.shape == (1, 100, 200, 3) and preview.std() > 0
    assert boxes == [[{"x": 0, "y": 0, "width": 200, "height": 100}, {"x": 50, "y": 60, "width": 100, "height": 20}]]
    assert elements == [
        {"type": "obj", "bbox": [0, 0, 1000, 1000], "desc": "sky", "color_palette": ["#4E86C8", "#A9C9E8"]},
        {"type": "text", "bbox": [600, 250, 800, 750], "text": "HELLO", "desc": "title", "color_palette": ["#1E2A38"]}]
    assert ui == {"dims": [200, 100]}
    # the empty canvas (dark grey) is dimmer than the 25 %-bright photo behind the boxes
    assert torch.allclose(preview[0, 50, 100], torch.full((3,), 32 / 255), atol=1 / 255)
    photo = torch.full((1, 50, 100, 3), 0.8)
    on_photo = canvas(width=200, height=100, editor_state=DRAWN, background=photo)[0]
    assert on_photo.shape == (1, 50, 100, 3)  # the preview takes the background's size
    assert torch.allclose(on_photo[0, 25, 50], torch.full((3,), 0.2), atol=2 / 255)


def test_create_bounding_boxes_elements_keep_comfyui_keys_and_grid_rules() -> None:
    drawn = [{"x": 100, "y": 50, "width": -50, "height": -20, "metadata": {"type": "obj", "desc": "flipped"}},
             {"x": -20, "y": 90, "width": 260, "height": 30, "metadata": {"type": "label", "text": "x", "desc": "",
                                                                        "palette": [f"#00000{i}" for i in range(7)]}},
             {"x": 1, "y": 1, "width": 2, "height": 2}]
    _, boxes, elements, _ = canvas(width=200, height=100, editor_state=drawn)
    assert boxes == [[{"x": 50, "y": 30, "width": 50, "height": 20}, {"x": -20, "y": 90, "width": 260, "height": 30},
                      {"x": 1, "y": 1, "width": 2, "height": 2}]]
    assert elements == [
        {"type": "obj", "bbox": [300, 250, 500, 500], "desc": "flipped"},
        {"type": "obj", "bbox": [900, 0, 1000, 1000], "desc": "",  # clamped; unknown types are objects
         "color_palette": ["#000000", "#000001", "#000002", "#000003", "#000004"]},
        {"type": "obj", "bbox": [10, 5, 30, 15], "desc": ""}]
    assert canvas(width=64, height=64, editor_state=[])[1:3] == ([], [])
    big = canvas(width=2048, height=1024, editor_state=[])[0]
    assert big.shape == (1, 512, 1024, 3)  # the long edge is capped at 1024


def test_create_bounding_boxes_takes_a_new_upstream_value_and_keeps_canvas_edits() -> None:
    upstream = json.dumps([{"type": "obj", "bbox": [0, 0, 500, 500], "desc": "cat"},
                           {"type": "text", "bbox": [600, 500, 800, 1000], "text": "MEOW", "desc": "caption",
                            "color_palette": ["#ff0000"]}])
    _, boxes, elements, ui = canvas(width=200, height=100, editor_state=DRAWN, bboxes=upstream, last_incoming=[])
    assert boxes == [[{"x": 0, "y": 0, "width": 100, "height": 50}, {"x": 100, "y": 60, "width": 100, "height": 20}]]
    assert elements == [{"type": "obj", "bbox": [0, 0, 500, 500], "desc": "cat"},
                        {"type": "text", "bbox": [600, 500, 800, 1000], "text": "MEOW", "desc": "caption",
                         "color_palette": ["#FF0000"]}]
    assert ui["dims"] == [200, 100] and ui["input_bboxes"] == [
        {"x": 0, "y": 0, "width": 100, "height": 50, "metadata": {"type": "obj", "text": "", "desc": "cat", "palette": []}},
        {"x": 100, "y": 60, "width": 100, "height": 20,
         "metadata": {"type": "text", "text": "MEOW", "desc": "caption", "palette": ["#ff0000"]}}]
    # the canvas already took this value (it keeps it in last_incoming): its own boxes win
    kept = canvas(width=200, height=100, editor_state=DRAWN, bboxes=upstream, last_incoming=ui["input_bboxes"])
    assert len(kept[1][0]) == 2 and kept[2][0]["desc"] == "sky" and kept[3]["input_bboxes"] == ui["input_bboxes"]
    # a canvas element round-trips through the bboxes input
    assert canvas(width=200, height=100, bboxes=elements)[2] == elements


def test_create_bounding_boxes_reads_every_upstream_form() -> None:
    run = lambda value: canvas(width=1000, height=500, editor_state=[], bboxes=value)
    element = {"type": "obj", "bbox": [100, 200, 300, 600], "desc": "d", "text": "ignored"}
    assert run(element)[1] == [[{"x": 200, "y": 50, "width": 400, "height": 100}]]
    assert run({**element, "bbox": [300, 600, 100, 200]})[1] == run(element)[1]  # min/max put in order
    assert run(element)[3]["input_bboxes"][0]["metadata"] == {"type": "obj", "text": "", "desc": "d", "palette": []}
    pixel = {"x": 1, "y": 2, "width": 3, "height": 4}
    assert run(pixel)[1] == [[pixel]] and run([pixel])[1] == [[pixel]]
    assert run([[pixel], [{"x": 9, "y": 9, "width": 9, "height": 9}]])[1] == [[pixel]]  # the first frame
    assert run(json.dumps([pixel]))[1] == [[pixel]]
    for nothing in (None, "", "  ", []):
        assert run(nothing)[1] == [] and "input_bboxes" not in run(nothing)[3]


def test_create_bounding_boxes_refuses_bad_input_naming_it() -> None:
    for bad in ("{not json", 42, [{"bbox": [1, 2]}], [{"x": 1}], ["box"], {"y": 3}):
        with pytest.raises(ValidationError, match="bboxes"):
            canvas(width=200, height=100, editor_state=[], bboxes=bad)
    with pytest.raises(ValidationError, match="bbox.*four numbers"):
        canvas(width=200, height=100, editor_state=[], bboxes=[{"bbox": ["a", 1, 2, 3]}])
    with pytest.raises(ValidationError, match="bboxes.*'width'"):
        canvas(width=200, height=100, editor_state=[], bboxes=[{"x": 1, "y": 2, "width": "wide", "height": 3}])
    with pytest.raises(ValidationError, match="editor_state"):
        canvas(width=200, height=100, editor_state=[{"x": "left", "y": 0, "width": 1, "height": 1}])


def test_create_bounding_boxes_declaration(image_engine) -> None:
    info = image_engine.object_info("CreateBoundingBoxes")["CreateBoundingBoxes"]
    assert info["display_name"] == "Create Bounding Boxes" and info["category"] == "utilities"
    assert info["output_node"] is True and info.get("experimental") is True
    assert info["input_order"] == {"required": ["width", "height", "editor_state"],
                                   "optional": ["background", "bboxes", "last_incoming"]}
    req, opt = info["input"]["required"], info["input"]["optional"]
    for side in ("width", "height"):
        assert req[side][0] == "INT" and {k: req[side][1][k] for k in ("default", "min", "max", "step")} == {
            "default": 1024, "min": 64, "max": 16384, "step": 16}
    assert req["editor_state"][0] == "BOUNDING_BOXES" and req["editor_state"][1]["socketless"] is False
    assert opt["background"][0] == "IMAGE" and opt["bboxes"][0] == "BOUNDING_BOX,ARRAY,STRING"
    assert opt["last_incoming"][0] == "BOUNDING_BOXES"
    assert info["output"] == ["IMAGE", "BOUNDING_BOX", "ARRAY"]
    assert info["output_name"] == ["preview", "bboxes", "elements"]
