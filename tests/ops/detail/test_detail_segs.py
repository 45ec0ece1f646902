"""SEGS type, crop regions and mask conversions."""

import numpy as np
import pytest

from nodeloom.errors import ValidationError
from nodeloom.ops.detail.segs import make_crop_region, mask_to_segs, segs_to_mask, segs_to_masks, box_iou


def test_crop_region_factor_is_centred_and_clamped():
    assert make_crop_region(100, 100, (40, 40, 60, 60), crop_factor=2.0) == (30, 30, 70, 70)
    # near the corner the region shifts inside instead of shrinking
    assert make_crop_region(100, 100, (0, 0, 20, 20), crop_factor=3.0) == (0, 0, 60, 60)


def test_crop_region_padding_and_aspect():
    assert make_crop_region(100, 100, (40, 40, 60, 60), padding=5) == (35, 35, 65, 65)
    x1, y1, x2, y2 = make_crop_region(200, 200, (90, 80, 110, 120), padding=0, aspect=1.0)
    assert (x2 - x1, y2 - y1) == (40, 40)


def test_crop_region_rejects_bad_values():
    with pytest.raises(ValidationError, match="crop_factor"):
        make_crop_region(10, 10, (0, 0, 5, 5), crop_factor=0.5)
    with pytest.raises(ValidationError, match="padding"):
        make_crop_region(10, 10, (0, 0, 5, 5), padding=-1)


def test_mask_to_segs_components_and_back():
    m = np.zeros((40, 40), np.float32)
    m[2:8, 2:8] = 1
    m[20:30, 25:35] = 1
    m[38:40, 0:1] = 1  # too small: dropped
    segs = mask_to_segs(m, crop_factor=1.5, drop_size=2)
    assert len(segs.segments) == 2
    assert {s.bbox for s in segs.segments} == {(2, 2, 8, 8), (25, 20, 35, 30)}
    back = segs_to_mask(segs)
    assert np.array_equal(back[:37], m[:37])
    assert segs_to_masks(segs).shape == (2, 40, 40)


def test_mask_to_segs_combined_and_empty():
    m = np.zeros((20, 20), np.float32)
    m[1:3, 1:3] = 1
    m[10:15, 10:15] = 1
    assert len(mask_to_segs(m, combined=True).segments) == 1
    assert mask_to_segs(np.zeros((5, 5))).segments == []
    assert segs_to_mask(mask_to_segs(np.zeros((5, 5)))).shape == (5, 5)
    with pytest.raises(ValidationError, match="`mask`"):
        mask_to_segs(np.zeros((1, 5, 5)))


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
