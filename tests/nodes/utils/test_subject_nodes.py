"""ImageCropToMask and ColorTransfer: cropping to a mask's subject and matching colours."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from nodeloom.errors import ValidationError
from nodeloom.nodes.utils import NODE_CLASS_MAPPINGS as NODES
from nodeloom.ops.color import rgb_to_lab


def call(class_type: str, **inputs):
    cls = NODES[class_type]
    return getattr(cls(), cls.FUNCTION)(**inputs)


def _photo(name: str = "astronaut", size: int = 64) -> torch.Tensor:
    img = torch.from_numpy(getattr(data, name)()[..., :3].astype(np.float32) / 255.0)[None]
    return torch.nn.functional.interpolate(img.movedim(-1, 1), size=(size, size), mode="area").movedim(1, -1)


def _square_mask(h=64, w=64, box=(10, 20, 16, 8)) -> torch.Tensor:
    x, y, bw, bh = box
    m = torch.zeros(1, h, w)
    m[:, y:y + bh, x:x + bw] = 1.0
    return m


CROP = dict(width=64, height=64, pad_factor=1.0, grow_mask=0, background="#ff0000")


def test_crop_to_mask_centres_the_subject_over_the_background() -> None:
    image = torch.full((1, 64, 64, 3), 0.5)
    (out,) = call("ImageCropToMask", images=image, masks=_square_mask(), **CROP)
    assert out.shape == (1, 64, 64, 3)
    # the 16x8 box fills the width of a square crop, centred: grey band in the middle, red above and below
    assert torch.allclose(out[0, 32, 32], torch.tensor([0.5, 0.5, 0.5]), atol=1e-4)
    assert torch.allclose(out[0, 2, 32], torch.tensor([1.0, 0.0, 0.0]), atol=1e-4)
    assert torch.allclose(out[0, 61, 32], torch.tensor([1.0, 0.0, 0.0]), atol=1e-4)
    (wide,) = call("ImageCropToMask", images=image, masks=_square_mask(), **{**CROP, "width": 128, "pad_factor": 2.0})
    assert wide.shape == (1, 64, 128, 3) and torch.allclose(wide[0, :, 0], torch.tensor([1.0, 0.0, 0.0]), atol=1e-4)


def test_crop_to_mask_flips_an_inverted_mask_and_uses_the_whole_image_when_empty() -> None:
    image = _photo()
    (plain,) = call("ImageCropToMask", images=image, masks=_square_mask(), **CROP)
    (flipped,) = call("ImageCropToMask", images=image, masks=1.0 - _square_mask(), **CROP)
    assert torch.allclose(plain, flipped, atol=1e-5)
    (whole,) = call("ImageCropToMask", images=image, masks=torch.zeros(1, 64, 64), **CROP)
    assert torch.allclose(whole, image, atol=1e-4)


def test_crop_to_mask_resizes_masks_grows_them_and_checks_the_batch() -> None:
    image = _photo().expand(2, -1, -1, -1)
    (small,) = call("ImageCropToMask", images=image, masks=_square_mask(32, 32, (5, 10, 8, 4)), **CROP)
    (full,) = call("ImageCropToMask", images=image, masks=_square_mask(), **CROP)
    assert small.shape == full.shape == (2, 64, 64, 3) and (small - full).abs().mean() < 0.05
    (grown,) = call("ImageCropToMask", images=image, masks=_square_mask(), **{**CROP, "grow_mask": 4})
    assert not torch.allclose(grown, full)
    with pytest.raises(ValidationError, match="masks"):
        call("ImageCropToMask", images=image, masks=torch.ones(3, 64, 64), **CROP)
    with pytest.raises(ValidationError, match="background"):
        call("ImageCropToMask", images=image, masks=_square_mask(), **{**CROP, "background": "red"})


@pytest.mark.parametrize("method", ["reinhard_lab", "mkl_lab"])
def test_color_transfer_matches_the_references_lab_statistics(method: str) -> None:
    target, ref = _photo("astronaut"), _photo("coffee")
    (out,) = call("ColorTransfer", image_target=target, image_ref=ref, method=method, source_stats="per_frame", strength=1.0)
    lab_out, lab_ref, lab_in = (rgb_to_lab(t.double()).reshape(-1, 3) for t in (out, ref, target))
    err_after = (lab_out.mean(0) - lab_ref.mean(0)).abs().max()
    assert err_after < 3.0 < (lab_in.mean(0) - lab_ref.mean(0)).abs().max()
    (same,) = call("ColorTransfer", image_target=target, image_ref=ref, method=method, source_stats="per_frame", strength=0.0)
    assert same is target


def test_color_transfer_histogram_matches_each_channels_distribution() -> None:
    target, ref = _photo("astronaut"), _photo("coffee")
    (out,) = call("ColorTransfer", image_target=target, image_ref=ref, method="histogram", source_stats="per_frame", strength=1.0)
    q = torch.linspace(0.1, 0.9, 9)  # the tails hold ties (clipped pixels) that map as one
    got, want = (torch.quantile(t.reshape(-1, 3).double(), q.double(), dim=0) for t in (out, ref))
    assert (got - want).abs().max() < 0.03
    (half,) = call("ColorTransfer", image_target=target, image_ref=ref, method="histogram", source_stats="per_frame", strength=0.5)
    assert torch.allclose(half, (target + out) / 2, atol=1e-4)


def test_color_transfer_source_stats_choose_the_baseline() -> None:
    dark, bright = _photo() * 0.5, _photo() * 0.5 + 0.4
    batch, ref = torch.cat([dark, bright]), _photo("coffee")
    kw = dict(image_target=batch, image_ref=ref, method="reinhard_lab", strength=1.0)
    (per,) = call("ColorTransfer", source_stats="per_frame", **kw)
    (uni,) = call("ColorTransfer", source_stats="uniform", **kw)
    (first,) = call("ColorTransfer", source_stats="target_frame", **{"source_stats.target_index": 0}, **kw)
    (last,) = call("ColorTransfer", source_stats="target_frame", **{"source_stats.target_index": 99}, **kw)
    assert (per[0] - per[1]).abs().mean() < 0.05  # each frame matched on its own: both look like the reference
    assert uni[1].mean() > uni[0].mean() + 0.1 and first[1].mean() > first[0].mean() + 0.1  # relative difference kept
    assert torch.allclose(first[0], per[0], atol=1e-4) and torch.allclose(last[1], per[1], atol=1e-4)
    with pytest.raises(ValidationError, match="method"):
        call("ColorTransfer", source_stats="uniform", **{**kw, "method": "nope"})
