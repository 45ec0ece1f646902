"""A camera for 3D renderers (LOAD3D_CAMERA) from orbit angles, a look-at position, or a position
and a rotation quaternion. Right-handed, Y up; a camera looks down its local -Z (three.js).

Owns :func:`camera_info`. Plain math on floats (numpy): no torch, no nodes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nodeloom.errors import ValidationError

__all__ = ["camera_info", "orbit_position", "quaternion_from_basis", "rotate_by_quaternion"]

Vec = tuple[float, float, float]


def orbit_position(target: Vec, yaw: float, pitch: float, distance: float) -> np.ndarray:
    """The point ``distance`` from ``target`` at ``yaw``° about Y (0 on +Z, 90 on +X) and
    ``pitch``° of elevation."""
    y, p = math.radians(yaw), math.radians(pitch)
    offset = np.array([math.cos(p) * math.sin(y), math.sin(p), math.cos(p) * math.cos(y)])
    return np.asarray(target, dtype=np.float64) + distance * offset


def rotate_by_quaternion(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``v`` rotated by the unit quaternion ``q = (x, y, z, w)``."""
    u, w = q[:3], q[3]
    return v + 2.0 * np.cross(u, np.cross(u, v) + w * v)


def quaternion_from_basis(right: np.ndarray, up: np.ndarray, back: np.ndarray) -> np.ndarray:
    """The unit quaternion ``(x, y, z, w)`` of the rotation whose columns are the given axes."""
    m = np.stack([right, up, back], axis=1)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(max(1.0 + m[i, i] - m[j, j] - m[k, k], 1e-12))
        q = [0.0, 0.0, 0.0, (m[k, j] - m[j, k]) / s]
        q[i], q[j], q[k] = 0.25 * s, (m[j, i] + m[i, j]) / s, (m[k, i] + m[i, k]) / s
    out = np.asarray(q)
    return out / np.linalg.norm(out)


def _look_basis(forward: np.ndarray, roll: float) -> tuple[np.ndarray, np.ndarray]:
    """``(right, up)`` of a camera looking along unit ``forward`` with world Y up, rolled ``roll``°
    about the view axis."""
    ref = np.array([0.0, 1.0, 0.0])
    if abs(float(forward[1])) > 0.999:  # looking (nearly) straight up or down: world +Z stands in
        ref = np.array([0.0, 0.0, 1.0])
    right = np.cross(forward, ref)
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    r = math.radians(roll)
    return right * math.cos(r) + up * math.sin(r), up * math.cos(r) - right * math.sin(r)


def _xyz(v: np.ndarray) -> dict[str, float]:
    return {"x": float(v[0]), "y": float(v[1]), "z": float(v[2])}


def camera_info(mode: str, *, target: Vec = (0.0, 0.0, 0.0), roll: float = 0.0, fov: float = 35.0,
                zoom: float = 1.0, camera_type: str = "perspective", yaw: float = 35.0, pitch: float = 30.0,
                distance: float = 4.0, position: Vec = (4.0, 4.0, 4.0),
                quaternion: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)) -> dict[str, Any]:
    """A LOAD3D_CAMERA dict as ComfyUI's 3D nodes read it: ``position``, ``target``,
    ``quaternion`` (x, y, z, w: the camera's world rotation), ``fov`` (vertical, degrees),
    ``cameraType`` and ``zoom``.

    ``orbit`` places the camera with :func:`orbit_position` around ``target``; ``look_at``
    puts it at ``position`` aiming at ``target``; both are turned ``roll``° about the view axis
    (positive: right towards up). ``quaternion`` puts it at ``position`` turned by
    ``quaternion`` (normalised; ``target`` and ``roll`` ignored, the reported target is the
    point one unit ahead).

    Raises:
        ValidationError: an unknown mode, a camera on its target, or a zero quaternion.
    """
    tgt = np.asarray(target, dtype=np.float64)
    if mode == "quaternion":
        q = np.asarray(quaternion, dtype=np.float64)
        if np.linalg.norm(q) < 1e-12:
            raise ValidationError("`quat_x`..`quat_w` must not all be 0 (no rotation is described)")
        q = q / np.linalg.norm(q)
        pos = np.asarray(position, dtype=np.float64)
        tgt = pos + rotate_by_quaternion(q, np.array([0.0, 0.0, -1.0]))
    elif mode in ("orbit", "look_at"):
        pos = orbit_position(target, yaw, pitch, distance) if mode == "orbit" else np.asarray(position, np.float64)
        view = tgt - pos
        if np.linalg.norm(view) < 1e-9:
            raise ValidationError("the camera `position` must differ from its `target`")
        forward = view / np.linalg.norm(view)
        right, up = _look_basis(forward, roll)
        q = quaternion_from_basis(right, up, -forward)
    else:
        raise ValidationError(f"`mode` must be one of ['orbit', 'look_at', 'quaternion'], got {mode!r}")
    return {"position": _xyz(pos), "target": _xyz(tgt),
            "quaternion": {"x": float(q[0]), "y": float(q[1]), "z": float(q[2]), "w": float(q[3])},
            "fov": float(fov), "cameraType": str(camera_type), "zoom": float(zoom)}
