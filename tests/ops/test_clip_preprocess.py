"""CLIP preprocessing: resize/crop geometry, 8-bit quantisation, normalisation, input checks."""

import pytest
import torch

from nodeloom.ops.clip_preprocess import clip_preprocess

MEAN, STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]


def test_an_image_already_at_size_is_only_quantised_and_normalised():
    img = torch.rand(2, 16, 16, 4)  # alpha is dropped
    out = clip_preprocess(img, 16, MEAN, STD)
    want = ((img[..., :3] * 255).round() / 255 - torch.tensor(MEAN)) / torch.tensor(STD)
    torch.testing.assert_close(out, want.movedim(-1, 1))


def test_center_crop_keeps_the_middle_of_the_long_side():
    # left third red, middle third green, right third blue: a centre crop of the square sees green only
    img = torch.zeros(1, 30, 90, 3)
    img[:, :, :30, 0], img[:, :, 30:60, 1], img[:, :, 60:, 2] = 1, 1, 1
    out = clip_preprocess(img, 10, [0, 0, 0], [1, 1, 1], crop=True)
    assert out.shape == (1, 3, 10, 10)
    inner = out[0, :, 2:-2, 2:-2]
    assert torch.allclose(inner[1], torch.ones(6, 6), atol=0.02) and float(inner[0].abs().max()) < 0.02


def test_no_crop_squashes_the_whole_image():
    img = torch.zeros(1, 30, 90, 3)
    img[:, :, :30, 0], img[:, :, 60:, 2] = 1, 1
    out = clip_preprocess(img, 9, [0, 0, 0], [1, 1, 1], crop=False)
    assert out.shape == (1, 3, 9, 9)
    assert float(out[0, 0, :, 0].min()) > 0.9 and float(out[0, 2, :, -1].min()) > 0.9


def test_resizing_is_antialiased_bicubic():
    img = torch.rand(1, 64, 48, 3, generator=torch.Generator().manual_seed(0))
    out = clip_preprocess(img, 24, [0, 0, 0], [1, 1, 1], crop=True)
    ref = torch.nn.functional.interpolate(img.movedim(-1, 1), size=(32, 24), mode="bicubic", antialias=True)[:, :, 4:28]
    torch.testing.assert_close(out, (ref.clamp(0, 1) * 255).round() / 255)


def test_a_grey_image_is_refused_with_its_shape():
    with pytest.raises(ValueError, match=r"at least 3 channels, got shape \(1, 8, 8, 1\)"):
        clip_preprocess(torch.rand(1, 8, 8, 1), 8, MEAN, STD)
