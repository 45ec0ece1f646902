"""Resize, crop and outpaint padding."""

from __future__ import annotations

import pytest
import torch

from nodeloom.ops import resample


@pytest.mark.parametrize("method", resample.UPSCALE_METHODS)
def test_every_method_reaches_the_target_size(method: str) -> None:
    image = torch.rand(2, 6, 10, 3, generator=torch.Generator().manual_seed(0))
    out = resample.upscale_image(image, 7, 5, method, "disabled")
    assert out.shape == (2, 5, 7, 3)
    if method != "bicubic":  # bicubic overshoots slightly, as in ComfyUI (no clamping)
        assert 0.0 <= out.min() and out.max() <= 1.0 + 1e-5
    assert torch.isfinite(out).all()


def test_zero_side_keeps_aspect_and_center_crop() -> None:
    image = torch.zeros(1, 10, 20, 3)
    assert resample.upscale_image(image, 0, 5).shape == (1, 5, 10, 3)
    assert resample.upscale_image(image, 0, 0) is image
    assert resample.center_crop_box(20, 10, 10, 10) == (5, 0, 10, 10)
    image[:, :, 5:15] = 1.0  # only the centre square is white
    out = resample.upscale_image(image, 4, 4, "nearest-exact", "center")
    assert torch.all(out == 1.0)


def test_upscale_rejects_bad_arguments() -> None:
    samples = torch.zeros(1, 3, 4, 4)
    with pytest.raises(ValueError, match="upscale_method"):
        resample.upscale(samples, 2, 2, "magic")
    with pytest.raises(ValueError, match="crop"):
        resample.upscale(samples, 2, 2, "bilinear", "left")
    with pytest.raises(ValueError, match="at least 1x1"):
        resample.upscale(samples, 0, 2)


def test_video_shaped_samples_fold_extra_axes() -> None:
    samples = torch.rand(1, 4, 3, 8, 8)
    assert resample.upscale(samples, 4, 4, "area").shape == (1, 4, 3, 4, 4)


def test_crop_clamps_origin() -> None:
    image = torch.arange(5 * 6, dtype=torch.float32).reshape(1, 5, 6, 1)
    assert resample.crop_image(image, 3, 2, 1, 1).shape == (1, 2, 3, 1)
    assert resample.crop_image(image, 4, 4, 10, 10).shape == (1, 1, 1, 1)


def test_pad_for_outpaint_mask_feathers_into_the_image() -> None:
    image = torch.ones(1, 20, 20, 3)
    padded, mask = resample.pad_for_outpaint(image, 8, 0, 0, 0, 4)
    assert padded.shape == (1, 20, 28, 3) and mask.shape == (1, 20, 28)
    assert torch.all(padded[:, :, :8] == 0.5) and torch.all(padded[:, :, 8:] == 1.0)
    assert torch.all(mask[0, :, :8] == 1.0)
    assert mask[0, 10, 8] == pytest.approx(1.0) and mask[0, 10, 9] == pytest.approx(((4 - 1) / 4) ** 2)
    assert mask[0, 10, 12] == 0.0 and mask[0, 10, 27] == 0.0
    _, no_feather = resample.pad_for_outpaint(image, 0, 4, 0, 0, 0)
    assert no_feather[0, 4:].sum() == 0 and torch.all(no_feather[0, :4] == 1)


def test_bislerp_is_spherical_not_bilinear():
    pair = torch.zeros(1, 2, 1, 2)
    pair[0, 0, 0, 0] = pair[0, 1, 0, 1] = 1.0  # orthogonal unit channel vectors
    up = resample.upscale(pair, 4, 1, "bislerp")
    assert torch.equal(up, resample.bislerp(pair, 4, 1))
    assert torch.allclose(up.norm(dim=1), torch.ones(1, 1, 4), atol=1e-6)  # stays on the unit circle
    assert not torch.allclose(up, resample.upscale(pair, 4, 1, "bilinear"))
    from nodeloom.compat.comfy import utils as comfy_utils

    video = torch.randn(1, 2, 3, 4, 4)  # [B,C,T,H,W]: frames resized one by one
    assert torch.allclose(comfy_utils.common_upscale(video, 8, 6, "bislerp", "disabled")[:, :, 1],
                          comfy_utils.bislerp(video[:, :, 1], 8, 6), atol=1e-6)
