"""Camera motions as Plücker ray embeddings, the camera input of Wan Fun camera models.

:func:`motion_poses` turns one of the Fun camera presets (pan, zoom, roll, with a speed) into
camera-to-world poses, one per frame; :func:`plucker_rays` gives each pixel's ray under each
pose as the 6-vector ``(o × d, d)`` (moment, then unit direction) — the embedding CameraCtrl
introduced and the Wan Fun camera models were trained on; :func:`fold_frames` folds a clip's
per-frame embeddings four frames to a latent frame, as the models read them. Pure numpy/torch;
imports no node, model or engine.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["WAN_CAMERA_MOTIONS", "fold_frames", "motion_poses", "plucker_rays"]

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
