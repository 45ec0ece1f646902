"""Camera angles around a subject at the origin: the orbit camera they place and the shot
description they read as (ComfyUI's CameraAngle conventions, which its frontend preview shares).

Owns :func:`camera_angle_info` (a LOAD3D_CAMERA dict: position, target, zoom factor, camera type,
field of view) and :func:`describe_camera_angle`. Plain math: no torch, no nodes.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["CAMERA_FOV", "HORIZONTAL_RANGE", "SUBJECT_DISTANCE", "VERTICAL_RANGE", "ZOOM_RANGE", "camera_angle_info",
           "clamp_camera_angle", "describe_camera_angle"]

HORIZONTAL_RANGE = (0, 360)
VERTICAL_RANGE = (-30, 60)
ZOOM_RANGE = (0.0, 10.0)
#: the preview's fixed lens and orbit radius; zoom scales the lens, never the distance
CAMERA_FOV = 35.0
SUBJECT_DISTANCE = 6.0
_ZOOM_FACTORS = (1.0, 1.875)

_SIDES = ("front view", "front-right quarter view", "right side view", "back-right quarter view", "back view",
          "back-left quarter view", "left side view", "front-left quarter view")
#: (upper bound, term): the first bound the value lies below names it; None is open-ended
_ELEVATIONS = ((-15.0, "low-angle shot"), (15.0, "eye-level shot"), (45.0, "elevated shot"), (None, "high-angle shot"))
_DISTANCES = ((2.0, "wide shot"), (6.0, "medium shot"), (None, "close-up"))


def clamp_camera_angle(horizontal: float, vertical: float, zoom: float) -> tuple[int, int, float]:
    """The widget values held to their ranges (angles as whole degrees)."""
    h = min(max(int(horizontal), HORIZONTAL_RANGE[0]), HORIZONTAL_RANGE[1])
    v = min(max(int(vertical), VERTICAL_RANGE[0]), VERTICAL_RANGE[1])
    z = min(max(float(zoom), ZOOM_RANGE[0]), ZOOM_RANGE[1])
    return h, v, z


def _term(value: float, bands: tuple[tuple[float | None, str], ...]) -> str:
    return next(term for bound, term in bands if bound is None or value < bound)


def describe_camera_angle(horizontal: float, vertical: float, zoom: float) -> str:
    """``"<side> <elevation> <distance>"``, e.g. ``"front view eye-level shot medium shot"``.

    The side is the 45° sector the azimuth falls in (sectors centred on 0°, 45°, ...).
    """
    sector = int(((horizontal % 360) + 22.5) // 45) % len(_SIDES)
    return f"{_SIDES[sector]} {_term(vertical, _ELEVATIONS)} {_term(zoom, _DISTANCES)}"


def camera_angle_info(horizontal: float, vertical: float, zoom: float) -> dict[str, Any]:
    """The camera looking at the origin from ``horizontal``° azimuth and ``vertical``° elevation.

    y is up; azimuth 0 sits on +z (the subject's front), 90 on +x. ``zoom`` 0..10 maps linearly
    onto a zoom factor of 1.0..1.875.
    """
    yaw, pitch = math.radians(horizontal), math.radians(vertical)
    flat = SUBJECT_DISTANCE * math.cos(pitch)
    low, high = _ZOOM_FACTORS
    return {
        "position": {"x": flat * math.sin(yaw), "y": SUBJECT_DISTANCE * math.sin(pitch), "z": flat * math.cos(yaw)},
        "target": {"x": 0.0, "y": 0.0, "z": 0.0},
        "zoom": low + (high - low) * zoom / ZOOM_RANGE[1],
        "cameraType": "perspective",
        "fov": CAMERA_FOV,
    }
