"""Latent cuts, list nodes, image blend and resize-and-pad."""

from __future__ import annotations

import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.nodes.utils import NODE_CLASS_MAPPINGS as NODES
from tests.nodes.conftest import run_prompt


def call(class_type: str, **inputs):
    cls = NODES[class_type]
    return getattr(cls(), cls.FUNCTION)(**inputs)


def _video_latent() -> dict:
    return {"samples": torch.arange(2 * 4 * 6 * 3 * 5, dtype=torch.float32).reshape(2, 4, 6, 3, 5), "batch_index": [0, 1]}


def test_latent_cut_clips_index_and_amount() -> None:
    latent = _video_latent()
    (out,) = call("LatentCut", samples=latent, dim="t", index=1, amount=16384)
    assert torch.equal(out["samples"], latent["samples"][:, :, 1:]) and out["batch_index"] == [0, 1]
    (out,) = call("LatentCut", samples=latent, dim="x", index=-2, amount=5)
    assert torch.equal(out["samples"], latent["samples"][..., 3:])
    (out,) = call("LatentCut", samples=latent, dim="y", index=99, amount=2)
    assert torch.equal(out["samples"], latent["samples"][:, :, :, 2:])
    assert latent["samples"].shape == (2, 4, 6, 3, 5)  # the input is left alone


def test_latent_cut_to_batch_stacks_slices_and_drops_the_remainder() -> None:
    latent = _video_latent()
    (out,) = call("LatentCutToBatch", samples=latent, dim="t", slice_size=4)
    assert torch.equal(out["samples"], latent["samples"][:, :, :4]) and "batch_index" in out
    (out,) = call("LatentCutToBatch", samples=latent, dim="x", slice_size=2)
    s = latent["samples"]
    assert torch.equal(out["samples"], torch.cat([s[..., 0:2], s[..., 2:4]])) and "batch_index" not in out
    image_latent = {"samples": torch.zeros(1, 4, 8, 8)}
    assert call("LatentCutToBatch", samples=image_latent, dim="t", slice_size=1)[0] is image_latent


def test_trim_video_latent() -> None:
    latent = _video_latent()
    (out,) = call("TrimVideoLatent", samples=latent, trim_amount=2)
    assert out["samples"].shape == (2, 4, 4, 3, 5)
    with pytest.raises(ValidationError, match="video latent"):
        call("TrimVideoLatent", samples={"samples": torch.zeros(1, 4, 8, 8)}, trim_amount=1)


def test_create_list_and_get_item() -> None:
    assert call("CreateList", **{"inputs.input0": ["a", "b"], "inputs.input1": ["c"]}) == (["a", "b", "c"],)
    assert call("GetItemFromList", list=["a", "b", "c"], index=[-1]) == ("c",)
    with pytest.raises(ValidationError, match="outside the list of 3"):
        call("GetItemFromList", list=["a", "b", "c"], index=[3])


def test_lists_through_the_engine(image_engine) -> None:
    prompt = {
        "a": {"class_type": "PrimitiveString", "inputs": {"value": "first"}},
        "b": {"class_type": "PrimitiveString", "inputs": {"value": "second"}},
        "l": {"class_type": "CreateList", "inputs": {"inputs.input0": ["a", 0], "inputs.input1": ["b", 0]}},
        "g": {"class_type": "GetItemFromList", "inputs": {"list": ["l", 0], "index": 1}},
    }
    result = run_prompt(image_engine, prompt, sinks=[["g", 0], ["l", 0]])
    assert result.ok, result.errors
    assert result.value("g") == "second" and result.value("l") == ["first", "second"]


@pytest.mark.parametrize(("mode", "expect"), [
    ("normal", 0.8), ("multiply", 0.16), ("screen", 0.84), ("overlay", 0.32), ("difference", 0.0),
])
def test_image_blend_modes(mode: str, expect: float) -> None:
    base, top = torch.full((1, 4, 4, 3), 0.2), torch.full((1, 2, 2, 3), 0.8)
    (out,) = call("ImageBlend", image1=base, image2=top, blend_factor=1.0, blend_mode=mode)
    assert out.shape == base.shape and torch.allclose(out, torch.full_like(base, expect), atol=1e-5)


def test_image_blend_mixes_and_handles_alpha() -> None:
    base, top = torch.full((1, 4, 4, 4), 0.2), torch.full((1, 4, 4, 3), 1.0)
    (out,) = call("ImageBlend", image1=base, image2=top, blend_factor=0.5, blend_mode="normal")
    assert out.shape == (1, 4, 4, 4) and torch.allclose(out[..., :3], torch.tensor(0.6)) and torch.allclose(out[..., 3], torch.tensor(0.6))
    with pytest.raises(ValidationError, match="blend_mode"):
        call("ImageBlend", image1=base, image2=top, blend_factor=0.5, blend_mode="hard_light")


def test_resize_and_pad_centres_the_image() -> None:
    img = torch.full((1, 10, 20, 3), 0.5)
    (out,) = call("ResizeAndPadImage", image=img, target_width=40, target_height=40, padding_color="black",
                  interpolation="area")
    assert out.shape == (1, 40, 40, 3)
    assert out[0, 9, 20].sum() == 0 and torch.allclose(out[0, 10, 0], torch.tensor(0.5)) and out[0, 30, 20].sum() == 0


def test_image_blur_keeps_flat_areas_and_spreads_edges() -> None:
    img = torch.zeros(1, 9, 9, 3)
    img[0, 4, 4] = 1.0
    (out,) = call("ImageBlur", image=img, blur_radius=2, sigma=1.0)
    assert out.shape == img.shape and torch.isclose(out.sum(), torch.tensor(3.0), atol=1e-4)
    assert out[0, 4, 4, 0] < 1.0 and out[0, 4, 3, 0] > 0 and out[0, 4, 3, 0] == out[0, 3, 4, 0]
    flat = torch.full((1, 4, 4, 3), 0.25)
    assert torch.allclose(call("ImageBlur", image=flat, blur_radius=5, sigma=2.0)[0], flat)


def test_latent_concat_joins_along_a_dimension_in_either_order() -> None:
    a = {"samples": torch.zeros(2, 4, 3, 5), "batch_index": [0, 1]}
    b = {"samples": torch.ones(1, 4, 3, 2)}
    (out,) = call("LatentConcat", samples1=a, samples2=b, dim="x")
    assert out["samples"].shape == (2, 4, 3, 7) and out["samples"][..., 5:].eq(1).all() and out["batch_index"] == [0, 1]
    (out,) = call("LatentConcat", samples1=a, samples2=b, dim="-x")
    assert out["samples"][..., :2].eq(1).all() and out["samples"][..., 2:].eq(0).all()
    video = _video_latent()
    (out,) = call("LatentConcat", samples1=video, samples2=video, dim="-t")
    assert torch.equal(out["samples"], torch.cat([video["samples"]] * 2, dim=2))
    with pytest.raises(ValidationError, match="samples2"):
        call("LatentConcat", samples1=a, samples2=b, dim="y")
