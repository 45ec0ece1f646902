"""Optical flow wrappers, warping and the occlusion mask."""

import numpy as np
import pytest
from skimage import data

from nodeloom.errors import ValidationError
from nodeloom.ops.flow import FLOW_METHODS, compute_flow, occlusion_mask, to_gray_u8, warp_by_flow


@pytest.fixture(scope="module")
def pair():
    img = np.ascontiguousarray(data.astronaut()[::4, ::4].astype(np.float32) / 255.0)
    shifted = np.roll(img, 3, axis=1)  # content moves 3 px right
    return img, shifted


@pytest.mark.parametrize("method", FLOW_METHODS)
def test_every_method_finds_a_known_shift(pair, method):
    a, b = pair
    flow = compute_flow(a, b, method)
    assert flow.shape == (128, 128, 2) and flow.dtype == np.float32
    inner = flow[20:-20, 20:-20]
    assert float(np.median(inner[..., 0])) == pytest.approx(3.0, abs=0.5)
    assert float(np.median(inner[..., 1])) == pytest.approx(0.0, abs=0.5)


def test_warp_brings_the_second_frame_onto_the_first(pair):
    a, b = pair
    warped = warp_by_flow(b, np.full(a.shape[:2] + (2,), [3.0, 0.0], np.float32))
    assert np.abs(warped[:, 5:-5] - a[:, 5:-5]).max() < 1e-5


def test_occlusion_mask_marks_inconsistent_and_outgoing_pixels():
    h, w = 16, 16
    fwd = np.zeros((h, w, 2), np.float32)
    bwd = np.zeros((h, w, 2), np.float32)
    fwd[..., 0] = 2.0
    bwd[..., 0] = -2.0
    bwd[4:8, 4:8] = [5.0, 5.0]  # inconsistent patch
    mask = occlusion_mask(fwd, bwd)
    assert mask[0, 0] == 1.0
    assert mask[5, 3] == 0.0  # lands in the inconsistent patch
    assert mask[:, -2:].max() == 0.0  # leaves the frame
    assert mask.mean() > 0.7


def test_gray_conversion_and_errors():
    assert to_gray_u8(np.ones((2, 2, 3), np.float32)).tolist() == [[255, 255], [255, 255]]
    with pytest.raises(ValidationError, match="same size"):
        compute_flow(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))
    with pytest.raises(ValidationError, match="`method` must be one of"):
        compute_flow(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)), "raft")
