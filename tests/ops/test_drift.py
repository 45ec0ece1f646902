"""Drift metrics flag injected flicker and colour drift; the fixes improve them by stated amounts."""

import numpy as np
import pytest
from skimage import data

from nodeloom.errors import ValidationError
from nodeloom.ops.camera import path_from_schedules
from nodeloom.ops.camera_render import render_path
from nodeloom.ops.drift import delta_e_curve, flag_segments, flicker_curve, measure_drift
from nodeloom.ops.drift_color import delta_e_2000, hsv_to_rgb, lab_to_rgb, rgb_to_hsv, rgb_to_lab
from nodeloom.ops.drift_fix import color_anchor, deflicker, flow_smooth

N = 30
FLICKER = (10, 11)
DRIFT_FROM = 18


@pytest.fixture(scope="module")
def clean():
    img = np.ascontiguousarray(data.astronaut()[::4, ::4].astype(np.float32) / 255.0)
    return render_path(img, path_from_schedules(N, {"translation_x": "0:(0.5)"}))


@pytest.fixture(scope="module")
def damaged(clean):
    bad = clean.copy()
    for i in FLICKER:
        bad[i] = np.clip(bad[i] * 1.2, 0, 1)
    for i in range(DRIFT_FROM, N):  # a growing red cast
        k = (i - DRIFT_FROM + 1) * 0.012
        bad[i, ..., 0] = np.clip(bad[i, ..., 0] + k, 0, 1)
        bad[i, ..., 2] = np.clip(bad[i, ..., 2] - k, 0, 1)
    return bad


def test_static_sequence_scores_perfect(clean):
    still = np.repeat(clean[:1], 6, axis=0)
    report = measure_drift(still)
    assert report.summary["warping_error"] == 0.0
    assert report.summary["temporal_flicker_score"] == 1.0
    assert report.summary["mean_delta_e"] == 0.0
    assert report.summary["max_luma_jump"] == 0.0
    assert all(not segs for segs in report.flagged.values())


def test_clean_camera_move_raises_no_flags(clean):
    report = measure_drift(clean)
    assert all(not segs for segs in report.flagged.values()), report.flagged
    assert report.summary["temporal_flicker_score"] > 0.9


def test_injected_flicker_and_colour_drift_are_flagged(damaged):
    report = measure_drift(damaged)
    assert report.flagged_frames("luma_jump") == list(FLICKER)
    drift = set(report.flagged_frames("delta_e"))
    assert set(range(21, N)) <= drift  # the cast exceeds ΔE 3 from frame 21 on
    assert not drift & (set(range(1, 10)) | set(range(12, DRIFT_FROM)))
    # the warping error spikes where a flickering frame meets a normal one
    assert set(report.flagged_frames("warping_error")) <= {10, 12}
    assert report.flagged_frames("warping_error")


def test_deflicker_removes_the_luminance_jump(damaged):
    before = measure_drift(damaged, include_warp=False)
    after = measure_drift(deflicker(damaged, size=5), include_warp=False)
    assert before.summary["max_luma_jump"] > 15
    assert after.summary["max_luma_jump"] < 0.1 * before.summary["max_luma_jump"]  # ≥ 90 % lower
    assert after.summary["temporal_flicker_score"] > before.summary["temporal_flicker_score"]
    assert not after.flagged["luma_jump"]


@pytest.mark.parametrize(("space", "method", "gain"), [("lab", "mean_std", 0.85), ("lab", "histogram", 0.85),
                                                        ("rgb", "mean_std", 0.8), ("hsv", "mean_std", 0.4)])
def test_colour_anchoring_cuts_colour_drift(damaged, space, method, gain):
    before = delta_e_curve(damaged)
    after = delta_e_curve(color_anchor(damaged, 0, space=space, method=method))
    assert after.mean() < (1 - gain) * before.mean()


def test_fixes_together_clear_every_flag(damaged):
    fixed = color_anchor(deflicker(damaged, size=5), 0)
    report = measure_drift(fixed)
    assert all(not segs for segs in report.flagged.values()), report.flagged
    assert report.summary["warping_error"] < measure_drift(damaged).summary["warping_error"]


def test_flow_smoothing_halves_the_warping_error_of_noise(clean):
    rng = np.random.default_rng(0)
    noisy = np.clip(clean[:10] + rng.normal(0, 0.03, clean[:10].shape).astype(np.float32), 0, 1)
    before = measure_drift(noisy).summary["warping_error"]
    after = measure_drift(flow_smooth(noisy, alpha=0.6)).summary["warping_error"]
    assert after < 0.5 * before


def test_flow_smoothing_leaves_occluded_pixels_alone():
    frames = np.zeros((2, 32, 32, 3), np.float32)
    frames[0, 8:16, 8:16] = 1.0
    frames[1, 8:16, 20:28] = 1.0  # a jump too large to track
    out = flow_smooth(frames, alpha=0.9)
    assert np.abs(out[1] - frames[1]).max() < 0.5  # no strong ghost of the old square


def test_helpers_and_errors():
    assert flag_segments([0, 5, 6, 0, 7], 4) == [{"start": 1, "end": 2, "peak": 6.0, "peak_frame": 2},
                                                   {"start": 4, "end": 4, "peak": 7.0, "peak_frame": 4}]
    assert flicker_curve(np.zeros((3, 4, 4, 3))).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValidationError, match="at least 2 frames"):
        measure_drift(np.zeros((1, 8, 8, 3)))
    with pytest.raises(ValidationError, match="unknown threshold"):
        measure_drift(np.zeros((2, 8, 8, 3)), thresholds={"wobble": 1})
    with pytest.raises(ValidationError, match="`size` must be within 2..129"):
        deflicker(np.zeros((2, 8, 8, 3)), size=1)
    with pytest.raises(ValidationError, match="`anchor` frame"):
        color_anchor(np.zeros((2, 8, 8, 3)), 5)


def test_colour_conversions_round_trip_and_ciede2000_reference_pairs():
    rng = np.random.default_rng(1)
    rgb = rng.random((50, 3))
    assert np.allclose(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-6)
    assert np.allclose(hsv_to_rgb(rgb_to_hsv(rgb)), rgb, atol=1e-6)
    assert np.allclose(rgb_to_lab(np.array([1.0, 1.0, 1.0])), [100, 0, 0], atol=1e-3)
    # Sharma, Wu & Dalal (2005) test pairs 1 and 7
    assert delta_e_2000(np.array([50, 2.6772, -79.7751]), np.array([50, 0, -82.7485])) == pytest.approx(2.0425, abs=1e-4)
    assert delta_e_2000(np.array([50, 0, 0.0]), np.array([50, -1, 2.0])) == pytest.approx(2.3669, abs=1e-4)


def test_conversions_agree_with_the_colour_module_when_present():
    color = pytest.importorskip("nodeloom.ops.color")
    rgb = np.random.default_rng(2).random((64, 3))
    assert np.allclose(rgb_to_lab(rgb), np.asarray(color.rgb_to_lab(rgb)), atol=1e-4)
    hsv_ours, hsv_theirs = rgb_to_hsv(rgb), np.asarray(color.rgb_to_hsv(rgb))
    assert np.allclose(hsv_ours, hsv_theirs, atol=1e-6)


def test_measuring_at_a_smaller_size(damaged):
    small = measure_drift(damaged, max_side=64, include_warp=False)
    assert small.flagged_frames("luma_jump") == list(FLICKER)
    with pytest.raises(ValidationError, match="`max_side` must be ≥ 0"):
        measure_drift(damaged, max_side=-1)
