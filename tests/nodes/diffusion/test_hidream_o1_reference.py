"""HiDreamO1ReferenceImages: the images on both conditionings in socket order, its Autogrow
declaration as ComfyUI writes it, and the HiDream-O1 template's wiring of it through the Engine's
validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion import NODE_CLASS_MAPPINGS as NODES


def _cond(value: float) -> list:
    return [[torch.full((1, 2, 4), value), {"pooled_output": torch.zeros(1, 4)}]]


def test_images_join_both_sides_in_socket_order_after_existing_references():
    first, second, third = (torch.full((1, 8, 8, 3), v) for v in (0.1, 0.2, 0.3))
    positive = [[torch.zeros(1, 2, 4), {"reference_latents": [third]}]]
    node = NODES["HiDreamO1ReferenceImages"]
    pos, neg = node().execute(positive, _cond(1.0), **{"images.image_2": second, "images.image_1": first})
    assert [r is x for r, x in zip(pos[0][1]["reference_latents"], (third, first, second))] == [True] * 3
    assert [r is x for r, x in zip(neg[0][1]["reference_latents"], (first, second))] == [True] * 2
    assert positive[0][1]["reference_latents"] == [third]  # the input conditioning is left as it was
    assert torch.equal(neg[0][0], torch.ones(1, 2, 4)) and "pooled_output" in neg[0][1]


def test_bad_or_missing_images_are_named():
    node = NODES["HiDreamO1ReferenceImages"]
    with pytest.raises(ValidationError, match="images.image_1"):
        node().execute(_cond(0), _cond(0), **{"images.image_1": torch.zeros(8, 8)})
    with pytest.raises(ValidationError, match="at least one"):
        node().execute(_cond(0), _cond(0))


def test_declaration_is_comfyuis(image_engine):
    info = image_engine.object_info()["HiDreamO1ReferenceImages"]
    assert info["category"] == "conditioning/image" and info["display_name"] == "HiDream-O1 Reference Images"
    assert info["input_order"]["required"] == ["positive", "negative", "images"]
    kind, opts = info["input"]["required"]["images"]
    assert kind == "COMFY_AUTOGROW_V3" and opts["template"]["min"] == 1
    assert opts["template"]["names"] == [f"image_{i}" for i in range(1, 11)]
    assert opts["template"]["input"]["required"]["image"][0] == "IMAGE"
    assert info["output"] == ["CONDITIONING", "CONDITIONING"] and info["output_name"] == ["positive", "negative"]


def test_hidream_o1_template_converts_with_its_reference_images_wired(image_engine):
    from nodeloom.workflows.files import load_prompt

    templates = Path(__import__("comfyui_workflow_templates_json").__file__).parent / "templates"
    path = templates / "image_hidream_o1.json"
    if not path.exists():
        pytest.skip("the installed templates package has no image_hidream_o1 template")
    prompt = load_prompt(image_engine, str(path))  # raises naming any node type nodeloom does not know
    (refs,) = [n for n in prompt.values() if n["class_type"] == "HiDreamO1ReferenceImages"]
    assert {"positive", "negative", "images.image_1"} <= set(refs["inputs"])
