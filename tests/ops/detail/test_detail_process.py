"""Mask operations and ADetailer-order segment processing on synthetic masks."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodeloom.errors import ValidationError
from nodeloom.ops.detail import process as P
from nodeloom.ops.detail.segs import Segment, Segs, segment_full_mask, segs_to_mask


def _seg(x1, y1, x2, y2, conf=1.0, label="face", shape=(64, 64)):
    full = np.zeros(shape, np.float32)
    full[y1:y2, x1:x2] = 1.0
    return Segment(None, full, conf, (0, 0, shape[1], shape[0]), (x1, y1, x2, y2), label)


def _segs(*segments, shape=(64, 64)):
    return Segs(shape, list(segments))


def test_offset_moves_right_and_up():
    m = np.zeros((10, 10), np.float32)
    m[5, 5] = 1
    out = P.offset_mask(m, x=2, y=3)
    assert out[2, 7] == 1 and out.sum() == 1  # y up: row index decreases


def test_offset_negative_moves_left_and_down_without_wrapping():
    m = np.zeros((10, 10), np.float32)
    m[8, 1] = 1
    out = P.offset_mask(m, x=-3, y=-4)
    assert out.sum() == 0  # left the frame: gone, not wrapped
    out = P.offset_mask(m, x=-1, y=-1)
    assert out[9, 0] == 1


@pytest.mark.parametrize("k, side", [(3, 12), (5, 14), (4, 13)])
def test_dilate_square_kernel_sizes(k, side):
    m = np.zeros((30, 30), np.float32)
    m[10:20, 10:20] = 1  # 10x10
    out = P.dilate_erode(m, k)
    ys, xs = np.nonzero(out)
    assert ys.max() - ys.min() + 1 == side and xs.max() - xs.min() + 1 == side
    assert out.sum() == side * side  # square kernel keeps a square


@pytest.mark.parametrize("k, side", [(3, 8), (5, 6)])
def test_erode_square_kernel_sizes(k, side):
    m = np.zeros((30, 30), np.float32)
    m[10:20, 10:20] = 1
    out = P.dilate_erode(m, -k)
    assert out.sum() == side * side


def test_dilate_zero_is_identity_copy():
    m = np.eye(5, dtype=np.float32)
    out = P.dilate_erode(m, 0)
    assert np.array_equal(out, m) and out is not m


def test_transform_drops_segments_eroded_to_nothing():
    segs = _segs(_seg(10, 10, 13, 13), _seg(30, 30, 50, 50))
    out = P.transform_masks(segs, dilation=-5)
    assert len(out.segments) == 1 and out.segments[0].bbox == (32, 32, 48, 48)


def test_transform_offset_updates_bbox_and_region():
    segs = _segs(_seg(20, 20, 30, 30))
    out = P.transform_masks(segs, x_offset=5, y_offset=10, crop_factor=1.0)
    seg = out.segments[0]
    assert seg.bbox == (25, 10, 35, 20)
    assert seg.crop_region == (25, 10, 35, 20)
    assert segment_full_mask(seg, (64, 64))[10:20, 25:35].all()


def test_merge_unions_all_masks():
    segs = _segs(_seg(0, 0, 10, 10, 0.5, "face"), _seg(20, 20, 30, 30, 0.9, "hand"))
    out = P.merge_invert(segs, "merge")
    assert len(out.segments) == 1
    seg = out.segments[0]
    assert seg.confidence == 0.9 and seg.label == "face+hand"
    assert segs_to_mask(out).sum() == 200


def test_merge_invert_is_the_complement():
    segs = _segs(_seg(0, 0, 10, 10), _seg(20, 20, 30, 30))
    out = P.merge_invert(segs, "merge_invert")
    mask = segs_to_mask(out)
    assert mask.sum() == 64 * 64 - 200
    assert mask[5, 5] == 0 and mask[40, 40] == 1


def test_merge_none_and_bad_mode():
    segs = _segs(_seg(0, 0, 10, 10))
    assert P.merge_invert(segs, "none") is segs
    with pytest.raises(ValidationError, match="`mode`"):
        P.merge_invert(segs, "both")


def test_top_k_largest_and_most_confident():
    a, b, c = _seg(0, 0, 5, 5, 0.9), _seg(10, 10, 30, 30, 0.4), _seg(40, 40, 50, 50, 0.7)
    segs = _segs(a, b, c)
    assert [s.bbox for s in P.top_k(segs, 2, "area").segments] == [b.bbox, c.bbox]
    assert [s.bbox for s in P.top_k(segs, 2, "confidence").segments] == [a.bbox, c.bbox]
    assert P.top_k(segs, 0) is segs
    with pytest.raises(ValidationError, match="`k`"):
        P.top_k(segs, -1)


def test_area_ratio_bounds_are_inclusive():
    small, big = _seg(0, 0, 8, 8), _seg(0, 0, 32, 32)  # 1/64 and 1/4 of 64x64
    segs = _segs(small, big)
    assert [s.bbox for s in P.filter_area_ratio(segs, 0.1, 1.0).segments] == [big.bbox]
    assert [s.bbox for s in P.filter_area_ratio(segs, 0.0, 0.1).segments] == [small.bbox]
    assert len(P.filter_area_ratio(segs, 1 / 64, 0.25).segments) == 2
    with pytest.raises(ValidationError, match="min_ratio"):
        P.filter_area_ratio(segs, 0.5, 0.2)


def test_sort_orders():
    left_small = _seg(2, 28, 6, 32)
    centre_mid = _seg(28, 28, 36, 36)
    right_big = _seg(44, 0, 64, 20)
    segs = _segs(right_big, centre_mid, left_small)
    assert [s.bbox for s in P.sort_segs(segs, "left_to_right").segments] == [left_small.bbox, centre_mid.bbox, right_big.bbox]
    assert [s.bbox for s in P.sort_segs(segs, "center_to_edge").segments][0] == centre_mid.bbox
    assert [s.bbox for s in P.sort_segs(segs, "area").segments] == [right_big.bbox, centre_mid.bbox, left_small.bbox]
    assert P.sort_segs(segs, "none") is segs
    with pytest.raises(ValidationError, match="`order`"):
        P.sort_segs(segs, "random")


def test_confidence_and_drop_size():
    segs = _segs(_seg(0, 0, 20, 20, 0.29), _seg(30, 30, 50, 50, 0.3), _seg(60, 60, 63, 63, 0.9))
    assert [s.confidence for s in P.filter_confidence(segs, 0.3).segments] == [0.3, 0.9]
    assert len(P.drop_small(segs, 4).segments) == 2


def test_process_runs_in_adetailer_order():
    # top-k happens before the offset: the largest segment is chosen by its pre-offset area,
    # then moved; the weak one is gone before top-k could count it.
    weak_big = _seg(0, 0, 40, 40, 0.1)
    mid = _seg(40, 40, 60, 60, 0.8)
    small = _seg(2, 50, 8, 56, 0.8)
    cfg = P.SegmentProcessing(top_k=1, x_offset=-10, y_offset=0, dilation=0, crop_factor=1.0)
    out = P.process_segs(_segs(weak_big, mid, small), cfg)
    assert [s.bbox for s in out.segments] == [(30, 40, 50, 60)]


def test_process_defaults_dilate_by_four():
    out = P.process_segs(_segs(_seg(20, 20, 30, 30, 0.5)))
    # an even 4x4 kernel grows 1 px up/left and 2 px down/right (OpenCV's anchor, as in ADetailer)
    assert out.segments[0].bbox == (19, 19, 32, 32)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), x=st.integers(-12, 12), y=st.integers(-12, 12), k=st.integers(1, 7))
def test_mask_op_properties(seed, x, y, k):
    mask = (np.random.default_rng(seed).random((24, 24)) > 0.7).astype(np.float32)
    moved = P.offset_mask(mask, x, y)
    back = P.offset_mask(moved, -x, -y)
    assert np.all(back <= mask) and moved.sum() == back.sum()  # a round trip only loses what left the frame
    grown, shrunk = P.dilate_erode(mask, k), P.dilate_erode(mask, -k)
    assert np.all(grown >= mask) and np.all(shrunk <= mask)
