"""CameraAngle: an orbit-camera pick around a subject, as a LOAD3D_CAMERA value for 3D nodes and
a shot description for prompts (the maths is :mod:`nodeloom.ops.camera_angle`)."""

from __future__ import annotations

from typing import Any

from nodeloom.node_api import Float, Image, Int, Node, Output, Schema, String
from nodeloom.ops.camera_angle import (
    HORIZONTAL_RANGE,
    VERTICAL_RANGE,
    ZOOM_RANGE,
    camera_angle_info,
    clamp_camera_angle,
    describe_camera_angle,
)

__all__ = ["CameraAngle"]


class CameraAngle(Node):
    """Pick a camera angle around a subject with a 3D preview. Outputs a camera_info for 3D nodes and
    a plain-English shot description for prompts."""

    SCHEMA = Schema(
        "CameraAngle", display_name="Compose Camera Angle Prompt", category="3d",
        search_aliases=["multi angle", "camera view", "orbit camera", "shot angle", "camera prompt"],
        inputs=[
            Int("horizontal_angle", 0, min=HORIZONTAL_RANGE[0], max=HORIZONTAL_RANGE[1], step=1,
                tooltip="Azimuth around the subject in degrees. 0 is the front, 90 the right side, 180 the back."),
            Int("vertical_angle", 0, min=VERTICAL_RANGE[0], max=VERTICAL_RANGE[1], step=1,
                tooltip="Elevation in degrees. Negative looks up from below, positive looks down from above."),
            Float("zoom", 5.0, min=ZOOM_RANGE[0], max=ZOOM_RANGE[1], step=0.1,
                  tooltip="Lens zoom on the subject: 0 is a wide shot, 10 a close-up. Carried into camera_info.zoom."),
            Image("image", optional=True,
                  tooltip="Optional reference image shown on the front of the subject cube in the 3D preview."),
            String("view", "", optional=True, socketless=True, widgetType="CAMERA_ANGLE_VIEW",
                   tooltip="The frontend's 3D preview state; not used by the node."),
        ],
        outputs=[Output("LOAD3D_CAMERA", "camera_info", tooltip="Position, look-at target, zoom factor, camera type "
                                                                "and field of view."),
                 Output("STRING", "prompt", tooltip="The shot, e.g. 'front view eye-level shot medium shot'.")],
    )

    @classmethod
    def execute(cls, horizontal_angle: int, vertical_angle: int, zoom: float, image: Any = None,
                view: Any = None) -> tuple[Any, ...]:
        h, v, z = clamp_camera_angle(horizontal_angle, vertical_angle, zoom)
        return camera_angle_info(h, v, z), describe_camera_angle(h, v, z)
