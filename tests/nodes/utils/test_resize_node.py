"""Resize Image/Mask: every resize type, masks, and its dynamic-combo widgets in UI workflows."""

from __future__ import annotations

import pytest
import torch

from nodeloom.core.workflow_ui import to_api
from nodeloom.errors import ValidationError
from nodeloom.nodes.utils import NODE_CLASS_MAPPINGS as NODES
from tests.nodes.conftest import run_prompt

RESIZE = NODES["ResizeImageMaskNode"]


def resize(img: torch.Tensor, kind: str, method: str = "area", **opts) -> torch.Tensor:
    return RESIZE().execute(input=img, resize_type=kind, scale_method=method,
                            **{f"resize_type.{k}": v for k, v in opts.items()})[0]


@pytest.mark.parametrize(("kind", "opts", "size"), [
    ("scale by multiplier", {"multiplier": 1.5}, (30, 60)),
    ("scale dimensions", {"width": 32, "height": 32, "crop": "center"}, (32, 32)),
    ("scale dimensions", {"width": 0, "height": 10, "crop": "disabled"}, (10, 20)),
    ("scale longer dimension", {"longer_size": 80}, (40, 80)),
    ("scale shorter dimension", {"shorter_size": 10}, (10, 20)),
    ("scale width", {"width": 20}, (10, 20)),
    ("scale height", {"height": 40}, (40, 80)),
    ("scale total pixels", {"megapixels": 0.0078125}, (64, 128)),
    ("scale to multiple", {"multiple": 16}, (16, 48)),
])
def test_resize_types(kind: str, opts: dict, size: tuple[int, int]) -> None:
    img = torch.rand(2, 20, 40, 3)
    assert tuple(resize(img, kind, **opts).shape) == (2, *size, 3)


def test_resize_matches_another_image_and_keeps_masks_masks() -> None:
    mask = torch.rand(1, 20, 40)
    out = resize(mask, "match size", "bilinear", match=torch.zeros(1, 12, 16, 3), crop="center")
    assert out.shape == (1, 12, 16)
    with pytest.raises(ValidationError, match="resize_type.match"):
        resize(mask, "match size")
    with pytest.raises(ValidationError, match="resize_type"):
        resize(mask, "scale sideways")


def test_template_widgets_convert_through_the_dynamic_combo(image_engine) -> None:
    ui = {"last_node_id": 3, "last_link_id": 2, "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]],
          "nodes": [
              {"id": 1, "type": "EmptyImage", "mode": 0, "inputs": [], "widgets_values": [64, 32, 1, 0],
               "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}]},
              {"id": 2, "type": "ResizeImageMaskNode", "mode": 0, "widgets_values": ["scale dimensions", 24, 0, "center", "lanczos"],
               "inputs": [{"name": "input", "type": "IMAGE,MASK", "link": 1}],
               "outputs": [{"name": "resized", "type": "IMAGE", "links": [2]}]},
              {"id": 3, "type": "PreviewImage", "mode": 0, "widgets_values": [],
               "inputs": [{"name": "images", "type": "IMAGE", "link": 2}], "outputs": []},
          ]}
    prompt = to_api(ui, lambda t: image_engine.registry.get(t).INPUT_TYPES() if image_engine.registry.get(t) else None)
    assert prompt["2"]["inputs"] == {"resize_type": "scale dimensions", "resize_type.width": 24, "resize_type.height": 0,
                                     "resize_type.crop": "center", "scale_method": "lanczos", "input": ["1", 0]}
    ui["nodes"][1]["widgets_values"] = ["scale longer dimension", 16, "area"]
    prompt = to_api(ui, lambda t: image_engine.registry.get(t).INPUT_TYPES() if image_engine.registry.get(t) else None)
    assert prompt["2"]["inputs"]["resize_type.longer_size"] == 16 and prompt["2"]["inputs"]["scale_method"] == "area"
    result = run_prompt(image_engine, prompt, sinks=[["2", 0]])
    assert result.ok, result.errors
    assert result.value("2").shape == (1, 8, 16, 3)
