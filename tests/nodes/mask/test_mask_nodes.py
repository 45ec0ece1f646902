"""Mask pack: ComfyUI names/inputs/defaults, behaviour of every node, a run through the engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nodeloom.nodes.mask as pack
from nodeloom.errors import ValidationError
from tests.nodes.conftest import run_prompt

N = pack.NODE_CLASS_MAPPINGS

# ComfyUI's inputs (name -> (type, default)) for the nodes we mirror, read from its nodes_mask.py.
COMFY_INPUTS = {
    "ImageToMask": {"image": ("IMAGE", None), "channel": (["red", "green", "blue", "alpha"], None)},
    "MaskToImage": {"mask": ("MASK", None)},
    "ImageColorToMask": {"image": ("IMAGE", None), "color": ("INT", 0)},
    "SolidMask": {"value": ("FLOAT", 1.0), "width": ("INT", 512), "height": ("INT", 512)},
    "InvertMask": {"mask": ("MASK", None)},
    "CropMask": {"mask": ("MASK", None), "x": ("INT", 0), "y": ("INT", 0), "width": ("INT", 512), "height": ("INT", 512)},
    "MaskComposite": {"destination": ("MASK", None), "source": ("MASK", None), "x": ("INT", 0), "y": ("INT", 0),
                      "operation": (["multiply", "add", "subtract", "and", "or", "xor"], None)},
    "FeatherMask": {"mask": ("MASK", None), "left": ("INT", 0), "top": ("INT", 0), "right": ("INT", 0), "bottom": ("INT", 0)},
    "GrowMask": {"mask": ("MASK", None), "expand": ("INT", 0), "tapered_corners": ("BOOLEAN", True)},
    "ThresholdMask": {"mask": ("MASK", None), "value": ("FLOAT", 0.5)},
    "ImageCompositeMasked": {"destination": ("IMAGE", None), "source": ("IMAGE", None), "x": ("INT", 0),
                             "y": ("INT", 0), "resize_source": ("BOOLEAN", False), "mask": ("MASK", None)},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(COMFY_INPUTS))
def test_comfy_nodes_keep_names_inputs_and_defaults(name):
    spec = N[name].INPUT_TYPES()
    inputs = {**spec["required"], **spec.get("optional", {})}
    assert list(inputs) == list(COMFY_INPUTS[name])
    for key, (typ, default) in COMFY_INPUTS[name].items():
        assert inputs[key][0] == typ
        if default is not None:
            assert inputs[key][1]["default"] == default
    assert N[name].RETURN_TYPES == (("IMAGE",) if name in ("MaskToImage", "ImageCompositeMasked") else ("MASK",))
    assert "optional" in spec if name == "ImageCompositeMasked" else True


def _run(name, **kw):
    return N[name].execute(**kw)


def test_channel_and_solid_and_invert_threshold():
    img = torch.rand(2, 4, 5, 4)
    torch.testing.assert_close(_run("ImageToMask", image=img, channel="green")[0], img[..., 1])
    with pytest.raises(ValidationError, match="alpha"):
        _run("ImageToMask", image=img[..., :3], channel="alpha")
    m = _run("SolidMask", value=0.25, width=5, height=3)[0]
    assert m.shape == (1, 3, 5) and float(m.max()) == 0.25
    assert _run("MaskToImage", mask=m)[0].shape == (1, 3, 5, 3)
    assert float(_run("InvertMask", mask=m)[0].min()) == 0.75
    assert _run("ThresholdMask", mask=torch.tensor([[[0.2, 0.6]]]), value=0.5)[0].tolist() == [[[0.0, 1.0]]]


def test_image_color_to_mask_exact_8bit_match():
    img = torch.zeros(1, 2, 2, 3)
    img[0, 0, 1] = torch.tensor([1.0, 128 / 255, 0.0])
    assert _run("ImageColorToMask", image=img, color=0xFF8000)[0].tolist() == [[[0.0, 1.0], [0.0, 0.0]]]


def test_crop_and_composite_follow_comfy_semantics():
    m = torch.arange(36, dtype=torch.float32).reshape(1, 6, 6) / 36
    torch.testing.assert_close(_run("CropMask", mask=m, x=2, y=1, width=3, height=10)[0], m[:, 1:6, 2:5])
    dst = torch.full((1, 4, 4), 0.5)
    src = torch.ones(1, 3, 3)
    add = _run("MaskComposite", destination=dst, source=src, x=2, y=2, operation="add")[0]
    assert add[0, 3, 3] == 1.0 and add[0, 0, 0] == 0.5 and add[0, 2, 1] == 0.5
    sub = _run("MaskComposite", destination=dst, source=src, x=0, y=0, operation="subtract")[0]
    assert sub[0, 0, 0] == 0.0 and sub[0, 3, 3] == 0.5
    xor = _run("MaskComposite", destination=torch.ones(1, 2, 2), source=torch.ones(1, 2, 2), x=0, y=0, operation="xor")[0]
    assert xor.sum() == 0
    assert dst[0, 3, 3] == 0.5  # inputs untouched


def test_image_composite_masked_pastes_with_offset_mask_and_resize():
    dst = torch.zeros(1, 8, 8, 3)
    src = torch.ones(1, 4, 4, 3)
    out = _run("ImageCompositeMasked", destination=dst, source=src, x=6, y=2, resize_source=False)[0]
    assert out[0, 2:6, 6:8].eq(1).all() and out[0, :2].eq(0).all() and out.shape == dst.shape
    mask = torch.zeros(1, 4, 4)
    mask[0, :, :2] = 1
    half = _run("ImageCompositeMasked", destination=dst, source=src, x=0, y=0, resize_source=False, mask=mask)[0]
    assert half[0, 0, 0, 0] == 1 and half[0, 0, 3, 0] == 0
    full = _run("ImageCompositeMasked", destination=dst, source=src, x=0, y=0, resize_source=True)[0]
    assert full.eq(1).all()
    rgba = _run("ImageCompositeMasked", destination=torch.zeros(1, 8, 8, 4), source=src, x=0, y=0, resize_source=False)[0]
    assert rgba.shape[-1] == 4 and rgba[0, 0, 0, 3] == 1


def test_our_region_nodes():
    img = torch.zeros(1, 16, 16, 3)
    img[0, 4:8, 4:8] = torch.tensor([1.0, 0.0, 0.0])
    m = _run("ColorRangeMask", image=img, color="red", tolerance=5.0, space="delta_e", softness=0.0)[0]
    assert m.sum() == 16
    box, x, y, w, h = _run("MaskBoundingBox", mask=m, padding=1, threshold=0.5)
    assert (x, y, w, h) == (3, 3, 6, 6) and box.sum() == 36
    crop, mcrop, *xywh = _run("CropByMask", image=img, mask=m, padding=0, threshold=0.5)
    assert crop.shape == (1, 4, 4, 3) and xywh == [4, 4, 4, 4] and mcrop.eq(1).all()
    both = _run("MaskLogic", a=m, b=box, operation="subtract", binarize=True, threshold=0.5)[0]
    assert both.sum() == 0
    speck = m.clone()
    speck[0, 12, 12] = 1
    assert _run("MaskRemoveSmallObjects", mask=speck, min_size=4, threshold=0.5, connectivity="8")[0].sum() == 16
    ring = box.clone()
    ring[0, 5:7, 5:7] = 0
    assert _run("MaskFillHoles", mask=ring, max_hole_size=0, threshold=0.5)[0].sum() == 36
    roi = _run("ROIMask", width=16, height=16, x=4, y=4, roi_width=4, roi_height=4, shape="rectangle", feather=0)[0]
    torch.testing.assert_close(roi, m)


def test_apply_composite_and_replace_colour_nodes():
    img = torch.rand(1, 8, 8, 3)
    m = torch.zeros(1, 8, 8)
    m[0, :4] = 1
    bg = _run("ApplyMask", image=img, mask=m, mode="background", background="#ffffff")[0]
    assert bg[0, 6].eq(1).all() and torch.equal(bg[0, :4], img[0, :4])
    rgba = _run("ApplyMask", image=img, mask=m, mode="alpha", background="#000")[0]
    assert rgba.shape[-1] == 4 and torch.equal(rgba[..., 3], m)
    comp = _run("CompositeByMask", destination=torch.zeros_like(img), source=img, mask=m)[0]
    assert torch.equal(comp[0, :4], img[0, :4]) and comp[0, 4:].eq(0).all()
    painted = _run("ReplaceColorUnderMask", image=img, mask=m, color="blue", strength=1.0)[0]
    assert painted[0, 0, 0].tolist() == [0.0, 0.0, 1.0] and torch.equal(painted[0, 5], img[0, 5])
    with pytest.raises(ValidationError, match="`color`"):
        _run("ReplaceColorUnderMask", image=img, mask=m, color="not-a-colour", strength=1.0)


def test_mask_chain_through_the_engine(image_engine):
    prompt = {
        "1": {"class_type": "ROIMask", "inputs": {"width": 16, "height": 16, "x": 2, "y": 2, "roi_width": 12,
                                                   "roi_height": 12, "shape": "rectangle", "feather": 0}},
        "2": {"class_type": "GrowMask", "inputs": {"mask": ["1", 0], "expand": -2, "tapered_corners": False}},
        "3": {"class_type": "MaskToImage", "inputs": {"mask": ["2", 0]}},
        "4": {"class_type": "ImageToMask", "inputs": {"image": ["3", 0], "channel": "red"}},
        "5": {"class_type": "MaskFillHoles", "inputs": {"mask": ["4", 0], "max_hole_size": 0, "threshold": 0.5}},
    }
    result = run_prompt(image_engine, prompt, sinks=[["5", 0]])
    assert result.status == "success", result.errors
    out = result.value("5")
    assert out.shape == (1, 16, 16) and float(out.sum()) == 64.0
    np.testing.assert_array_equal(out[0, 4:12, 4:12].numpy(), 1.0)
