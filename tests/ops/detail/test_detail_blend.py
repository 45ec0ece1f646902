"""Feathered paste and seam colour matching."""

import numpy as np
import pytest

from nodeloom.errors import ValidationError
from nodeloom.ops.detail.blend import feather_mask, match_seam_colors, paste_crop, seam_delta_e


def _square_mask(size=64, lo=20, hi=44):
    m = np.zeros((size, size), np.float32)
    m[lo:hi, lo:hi] = 1
    return m


def test_feather_is_zero_beyond_three_sigma():
    alpha = feather_mask(_square_mask(), 4)
    assert alpha[32, 32] == pytest.approx(1.0, abs=5e-3)
    assert 0 < alpha[32, 44] < 1  # just outside the edge: part of the ring
    assert alpha[32, 44 + 13] == 0 and alpha[0, 0] == 0
    assert np.array_equal(feather_mask(_square_mask(), 0), _square_mask())
    with pytest.raises(ValidationError, match="`feather`"):
        feather_mask(_square_mask(), -1)


def test_paste_keeps_zero_alpha_pixels_exact():
    rng = np.random.default_rng(0)
    image = rng.random((64, 64, 3)).astype(np.float32)
    crop = np.ones((32, 32, 3), np.float32)
    mask = np.zeros((32, 32), np.float32)
    mask[8:24, 8:24] = 1
    alpha = feather_mask(mask, 2)
    out = paste_crop(image, crop, alpha, (16, 16, 48, 48))
    changed = np.any(out != image, axis=-1)
    expected = np.zeros((64, 64), bool)
    expected[16:48, 16:48] = alpha > 0
    assert np.array_equal(changed, expected)
    assert image is not out and np.all(image < 1.0001)


def test_paste_rejects_mismatched_region():
    with pytest.raises(ValidationError, match="do not fit"):
        paste_crop(np.zeros((8, 8, 3)), np.zeros((4, 4, 3)), np.zeros((4, 4)), (0, 0, 5, 5))


def test_seam_matching_reduces_delta_e_on_colour_shift():
    rng = np.random.default_rng(1)
    base = np.clip(np.array([0.55, 0.45, 0.40]) + 0.03 * rng.standard_normal((64, 64, 3)), 0, 1).astype(np.float32)
    redrawn = np.clip(base + np.array([0.15, -0.05, 0.10], np.float32), 0, 1)  # tinted re-draw
    alpha = feather_mask(_square_mask(), 4)
    plain = paste_crop(base, redrawn, alpha, (0, 0, 64, 64))
    matched = paste_crop(base, match_seam_colors(redrawn, base, alpha), alpha, (0, 0, 64, 64))
    before, after = seam_delta_e(plain, alpha), seam_delta_e(matched, alpha)
    assert before > 5.0
    assert after < 0.25 * before


def test_seam_matching_off_or_without_ring_is_identity():
    a = np.full((16, 16, 3), 0.3, np.float32)
    b = np.full((16, 16, 3), 0.6, np.float32)
    assert np.array_equal(match_seam_colors(b, a, np.ones((16, 16), np.float32)), b)
    assert np.array_equal(match_seam_colors(b, a, feather_mask(_square_mask(16, 4, 12), 2), strength=0), b)


def test_feather_does_not_fade_at_image_borders():
    full = np.ones((20, 20), np.float32)
    closed = feather_mask(full, 3)
    open_ = feather_mask(full, 3, (True, True, True, True))
    assert closed[0, 0] < 0.5 and np.allclose(open_, 1.0)
    half = feather_mask(full, 3, (True, False, False, False))
    assert half[0, 10] == pytest.approx(1.0) and half[19, 10] < 0.7
