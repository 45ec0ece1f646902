"""DrawBBoxes: outlines, COCO labels and the blank canvas."""

from __future__ import annotations

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
