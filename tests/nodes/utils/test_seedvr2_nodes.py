"""SeedVR2Preprocess / SeedVR2PostProcessing: padding to the model's shape, cropping back, the
three colour corrections pulling a tinted decode back to its source, alpha and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from nodeloom.errors import ValidationError
from nodeloom.nodes.utils import NODE_CLASS_MAPPINGS as NODES
from nodeloom.ops.seedvr2 import adain_transfer, histogram_match, pad_to_4n1, wavelet_transfer
from tests.nodes.conftest import run_prompt


def call(class_type: str, **inputs):
    cls = NODES[class_type]
    return getattr(cls(), cls.FUNCTION)(**inputs)[0]


def _photo(h: int = 40, w: int = 48, frames: int = 1) -> torch.Tensor:
    img = torch.from_numpy(data.astronaut().astype(np.float32) / 255.0)[None]
    img = torch.nn.functional.interpolate(img.movedim(-1, 1), size=(h, w), mode="area").movedim(1, -1)
    return img.expand(frames, -1, -1, -1).clone()


def test_preprocess_pads_to_16_and_4n1_frames():
    frames = torch.rand(6, 30, 18, 4) * 1.4 - 0.2
    out = call("SeedVR2Preprocess", resized_images=frames)
    assert out.shape == (1, 9, 32, 32, 3)  # 6 frames → 9, 30x18 → 32x32, alpha dropped
    assert torch.equal(out[0, :6, :30, :18], frames[..., :3].clamp(0, 1))
    assert torch.equal(out[0, 6:, :30, :18], frames[-1:, ..., :3].clamp(0, 1).expand(3, -1, -1, -1))
    assert not out[0, :, 30:].any() and not out[0, :, :, 18:].any()  # black padding
    video = call("SeedVR2Preprocess", resized_images=torch.rand(2, 5, 16, 20, 3))
    assert video.shape == (2, 5, 16, 32, 3)
    assert call("SeedVR2Preprocess", resized_images=torch.rand(1, 16, 16, 3)).shape == (1, 1, 16, 16, 3)
    assert [pad_to_4n1(torch.zeros(1, t)).shape[1] for t in (1, 2, 4, 5, 6, 9, 10)] == [1, 5, 5, 5, 9, 9, 13]


def test_preprocess_refuses_bad_shapes():
    with pytest.raises(ValidationError, match="shorter edge"):
        call("SeedVR2Preprocess", resized_images=torch.rand(1, 1, 16, 3))
    with pytest.raises(ValidationError, match="resized_images"):
        call("SeedVR2Preprocess", resized_images=torch.rand(16, 16, 3))


def test_postprocess_crops_back_to_the_source_and_keeps_alpha():
    source = torch.cat([_photo(30, 18, 6), torch.full((6, 30, 18, 1), 0.25)], dim=-1)
    padded = call("SeedVR2Preprocess", resized_images=source)
    out = call("SeedVR2PostProcessing", images=padded, original_resized_images=source, color_correction_method="none")
    assert out.shape == (1, 6, 30, 18, 4)
    assert torch.equal(out[0, ..., :3], source[..., :3]) and torch.equal(out[..., 3], torch.full((1, 6, 30, 18), 0.25))
    # a decode handed over as frames comes back as frames; odd sizes are cut to even ones
    odd = _photo(31, 19, 2)
    flat = call("SeedVR2PostProcessing", images=torch.rand(5, 32, 32, 3), original_resized_images=odd,
                color_correction_method="none")
    assert flat.shape == (2, 30, 18, 3)


def test_postprocess_splits_a_folded_batch_back_into_videos():
    ref = torch.rand(2, 5, 16, 16, 3)
    decoded = torch.rand(1, 10, 16, 16, 3)
    out = call("SeedVR2PostProcessing", images=decoded, original_resized_images=ref, color_correction_method="none")
    assert out.shape == (2, 5, 16, 16, 3) and torch.equal(out[1], decoded[0, 5:])


@pytest.mark.parametrize("method", ["lab", "wavelet", "adain"])
def test_colour_correction_pulls_a_tinted_decode_back(method):
    source = _photo(48, 48)
    tinted = (source * torch.tensor([0.5, 0.9, 0.8]) + torch.tensor([0.4, 0.0, 0.0])).clamp(0, 1)
    fixed = call("SeedVR2PostProcessing", images=tinted, original_resized_images=source, color_correction_method=method)
    assert fixed.shape == source.shape
    before = (tinted.mean((1, 2)) - source.mean((1, 2))).abs().max()
    after = (fixed.mean((1, 2)) - source.mean((1, 2))).abs().max()
    assert before > 0.1 and after < before / 3
    assert fixed.min() >= 0 and fixed.max() <= 1


def test_colour_transfers_on_arrays():
    ref = torch.rand(1, 3, 32, 32) * 2 - 1
    # adain gives exactly the reference's per-channel mean and spread
    out = adain_transfer(ref * 0.3 + 0.2, ref)
    assert torch.allclose(out.mean((2, 3)), ref.mean((2, 3)), atol=1e-4)
    assert torch.allclose(out.std((2, 3)), ref.std((2, 3)), atol=1e-3)
    # wavelet keeps the content's detail over the reference's flat colour
    flat = torch.full((1, 3, 32, 32), 0.2)
    detail = torch.zeros(1, 3, 32, 32)
    detail[..., ::2, :] = 0.1
    mixed = wavelet_transfer(detail - 0.5, flat)
    assert abs(float(mixed.mean()) - 0.2) < 0.01 and float(mixed.std()) > 0.03  # flat colour + stripes
    # a histogram match gives the reference's values in the source's order
    src, refv = torch.tensor([3.0, 1.0, 2.0]), torch.tensor([10.0, 30.0, 20.0])
    assert histogram_match(src, refv).tolist() == [30.0, 10.0, 20.0]


def test_postprocess_refuses_bad_input():
    with pytest.raises(ValidationError, match="color_correction_method"):
        call("SeedVR2PostProcessing", images=torch.rand(1, 8, 8, 3), original_resized_images=torch.rand(1, 8, 8, 3),
             color_correction_method="histogram")
    with pytest.raises(ValidationError, match="images"):
        call("SeedVR2PostProcessing", images=torch.rand(8, 8, 3), original_resized_images=torch.rand(1, 8, 8, 3),
             color_correction_method="none")


def test_template_chain_pre_then_post_through_the_engine(image_engine):
    # utility_seedvr2_3b_int8_upscale_image: resized image → SeedVR2Preprocess → (model) → SeedVR2PostProcessing ["none"]
    source = _photo(24, 40)
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "img"}},
              "2": {"class_type": "SeedVR2Preprocess", "inputs": {"resized_images": ["1", 0]}},
              "3": {"class_type": "SeedVR2PostProcessing", "inputs": {"images": ["2", 0], "original_resized_images": ["1", 0],
                                                                      "color_correction_method": "none"}}}
    result = run_prompt(image_engine, prompt, {"img": source}, sinks=[["2", 0], ["3", 0]])
    assert result.status == "success", result.errors
    assert result.value("2").shape == (1, 1, 32, 48, 3)
    assert torch.equal(result.value("3")[0], source)  # 5-D in (the padded video), 5-D out
    info = image_engine.object_info("SeedVR2PostProcessing")["SeedVR2PostProcessing"]
    assert info["input"]["required"]["color_correction_method"][0] == ["lab", "wavelet", "adain", "none"]
    assert info["display_name"] == "Post-Process SeedVR2 Output" and info["output_name"] == ["images"]
