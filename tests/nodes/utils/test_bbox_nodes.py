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
    cls = NODES["CreateBoundingBoxes"]
    return getattr(cls(), cls.FUNCTION)(**inputs)


DRAWN = [{"x": 0, "y": 0, "width": 200, "height": 100, "metadata": {"type": "obj", "text": "", "desc": "sky",
                                                                    "palette": ["#4E86C8", "#A9C9E8"]}},
         {"x": 50, "y": 60, "width": 100, "height": 20, "metadata": {"type": "text", "text": "HELLO", "desc": "title",
                                                                     "palette": ["#1E2A38"]}}]


def test_create_bounding_boxes_from_the_editor_gives_pixels_elements_and_a_preview() -> None:
    preview, boxes, elements = canvas(width=200, height=100, editor_state=DRAWN, last_incoming=[])
    assert preview.shape == (1, 100, 200, 3) and preview.std() > 0
    assert boxes == [{"x": 0.0, "y": 0.0, "width": 200.0, "height": 100.0}, {"x": 50.0, "y": 60.0, "width": 100.0, "height": 20.0}]
    assert elements[0] == {"type": "obj", "bbox": [0, 0, 1000, 1000], "description": "sky", "palette": ["#4E86C8", "#A9C9E8"]}
    assert elements[1]["bbox"] == [250, 600, 750, 800] and elements[1]["text"] == "HELLO"
    photo = torch.full((1, 50, 100, 3), 0.8)
    on_photo = canvas(width=200, height=100, editor_state=DRAWN, background=photo)[0]
    assert on_photo.shape == (1, 100, 200, 3) and on_photo.mean() > preview.mean()


def test_create_bounding_boxes_takes_a_new_upstream_value_and_keeps_canvas_edits() -> None:
    upstream = json.dumps([{"type": "obj", "bbox": [0, 0, 500, 500], "description": "cat", "palette": []}])
    _, boxes, elements = canvas(width=200, height=100, editor_state=DRAWN, bboxes=upstream, last_incoming=[])
    assert boxes == [{"x": 0, "y": 0, "width": 100, "height": 50}] and elements[0]["description"] == "cat"
    seen = canvas(width=200, height=100, editor_state=DRAWN, bboxes=upstream, last_incoming=json.loads(upstream))[1]
    assert len(seen) == 2  # the upstream value already initialised the canvas: the edits win
    pixel = canvas(width=200, height=100, editor_state=[], bboxes=[{"x": 1, "y": 2, "width": 3, "height": 4}])[1]
    assert pixel == [{"x": 1.0, "y": 2.0, "width": 3.0, "height": 4.0}]
    with pytest.raises(ValidationError, match="bboxes"):
        canvas(width=200, height=100, editor_state=[], bboxes="{not json")
    with pytest.raises(ValidationError, match="bbox"):
        canvas(width=200, height=100, editor_state=[], bboxes=[{"bbox": [1, 2]}])
