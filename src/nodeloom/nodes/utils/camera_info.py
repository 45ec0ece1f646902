"""CreateCameraInfo (ComfyUI's id): a LOAD3D_CAMERA value from orbit angles, a look-at position,
or a position and quaternion, for 3D renderers (Render Splat, Preview 3D). The maths is
:mod:`nodeloom.ops.camera_info`."""

from __future__ import annotations

from typing import Any

from nodeloom.node_api import Combo, Custom, Float, Node, Output, Schema
from nodeloom.ops.camera_info import camera_info

__all__ = ["CreateCameraInfo"]


def _float(default: float, low: float, high: float, tip: str, step: float = 0.01) -> list[Any]:
    return ["FLOAT", {"default": default, "min": low, "max": high, "step": step, "tooltip": tip}]


_ANGLE = 1.0
_QUAT_STEP = 0.001


_POSITION = {f"position_{axis}": _float(4.0, -1000.0, 1000.0, f"{axis.upper()} of the camera position in world space "
                                                           "(right-handed, Y-up).") for axis in "xyz"}
_ORBIT = {
    "yaw": _float(35.0, -360.0, 360.0, "Horizontal angle around the target in degrees (0 on +Z, 90 on +X).", _ANGLE),
    "pitch": _float(30.0, -89.0, 89.0, "Vertical angle above the target in degrees.", _ANGLE),
    "distance": _float(4.0, 0.01, 1000.0, "How far the camera sits from the target."),
}
_QUATERNION = {**_POSITION, **{f"quat_{axis}": _float(1.0 if axis == "w" else 0.0, -1.0, 1.0,
                                                      f"{axis.upper()} component of the camera's world-rotation "
                                                      "quaternion (it looks down local -Z; normalized for you).",
                                                      _QUAT_STEP)
                                for axis in "xyzw"}}


class CreateCameraInfo(Node):
    """Build a camera_info: 'orbit' aims with yaw/pitch/distance around the target; 'look_at' places
    the camera at a world position aiming at the target; 'quaternion' gives a position and a
    rotation. Coordinates are the viewer's world space (right-handed, Y-up)."""

    SCHEMA = Schema(
        "CreateCameraInfo", display_name="Create Camera Info", category="3d",
        search_aliases=["camera position", "make camera info", "orbit camera", "look at camera"],
        inputs=[
            Custom("COMFY_DYNAMICCOMBO_V3", "mode",
                   tooltip="orbit: angles around the target; look_at: a world position aimed at the target; "
                           "quaternion: a position plus a rotation quaternion.",
                   options=[{"key": "orbit", "inputs": {"required": _ORBIT}},
                            {"key": "look_at", "inputs": {"required": _POSITION}},
                            {"key": "quaternion", "inputs": {"required": _QUATERNION}}]),
            *(Float(f"target_{axis}", 0.0, min=-1000.0, max=1000.0, advanced=True,
                    tooltip=f"{axis.upper()} of the look-at point (orbit pivot / aim); ignored in quaternion mode.")
              for axis in "xyz"),
            Float("roll", 0.0, min=-180.0, max=180.0, step=1.0,
                  tooltip="Camera roll about the view axis, in degrees (orbit and look_at)."),
            Float("fov", 35.0, min=1.0, max=120.0, step=1.0,
                  tooltip="Field of view from top to bottom of the frame, in degrees."),
            Float("zoom", 1.0, min=0.01, max=100.0,
                  tooltip="Digital zoom (focal-length multiplier); above 1 zooms in without moving the camera."),
            Combo("camera_type", ["perspective", "orthographic"],
                  tooltip="Projection: perspective (foreshortening) or orthographic (parallel)."),
        ],
        outputs=[Output("LOAD3D_CAMERA", "camera_info", tooltip="Position, target, rotation quaternion, fov, zoom "
                                                                "and projection.")],
    )

    @classmethod
    def execute(cls, mode: Any, target_x: float, target_y: float, target_z: float, roll: float, fov: float,
                zoom: float, camera_type: str, **options: Any) -> tuple[dict[str, Any]]:
        if isinstance(mode, dict):
            chosen, given = str(mode.get("mode")), mode
        else:
            chosen = str(mode)
            given = {k.split(".", 1)[1]: v for k, v in options.items() if k.startswith("mode.")}
        spec = {"orbit": _ORBIT, "look_at": _POSITION, "quaternion": _QUATERNION}.get(chosen, {})
        values = {name: float(given.get(name, entry[1]["default"])) for name, entry in spec.items()}
        kwargs: dict[str, Any] = {}
        if chosen == "orbit":
            kwargs = {"yaw": values["yaw"], "pitch": values["pitch"], "distance": values["distance"]}
        elif chosen in ("look_at", "quaternion"):
            kwargs["position"] = (values["position_x"], values["position_y"], values["position_z"])
            if chosen == "quaternion":
                kwargs["quaternion"] = tuple(values[f"quat_{a}"] for a in "xyzw")
        return (camera_info(chosen, target=(target_x, target_y, target_z), roll=roll, fov=fov, zoom=zoom,
                            camera_type=camera_type, **kwargs),)
