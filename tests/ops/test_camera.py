"""Camera paths and rendering: measured back with optical flow, antialiasing, presets, Bezier."""

import numpy as np
import pytest
from skimage import data

from nodeloom.errors import ValidationError
from nodeloom.ops.camera import CameraPath, frame_matrices, path_from_schedules
from nodeloom.ops.camera_paths import PRESETS, bezier_curve, bezier_path, ease_progress, parse_points, semantic_path
from nodeloom.ops.camera_render import render_keyframes, render_path
from nodeloom.ops.flow import compute_flow


@pytest.fixture(scope="module")
def photo():
    img = data.astronaut().astype(np.float32) / 255.0
    return np.ascontiguousarray(img[::4, ::4])  # 128×128, real texture


def _interior(flow, margin=24):
    return flow[margin:-margin, margin:-margin]


@pytest.mark.parametrize(("dx", "dy"), [(2.0, 0.0), (0.75, -1.25)])
def test_pure_pan_is_measured_back_with_optical_flow(photo, dx, dy):
    path = path_from_schedules(5, {"translation_x": f"0:({dx})", "translation_y": f"0:({dy})"})
    frames = render_path(photo, path)
    for t in (1, 3):
        flow = _interior(compute_flow(frames[t], frames[t + 1]))
        assert abs(float(np.median(flow[..., 0])) - dx) < 0.5
        assert abs(float(np.median(flow[..., 1])) - dy) < 0.5


def test_zoom_is_measured_back_as_a_radial_flow(photo):
    z = 1.04
    frames = render_path(photo, path_from_schedules(4, {"zoom": f"0:({z})"}))
    flow = compute_flow(frames[1], frames[2])
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w) - (w - 1) / 2, np.arange(h) - (h - 1) / 2)
    expected = np.stack([gx, gy], axis=-1) * (z - 1)
    err = np.linalg.norm(_interior(flow) - _interior(expected), axis=-1)
    assert float(np.median(err)) < 0.5
    # the scale factor fitted over the interior matches the schedule
    fit = float((_interior(flow) * _interior(expected)).sum() / (_interior(expected) ** 2).sum())
    assert fit == pytest.approx(1.0, abs=0.05)


def test_first_frame_is_the_untouched_still(photo):
    frames = render_path(photo, path_from_schedules(3, {"zoom": "0:(1.1)", "angle": "0:(3)"}))
    assert np.abs(frames[0] - photo).max() < 1e-4


def test_3d_directions_follow_the_documented_conventions(photo):
    def mean_flow(**kw):
        path = CameraPath.static(2).with_values(**{k: [0.0, v] for k, v in kw.items()})
        f = render_path(photo, path)
        return _interior(compute_flow(f[0], f[1])).reshape(-1, 2).mean(axis=0)

    assert mean_flow(pan=1.0)[0] < -1.0  # camera turns right → content moves left
    assert mean_flow(tilt=1.0)[1] > 1.0  # camera tilts up → content moves down
    assert mean_flow(cam_x=2.0)[0] == pytest.approx(-2.0, abs=0.3)


def test_roll_and_angle_turn_content_the_same_way(photo):
    a = render_path(photo, CameraPath.static(2).with_values(angle=[0.0, 4.0]))[1]
    r = render_path(photo, CameraPath.static(2).with_values(roll=[0.0, 4.0]))[1]
    assert np.abs(a - r).mean() < 2e-3


def test_dolly_forward_enlarges_like_a_zoom(photo):
    m = frame_matrices(CameraPath.static(2).with_values(dolly=[0.0, 50.0]), 128, 128)[1]
    assert m[0, 0] == pytest.approx(2.0) and m[1, 1] == pytest.approx(2.0)


def _shimmer(frames):
    """Frame-to-frame change of mean luminance relative to a smooth trend (aliasing pops)."""
    lum = frames.mean(axis=(1, 2, 3))
    trend = np.convolve(lum, np.ones(5) / 5, mode="same")
    return float(np.abs(lum - trend)[3:-3].mean())


def test_antialiasing_removes_shimmer_when_zooming_out():
    # a fine stripe pattern zoomed out aliases badly without prefiltering
    x = np.arange(256)
    stripes = (0.5 + 0.5 * np.sign(np.sin(x * np.pi / 1.5)))[None, :].repeat(256, 0)
    img = np.repeat(stripes[..., None], 3, axis=2).astype(np.float32)
    path = path_from_schedules(24, {"zoom": "0:(0.93)"}, interpolation="linear")
    plain = render_path(img, path, antialias=False, border="wrap")
    smooth = render_path(img, path, antialias=True, border="wrap")
    assert _shimmer(smooth) < 0.5 * _shimmer(plain)
    # zoomed far out, the stripes average to grey instead of moiré
    assert abs(float(smooth[-1].mean()) - float(img.mean())) < 0.05
    assert float(smooth[-1].std()) < float(plain[-1].std())


@pytest.mark.parametrize("border", ["reflect", "replicate", "wrap", "black"])
def test_border_modes(photo, border):
    frames = render_path(photo, path_from_schedules(2, {"zoom": "0:(0.5)"}), border=border)
    corner = frames[1][:8, :8]
    if border == "black":
        assert corner.max() == 0.0
    else:
        assert corner.mean() > 0.05


def test_output_size_and_channels(photo):
    rgba = np.concatenate([photo, np.ones_like(photo[..., :1])], axis=2)
    frames = render_path(rgba, CameraPath.static(3), out_size=(64, 48))
    assert frames.shape == (3, 48, 64, 4)
    assert frames.dtype == np.float32


def test_keyframe_stills_cross_fade(photo):
    a, b = np.zeros_like(photo), np.ones_like(photo)
    frames = render_keyframes(np.stack([a, b]), [0, 6], CameraPath.static(10), crossfade=3)
    means = frames.mean(axis=(1, 2, 3))
    assert means[:3].max() == 0.0
    assert 0 < means[3] < means[4] < means[5] < 1
    assert means[6:].min() == pytest.approx(1.0)
    with pytest.raises(ValidationError, match="keyframes"):
        render_keyframes(np.stack([a, b]), [0, 12], CameraPath.static(10))


def test_semantic_axes_and_presets():
    p = semantic_path(25, 200, 100, {"horizontal": 10, "zoom": 10}, easing="linear")
    assert p.cam_x[-1] == pytest.approx(0.3 * 200)
    assert p.zoom[-1] == pytest.approx(2.0)
    assert p.zoom[12] == pytest.approx(2 ** 0.5)
    for name in PRESETS:
        path = semantic_path(12, 128, 128, preset=name)
        assert path.frames == 12
        assert np.allclose(frame_matrices(path, 128, 128)[0], np.eye(3), atol=1e-9)
    left, right = semantic_path(5, 64, 64, preset="pan left"), semantic_path(5, 64, 64, preset="pan right")
    assert left.pan[-1] == -right.pan[-1] == -10.0
    with pytest.raises(ValidationError, match="`horizontal` must be within −10…10"):
        semantic_path(5, 64, 64, {"horizontal": 11})
    with pytest.raises(ValidationError, match="unknown camera axis"):
        semantic_path(5, 64, 64, {"sideways": 1})


def test_orbit_keeps_the_centre_in_view(photo):
    path = semantic_path(9, 128, 128, preset="orbit right")
    m = frame_matrices(path, 128, 128)[-1]
    c = m @ np.array([63.5, 63.5, 1.0])
    assert np.allclose(c[:2] / c[2], [63.5, 63.5], atol=0.5)
    assert path.pan[-1] < 0 and path.cam_x[-1] > 0


def test_bezier_path_is_eased_and_arc_length_uniform():
    assert np.allclose(bezier_curve(np.array([[0, 0], [10, 0]]), np.array([0, 0.5, 1])), [[0, 0], [5, 0], [10, 0]])
    # control points bunched at the start would make naive parameter steps uneven
    ctrl = np.array([[0, 0], [1, 0], [2, 0], [100, 0]])
    path = bezier_path(11, ctrl, width=128, height=128, easing="linear")
    steps = np.diff(path.cam_x)
    assert np.allclose(steps, steps[0], rtol=0.02)
    eased = bezier_path(11, ctrl, width=128, height=128, easing="ease_in_out", zoom=(1.0, 2.0))
    d = np.diff(eased.cam_x)
    assert d[0] < d[5] > d[-1]
    assert eased.zoom[0] == 1.0 and eased.zoom[-1] == pytest.approx(2.0)
    assert ease_progress(5, "linear").tolist() == [0, 0.25, 0.5, 0.75, 1.0]


def test_points_parser_names_the_bad_entry():
    assert parse_points("0,0; 10 , -5;20,5").tolist() == [[0, 0], [10, -5], [20, 5]]
    with pytest.raises(ValidationError, match="entry 2"):
        parse_points("0,0; 1,x")
    with pytest.raises(ValidationError, match="at least 2 points"):
        parse_points("3,4")


def test_path_validation_and_round_trip():
    p = semantic_path(6, 64, 64, preset="crane up")
    assert CameraPath.from_dict(p.to_dict()).to_dict() == p.to_dict()
    with pytest.raises(ValidationError, match="`zoom` must stay > 0"):
        CameraPath.static(2).with_values(zoom=[1.0, 0.0])
    with pytest.raises(ValidationError, match="unknown schedule"):
        path_from_schedules(3, {"warp_speed": "0:(1)"})
    combined = CameraPath.static(3).with_values(zoom=2.0).combine(CameraPath.static(3).with_values(zoom=1.5, x=4.0))
    assert combined.zoom.tolist() == [3.0] * 3 and combined.x.tolist() == [4.0] * 3


def test_dolly_zoom_keeps_the_centre_and_bends_the_edges(photo):
    frames = render_path(photo, semantic_path(6, 128, 128, preset="dolly zoom"))
    centre = slice(54, 74)
    assert np.abs(frames[-1][centre, centre] - frames[0][centre, centre]).mean() < 0.03
    assert np.abs(frames[-1][:16] - frames[0][:16]).mean() > 2 * np.abs(frames[-1][centre, centre] - frames[0][centre, centre]).mean()
