"""Camera motions as Plücker ray embeddings, the camera input of Wan Fun camera models.

:func:`motion_poses` turns one of the Fun camera presets (pan, zoom, roll, with a speed) into
camera-to-world poses, one per frame; :func:`plucker_rays` gives each pixel's ray under each
pose as the 6-vector ``(o × d, d)`` (moment, then unit direction) — the embedding CameraCtrl
introduced and the Wan Fun camera models were trained on; :func:`fold_frames` folds a clip's
per-frame embeddings four frames to a latent frame, as the models read them;
:func:`path_poses` gives the same camera-to-world poses for one of our camera paths
(:class:`~nodeloom.ops.camera.CameraPath`), so a Deforum schedule, semantic move or Bezier path
drives a Fun camera model too. Pure numpy/torch; imports no node, model or engine.

Pose convention (the presets' and ours): x right, y down, z forward (the view axis), camera-to-world
``[4, 4]``; rotations in radians, translations in pose units. For a camera path, one pose unit is
``1 / scale`` of the starting distance to the still, so ``scale`` 1 makes a dolly all the way to
the still one unit (the presets' ``Pan Left`` moves 1.5 units, ``Zoom In`` 3, at speed 1).
"""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import torch

from nodeloom.ops.camera import CameraPath, camera_rotation, focal_length

__all__ = ["WAN_CAMERA_MOTIONS", "fold_frames", "motion_poses", "path_poses", "plucker_rays"]

#: the Fun camera presets: rotation about (x, y, z) in units of 60°, translation in units of 1.5,
#: reached at the end of the clip (times ``speed``)
WAN_CAMERA_MOTIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "Static": ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    "Pan Up": ((0.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
    "Pan Down": ((0.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "Pan Left": ((0.0, 0.0, 0.0), (-1.0, 0.0, 0.0)),
    "Pan Right": ((0.0, 0.0, 0.0), (1.0, 0.0, 0.0)),
    "Zoom In": ((0.0, 0.0, 0.0), (0.0, 0.0, 2.0)),
    "Zoom Out": ((0.0, 0.0, 0.0), (0.0, 0.0, -2.0)),
    "Anti Clockwise (ACW)": ((0.0, 0.0, -1.0), (0.0, 0.0, 0.0)),
    "ClockWise (CW)": ((0.0, 0.0, 1.0), (0.0, 0.0, 0.0)),
}
_ANGLE_UNIT, _SHIFT_UNIT = math.pi / 3, 1.5
#: the pose data's frame size the presets' focal lengths refer to (16:9)
_POSE_SIZE = (1280, 720)


def _rotation(angles: np.ndarray) -> np.ndarray:
    """``Rz · Ry · Rx`` for rotations ``angles = (x, y, z)`` in radians."""
    (cx, cy, cz), (sx, sy, sz) = np.cos(angles), np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def motion_poses(motion: str, frames: int, speed: float = 1.0) -> np.ndarray:
    """Camera-to-world poses ``[frames, 4, 4]`` of a preset: frame ``i`` has moved ``i/frames`` of the way.

    Raises:
        ValueError: an unknown preset or a frame count below 1.
    """
    if motion not in WAN_CAMERA_MOTIONS:
        raise ValueError(f"`camera_pose` must be one of {list(WAN_CAMERA_MOTIONS)}, got {motion!r}")
    if frames < 1:
        raise ValueError(f"`length` must be at least 1, got {frames}")
    angle, shift = (np.asarray(v, dtype=np.float64) for v in WAN_CAMERA_MOTIONS[motion])
    poses = np.tile(np.eye(4), (frames, 1, 1))
    for i in range(frames):
        progress = i / frames * speed
        poses[i, :3, :3] = _rotation(progress * _ANGLE_UNIT * angle)
        poses[i, :3, 3] = progress * _SHIFT_UNIT * shift
    return poses


def _resample(path: CameraPath, frames: int) -> CameraPath:
    """The path stretched (or squeezed) in time to ``frames`` frames, first and last frames kept."""
    if frames == path.frames:
        return path
    at = np.linspace(0.0, path.frames - 1.0, frames) if frames > 1 else np.zeros(1)
    return CameraPath(**{f.name: np.interp(at, np.arange(path.frames), getattr(path, f.name)) for f in fields(path)})


def path_poses(path: CameraPath, width: int, height: int, frames: int | None = None,
               scale: float = 1.0) -> np.ndarray:
    """Camera-to-world poses ``[frames, 4, 4]`` of a camera path built for a ``width`` × ``height`` still.

    The path's homographies are those of a flat still seen by a moving camera, so each frame has an
    exact pose: the 2D content move (zoom ``s`` and turn about the pivot, shift) is the camera rolling
    against the turn, moving forward by ``1 − 1/s`` of the distance to the still and sideways to keep
    the pivot in place; the 3D move (``pan``/``tilt``/``roll``, ``cam_x``/``cam_y`` in pixels at the
    still, ``dolly`` in percent of its distance) follows in that camera's frame, at its scale. A
    field of view that changes from the first frame's counts as the forward move along the view axis
    that frames the still the same; lens ``distortion`` has no pose and is left out. Translations are
    in units of the starting distance to the still (the focal length in pixels of the first frame's
    field of view), times ``scale``. ``frames`` stretches the move over that many frames (first and
    last kept); ``None`` keeps the path's own.

    Raises:
        ValueError: ``frames`` below 1 or ``scale`` below 0.
    """
    if frames is not None and frames < 1:
        raise ValueError(f"`length` must be at least 1, got {frames}")
    if scale < 0:
        raise ValueError(f"`scale` must be 0 or more, got {scale}")
    path = _resample(path, path.frames if frames is None else frames)
    f0 = focal_length(width, path.fov[0])
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    poses = np.tile(np.eye(4), (path.frames, 1, 1))
    for i in range(path.frames):
        s, a = path.zoom[i], math.radians(path.angle[i])
        turn = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])  # content turn on screen
        pivot = np.array([path.pivot_x[i] * (width - 1), path.pivot_y[i] * (height - 1)]) - centre
        rot2d = camera_rotation(0.0, 0.0, math.degrees(a))
        pos2d = np.array([*(pivot - turn.T @ (pivot + [path.x[i], path.y[i]]) / s), f0 * (1.0 - 1.0 / s)])
        pos3d = np.array([path.cam_x[i], path.cam_y[i], f0 * path.dolly[i] / 100.0])
        rotation = rot2d @ camera_rotation(path.pan[i], path.tilt[i], path.roll[i])
        position = pos2d + rot2d @ pos3d / s
        lens = focal_length(width, path.fov[i]) / f0
        if not math.isclose(lens, 1.0):
            depth = f0 - position[2]  # to the still, along the starting view axis
            position = position + rotation[:, 2] * depth * (1.0 - 1.0 / lens)
        poses[i, :3, :3] = rotation
        poses[i, :3, 3] = position / f0 * scale
    return poses


def _intrinsics(width: int, height: int, fx: float, fy: float, cx: float, cy: float) -> tuple[float, ...]:
    """Pixel intrinsics: the focal lengths, given for the 16:9 pose frame, refitted to this aspect."""
    pose_ratio, ratio = _POSE_SIZE[0] / _POSE_SIZE[1], width / height
    if pose_ratio > ratio:
        fx = height * pose_ratio * fx / width
    else:
        fy = width / pose_ratio * fy / height
    return fx * width, fy * height, cx * width, cy * height


def plucker_rays(poses: np.ndarray, width: int, height: int, fx: float = 0.5, fy: float = 0.5, cx: float = 0.5,
                 cy: float = 0.5) -> torch.Tensor:
    """Each pixel's ray under each pose, relative to the first pose: ``[frames, height, width, 6]``
    float32, ``(o × d, d)`` with ``d`` the unit direction through the pixel's centre."""
    poses = np.asarray(poses, dtype=np.float64)
    relative = np.linalg.inv(poses[0]) @ poses
    relative[0] = np.eye(4)
    fxp, fyp, cxp, cyp = _intrinsics(width, height, fx, fy, cx, cy)
    v, u = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    dirs = np.stack([(u - cxp) / fxp, (v - cyp) / fyp, np.ones_like(u)], axis=-1).reshape(-1, 3)
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    rays = np.einsum("fij,pj->fpi", relative[:, :3, :3], dirs)
    origins = np.broadcast_to(relative[:, None, :3, 3], rays.shape)
    out = np.concatenate([np.cross(origins, rays), rays], axis=-1)
    return torch.from_numpy(out.reshape(len(poses), height, width, 6).astype(np.float32))


def fold_frames(rays: torch.Tensor) -> torch.Tensor:
    """``[frames, H, W, C]`` (frames = 4k + 1) → ``[1, 4·C, k + 1, H, W]``: the first frame counted
    four times, then each four frames' channels side by side (channel-major), one latent frame each."""
    frames, height, width, channels = rays.shape
    if (frames - 1) % 4:
        raise ValueError(f"`length` {frames} is not 4k + 1 frames (1, 5, 9, ..., 81)")
    clip = rays.permute(0, 3, 1, 2)
    clip = torch.cat([clip[:1].expand(4, -1, -1, -1), clip[1:]])
    groups = clip.reshape(-1, 4, channels, height, width).transpose(1, 2)
    return groups.reshape(-1, 4 * channels, height, width).transpose(0, 1)[None].contiguous()
