"""The orbit camera and shot description of a camera angle (ComfyUI's CameraAngle conventions)."""

import math

import pytest

from nodeloom.ops.camera_angle import camera_angle_info, clamp_camera_angle, describe_camera_angle


@pytest.mark.parametrize(("h", "v", "z", "text"), [
    (0, 0, 5.0, "front view eye-level shot medium shot"),
    (22, -16, 1.9, "front view low-angle shot wide shot"),
    (23, -15, 2.0, "front-right quarter view eye-level shot medium shot"),
    (90, 15, 5.9, "right side view elevated shot medium shot"),
    (180, 45, 6.0, "back view high-angle shot close-up"),
    (270, 60, 10.0, "left side view high-angle shot close-up"),
    (333, 17, 5.0, "front-left quarter view elevated shot medium shot"),
    (360, 0, 0.0, "front view eye-level shot wide shot"),
])
def test_descriptions_follow_the_sectors_and_bands(h, v, z, text):
    assert describe_camera_angle(h, v, z) == text


def test_camera_orbits_the_origin_at_a_fixed_distance():
    info = camera_angle_info(90, 0, 0.0)
    assert info["target"] == {"x": 0.0, "y": 0.0, "z": 0.0}
    assert info["cameraType"] == "perspective" and info["fov"] == 35.0 and info["zoom"] == 1.0
    assert info["position"]["x"] == pytest.approx(6.0) and info["position"]["z"] == pytest.approx(0.0, abs=1e-12)
    up = camera_angle_info(0, 30, 10.0)
    assert up["position"]["y"] == pytest.approx(3.0) and up["position"]["z"] == pytest.approx(6 * math.cos(math.pi / 6))
    assert up["zoom"] == pytest.approx(1.875) and camera_angle_info(0, 0, 4.0)["zoom"] == pytest.approx(1.35)
    for h in range(0, 361, 15):
        p = camera_angle_info(h, -20, 5.0)["position"]
        assert math.dist((p["x"], p["y"], p["z"]), (0, 0, 0)) == pytest.approx(6.0)


def test_values_are_held_to_the_widget_ranges():
    assert clamp_camera_angle(400.7, -90, 12.5) == (360, -30, 10.0)
    assert clamp_camera_angle(-5, 75.9, -1) == (0, 60, 0.0)
