"""Mask ops: morphology, logic, colour ranges, components, boxes, crops, composites, ROI."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import torch

from nodeloom.errors import ValidationError
from nodeloom.ops import mask as M


def _blobs() -> torch.Tensor:
    m = torch.zeros(1, 32, 32)
    m[0, 4:12, 4:12] = 1.0  # 64 px square with a 2x2 hole
    m[0, 7:9, 7:9] = 0.0
    m[0, 20, 20] = 1.0  # 1 px speck
    m[0, 25:28, 2:5] = 0.7  # 9 px soft blob
    return m


@pytest.mark.parametrize("expand", [-3, -1, 1, 2, 5])
@pytest.mark.parametrize("tapered", [True, False])
def test_grow_equals_repeated_3x3_grey_morphology(expand, tapered):
    rng = np.random.default_rng(abs(expand))
    m = (rng.random((2, 24, 20)) > 0.85).astype(np.float32) * rng.random((2, 24, 20)).astype(np.float32)
    c = 0 if tapered else 1
    kernel = np.array([[c, 1, c], [1, 1, 1], [c, 1, c]])
    ref = []
    for item in m:
        out = item
        for _ in range(abs(expand)):
            op = scipy.ndimage.grey_erosion if expand < 0 else scipy.ndimage.grey_dilation
            out = op(out, footprint=kernel)
        ref.append(out)
    np.testing.assert_allclose(M.grow(torch.from_numpy(m), expand, tapered).numpy(), np.stack(ref))


def test_grow_by_more_than_the_image_reaches_everything_quickly():
    m = torch.zeros(1, 6, 9)
    m[0, 2, 3] = 0.7
    for tapered in (True, False):
        torch.testing.assert_close(M.grow(m, 16384, tapered), torch.full_like(m, 0.7))
        torch.testing.assert_close(M.grow(m, -16384, tapered), torch.zeros_like(m))
    assert M.grow(torch.ones(1, 1, 1), 5).item() == 1.0


def test_feather_edges_ramps_each_side():
    m = torch.ones(1, 4, 10)
    out = M.feather_edges(m, left=4, top=0, right=2, bottom=0)
    np.testing.assert_allclose(out[0, 0].numpy(), [0.25, 0.5, 0.75, 1, 1, 1, 1, 1, 1, 0.5], rtol=1e-6)
    with pytest.raises(ValidationError, match="≥ 0"):
        M.feather_edges(m, -1, 0, 0, 0)


def test_combine_masks_fuzzy_logic():
    a = torch.tensor([[[0.0, 0.2, 1.0, 0.7]]])
    b = torch.tensor([[[0.5, 0.9, 1.0, 0.1]]])
    np.testing.assert_allclose(M.combine_masks(a, b, "and"), [[[0.0, 0.2, 1.0, 0.1]]], atol=1e-6)
    np.testing.assert_allclose(M.combine_masks(a, b, "or"), [[[0.5, 0.9, 1.0, 0.7]]], atol=1e-6)
    np.testing.assert_allclose(M.combine_masks(a, b, "subtract"), [[[0, 0, 0, 0.6]]], atol=1e-6)
    assert M.combine_masks(a, b, "xor", threshold=0.5).tolist() == [[[0.0, 1.0, 0.0, 1.0]]]
    with pytest.raises(ValidationError, match="differ in size"):
        M.combine_masks(a, torch.zeros(1, 2, 2), "and")
    with pytest.raises(ValidationError, match="`op`"):
        M.combine_masks(a, b, "nand")


def test_color_range_mask_in_three_spaces():
    img = torch.zeros(1, 2, 3, 3)
    img[0, 0, 0] = torch.tensor([1.0, 0.0, 0.0])
    img[0, 0, 1] = torch.tensor([0.95, 0.05, 0.0])
    img[0, 1, 2] = torch.tensor([0.0, 0.0, 1.0])
    for space, tol in (("rgb", 0.1), ("hsv", 0.1), ("delta_e", 5.0)):
        m = M.color_range_mask(img, (1.0, 0.0, 0.0), tol, space)
        assert m.shape == (1, 2, 3)
        assert m[0, 0, 0] == 1 and m[0, 0, 1] == 1 and m[0, 1, 2] == 0, space
    soft = M.color_range_mask(img, (1.0, 0.0, 0.0), 0.0, "rgb", softness=0.2)
    assert 0 < soft[0, 0, 1] < 1
    with pytest.raises(ValidationError, match="`space`"):
        M.color_range_mask(img, (1, 0, 0), 1, "lab")


def test_remove_small_objects_and_fill_holes():
    m = _blobs()
    cleaned = M.remove_small_objects(m, min_size=10)
    assert cleaned[0, 20, 20] == 0 and cleaned[0, 26, 3] == 0 and cleaned[0, 5, 5] == 1
    kept = M.remove_small_objects(m, min_size=9)
    assert kept[0, 26, 3] == pytest.approx(0.7)  # soft values survive
    filled = M.fill_holes(m)
    assert filled[0, 7:9, 7:9].eq(1).all() and filled[0, 0, 0] == 0
    assert M.fill_holes(m, max_hole_size=3)[0, 7, 7] == 0  # the 4 px hole is too big
    assert m[0, 7, 7] == 0 and m[0, 20, 20] == 1  # input untouched


def test_bounding_box_and_crop_with_padding():
    m = _blobs()
    assert M.bounding_box(m) == [(2, 4, 19, 24)]
    assert M.bounding_box(torch.zeros(2, 4, 4)) == [None, None]
    img = torch.rand(1, 32, 32, 3)
    only_square = torch.zeros(1, 32, 32)
    only_square[0, 4:12, 4:12] = 1
    crop, mcrop, box = M.crop_to_mask(img, only_square, padding=2)
    assert box == (2, 2, 12, 12) and crop.shape == (1, 12, 12, 3) and mcrop.shape == (1, 12, 12)
    torch.testing.assert_close(crop, img[:, 2:14, 2:14])
    _, _, clipped = M.crop_to_mask(img, only_square, padding=100)
    assert clipped == (0, 0, 32, 32)
    with pytest.raises(ValidationError, match="there is no box"):
        M.crop_to_mask(img, torch.zeros(1, 32, 32))


def test_composite_and_replace_color():
    dst = torch.zeros(1, 4, 4, 3)
    src = torch.ones(1, 4, 4, 3)
    m = torch.zeros(1, 4, 4)
    m[0, :2] = 1.0
    m[0, 2, 0] = 0.5
    out = M.composite(dst, src, m)
    assert out[0, 0, 0].tolist() == [1, 1, 1] and out[0, 3, 3].tolist() == [0, 0, 0]
    assert out[0, 2, 0, 0] == pytest.approx(0.5)
    red = M.replace_color(dst, m, (1.0, 0.0, 0.0))
    assert red[0, 0, 0].tolist() == [1, 0, 0] and red[0, 3, 3].tolist() == [0, 0, 0]
    with pytest.raises(ValidationError, match="`mask`"):
        M.composite(dst, src, torch.zeros(1, 5, 5))


def test_roi_mask_shapes():
    rect = M.roi_mask(16, 8, 2, 1, 4, 3)
    assert rect.shape == (1, 8, 16) and rect.sum() == 12 and rect[0, 1, 2] == 1
    ell = M.roi_mask(20, 20, 0, 0, 20, 20, "ellipse")
    assert ell[0, 10, 10] == 1 and ell[0, 0, 0] == 0
    assert abs(float(ell.sum()) - np.pi * 100) < 12
    soft = M.roi_mask(20, 20, 0, 0, 20, 20, "rectangle", feather=4)
    assert soft[0, 0, 10] == pytest.approx(0.125) and soft[0, 10, 10] == 1
