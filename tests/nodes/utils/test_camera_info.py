"""CreateCameraInfo: orbit, look-at and quaternion cameras (positions, aim, up, rotation), its
dynamic-combo declaration and the 3d_triposplat template's widget values through the engine."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nodeloom.core.workflow_ui import to_api
from nodeloom.errors import ValidationError
from nodeloom.nodes.utils.camera_info import CreateCameraInfo
from nodeloom.ops.camera_info import rotate_by_quaternion
from tests.nodes.conftest import run_prompt


def _camera(mode, **kw):
    """CreateCameraInfo with ComfyUI's defaults for what ``kw`` leaves out."""
    base = {"target_x": 0.0, "target_y": 0.0, "target_z": 0.0, "roll": 0.0, "fov": 35.0, "zoom": 1.0,
            "camera_type": "perspective"}
    return CreateCameraInfo.execute(mode, **{**base, **kw})[0]


def _up(cam):
    return rotate_by_quaternion(_quat(cam["quaternion"]), np.array([0.0, 1.0, 0.0]))


def _vec(d):
    return np.array([d["x"], d["y"], d["z"]])


def _quat(d):
    return np.array([d["x"], d["y"], d["z"], d["w"]])


def test_orbit_places_camera_around_target_and_aims_at_it():
    cam = _camera("orbit", target_x=1.0, target_y=2.0, target_z=3.0,
                  **{"mode.yaw": 90.0, "mode.pitch": 0.0, "mode.distance": 5.0})
    assert _vec(cam["position"]) == pytest.approx([6.0, 2.0, 3.0])  # yaw 90 sits on +X of the target
    assert _vec(cam["target"]) == pytest.approx([1.0, 2.0, 3.0])
    assert _up(cam) == pytest.approx([0.0, 1.0, 0.0])
    assert set(cam) == {"position", "target", "quaternion", "fov", "cameraType", "zoom"}
    # the rotation turns the camera's -Z onto the view direction
    forward = rotate_by_quaternion(_quat(cam["quaternion"]), np.array([0.0, 0.0, -1.0]))
    assert forward == pytest.approx([-1.0, 0.0, 0.0])
    assert cam["fov"] == 35.0 and cam["zoom"] == 1.0 and cam["cameraType"] == "perspective"


def test_orbit_pitch_raises_the_camera():
    cam = _camera("orbit", **{"mode.yaw": 0.0, "mode.pitch": 30.0, "mode.distance": 2.0})
    assert _vec(cam["position"]) == pytest.approx([0.0, 1.0, math.sqrt(3)])


def test_look_at_with_roll_turns_up_about_the_view_axis():
    cam = _camera("look_at", roll=90.0, fov=50.0, zoom=2.0, camera_type="orthographic",
                  **{"mode.position_x": 0.0, "mode.position_y": 0.0, "mode.position_z": 5.0})
    assert _vec(cam["position"]) == pytest.approx([0.0, 0.0, 5.0])
    assert _up(cam) == pytest.approx([-1.0, 0.0, 0.0], abs=1e-9)  # right (+X) turned towards up
    forward = rotate_by_quaternion(_quat(cam["quaternion"]), np.array([0.0, 0.0, -1.0]))
    assert forward == pytest.approx([0.0, 0.0, -1.0], abs=1e-9)
    assert cam["fov"] == 50.0 and cam["zoom"] == 2.0 and cam["cameraType"] == "orthographic"


def test_looking_straight_down_keeps_a_stable_up():
    cam = _camera("look_at", **{"mode.position_x": 0.0, "mode.position_y": 5.0, "mode.position_z": 0.0})
    forward = rotate_by_quaternion(_quat(cam["quaternion"]), np.array([0.0, 0.0, -1.0]))
    assert forward == pytest.approx([0.0, -1.0, 0.0], abs=1e-9) and abs(_up(cam)[1]) < 1e-9


def test_quaternion_mode_normalises_and_ignores_target():
    half = math.sqrt(0.5)
    values = {"mode.position_x": 1.0, "mode.position_y": 2.0, "mode.position_z": 3.0,
              "mode.quat_x": 0.0, "mode.quat_y": half * 2, "mode.quat_z": 0.0, "mode.quat_w": half * 2}
    cam = _camera("quaternion", target_x=100.0, roll=45.0, **values)  # 90° about Y, not unit length
    assert _quat(cam["quaternion"]) == pytest.approx([0.0, half, 0.0, half])  # roll is not applied here
    # looking down -Z turned 90° about Y looks down -X: the reported target is one unit ahead
    assert _vec(cam["target"]) == pytest.approx([0.0, 2.0, 3.0])
    zero = {**values, "mode.quat_y": 0.0, "mode.quat_w": 0.0}
    with pytest.raises(ValidationError, match="must not all be 0"):
        _camera("quaternion", **zero)


def test_camera_on_its_target_is_refused():
    with pytest.raises(ValidationError, match="must differ from its `target`"):
        _camera("look_at", target_x=4.0, target_y=4.0, target_z=4.0)


def test_template_widgets_through_the_engine(image_engine):
    """3d_triposplat_image_to_gaussian_splat: ["orbit", 35, 30, 2.5, 0, 0, 0, 0, 35, 1, "perspective"]."""
    info = image_engine.object_info("CreateCameraInfo")["CreateCameraInfo"]
    assert info["display_name"] == "Create Camera Info" and info["output"] == ["LOAD3D_CAMERA"]
    assert info["input_order"] == {"required": ["mode", "target_x", "target_y", "target_z", "roll", "fov", "zoom",
                                                "camera_type"]}
    assert info["input"]["required"]["target_x"][1]["advanced"] is True
    assert info["search_aliases"] == ["camera position", "make camera info", "orbit camera", "look at camera"]
    ui = {"last_node_id": 79, "last_link_id": 0, "links": [],
          "nodes": [{"id": 79, "type": "CreateCameraInfo", "mode": 0, "inputs": [],
                     "outputs": [{"name": "camera_info", "type": "LOAD3D_CAMERA", "links": []}],
                     "widgets_values": ["orbit", 35, 30, 2.5, 0, 0, 0, 0, 35, 1, "perspective"]}]}
    prompt = to_api(ui, lambda t: image_engine.registry.get(t).INPUT_TYPES() if image_engine.registry.get(t) else None)
    assert prompt["79"]["inputs"]["mode.distance"] == 2.5 and prompt["79"]["inputs"]["fov"] == 35
    result = run_prompt(image_engine, prompt, sinks=[["79", 0]])
    assert result.ok, result.errors
    cam = result.value("79", 0)
    flat = 2.5 * math.cos(math.radians(30))
    assert _vec(cam["position"]) == pytest.approx([flat * math.sin(math.radians(35)), 1.25,
                                                   flat * math.cos(math.radians(35))])
