"""ComfyUI's Wan Fun camera nodes: WanCameraEmbedding (a preset camera motion as the Plücker ray
embedding the Fun camera models read, ``WAN_CAMERA_EMBEDDING``) and WanCameraImageToVideo (a start
image and that motion as the model's conditioning) — exact ids, inputs, defaults and categories —
and nodeloom's CameraToWanEmbedding (one of our camera moves, ``CAMERA_MOVE``, as that embedding).
The rays are :mod:`nodeloom.ops.camera_plucker`'s; the model's adapter is
:mod:`nodeloom.diffusion.families.wan_camera`."""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.node_api import IO, MAX_RESOLUTION, Combo, Custom, Float, Int, Node, Output, Schema, ValidationError
from nodeloom.nodes.diffusion.wan_nodes import (
    _OUTPUTS,
    _cond_inputs,
    _encode,
    _fit_frames,
    _frames,
    _size_inputs,
    _vision,
    latent_frames,
    with_values,
)
from nodeloom.ops.camera_plucker import WAN_CAMERA_MOTIONS, fold_frames, motion_poses, path_poses, plucker_rays

__all__ = ["CameraToWanEmbedding", "WanCameraEmbedding", "WanCameraImageToVideo"]

CAMERA_TYPE = "WAN_CAMERA_EMBEDDING"


def _intrinsic_inputs() -> list[Float]:
    return [_unit("fx", 1e-9, "Focal length across, as a fraction of the width."),
            _unit("fy", 1e-9, "Focal length down, as a fraction of the height."),
            _unit("cx", 0.01, "Principal point across, as a fraction of the width."),
            _unit("cy", 0.01, "Principal point down, as a fraction of the height.")]


def _embedding(poses: Any, width: int, height: int, length: int, fx: float, fy: float, cx: float,
               cy: float) -> tuple[Any, ...]:
    if fx <= 0 or fy <= 0:
        raise ValidationError(f"`fx` and `fy` must be above 0 (a focal length), got {fx} and {fy}")
    return fold_frames(plucker_rays(poses, width, height, fx, fy, cx, cy)), width, height, length


_EMBEDDING_OUT = [Output(CAMERA_TYPE, "camera_embedding"), Output(IO.INT, "width"), Output(IO.INT, "height"),
                  Output(IO.INT, "length")]


def _unit(name: str, step: float, tooltip: str) -> Float:
    return Float(name, 0.5, min=0.0, max=1.0, step=step, optional=True, tooltip=tooltip)


class WanCameraEmbedding(Node):
    """A preset camera motion (pan, zoom, roll) over the clip as Plücker rays, four frames to a
    latent frame: the camera input of the Wan Fun camera models."""

    SCHEMA = Schema(
        "WanCameraEmbedding", display_name="WanCameraEmbedding", category="camera",
        inputs=[Combo("camera_pose", list(WAN_CAMERA_MOTIONS), default="Static", tooltip="The camera motion."),
                *_size_inputs()[:3],
                Float("speed", 1.0, min=0.0, max=10.0, step=0.1, optional=True,
                      tooltip="How far the camera moves over the clip (1: the preset's full motion)."),
                *_intrinsic_inputs()],
        outputs=_EMBEDDING_OUT,
    )

    @classmethod
    def execute(cls, camera_pose: str, width: int, height: int, length: int, speed: float = 1.0, fx: float = 0.5,
                fy: float = 0.5, cx: float = 0.5, cy: float = 0.5) -> tuple[Any, ...]:
        latent_frames(length)  # a clear error for a frame count the video model cannot take
        return _embedding(motion_poses(camera_pose, length, speed), width, height, length, fx, fy, cx, cy)


class CameraToWanEmbedding(Node):
    """One of our camera moves (a Deforum schedule, semantic move, Bezier path or a storyboard
    shot's camera) as the Plücker ray embedding of WanCameraEmbedding, for the Wan Fun camera
    models: each frame's pose is the exact camera that renders the move over a flat still (zoom →
    forward, shifts → sideways, pan/tilt/roll → yaw/pitch/roll), stretched over ``length`` frames.
    Translations are in ``scale`` pose units per starting distance to the still (the presets'
    ``Zoom In`` moves 3 units at speed 1, ``Pan Left`` 1.5; at the default 10 the semantic ``zoom
    in`` moves 2.9 and ``horizontal`` −5 moves 1.7); the rays use the same ``fx``…``cy``."""

    SCHEMA = Schema(
        "CameraToWanEmbedding", display_name="Camera Move to Wan Embedding", category="camera",
        inputs=[Custom("CAMERA_MOVE", "camera", tooltip="The camera move (Camera Move (Semantic), Camera Schedule,"
                       " Camera Path (Bezier), a storyboard shot's camera)."),
                *_size_inputs()[:3],
                Float("scale", 10.0, min=0.0, max=100.0, step=0.01, optional=True,
                      tooltip="Pose units per starting distance to the still: how far a move reads to the model."),
                *_intrinsic_inputs()],
        outputs=_EMBEDDING_OUT,
    )

    @classmethod
    def execute(cls, camera: Any, width: int, height: int, length: int, scale: float = 10.0, fx: float = 0.5,
                fy: float = 0.5, cx: float = 0.5, cy: float = 0.5) -> tuple[Any, ...]:
        latent_frames(length)
        if not callable(getattr(camera, "build", None)):
            raise ValidationError(f"`camera` must be a camera move (CAMERA_MOVE), got {type(camera).__name__}")
        poses = path_poses(camera.build(width, height), width, height, frames=length, scale=scale)
        return _embedding(poses, width, height, length, fx, fy, cx, cy)


class WanCameraImageToVideo(Node):
    """Wan Fun camera image-to-video: an empty video latent, the start frames encoded into the
    conditioning (rest the VAE's mean, a mask of the known frames), and the camera motion."""

    SCHEMA = Schema(
        "WanCameraImageToVideo", display_name="WanCameraImageToVideo", category="conditioning/video_models",
        inputs=[*_cond_inputs(), *_size_inputs(), _vision("clip_vision_output"), _frames(),
                Custom(CAMERA_TYPE, "camera_conditions", optional=True, tooltip="WanCameraEmbedding's camera motion.")],
        outputs=_OUTPUTS,
    )

    @classmethod
    def execute(cls, positive: list[Any], negative: list[Any], vae: Any, width: int, height: int, length: int,
                batch_size: int, start_image: torch.Tensor | None = None, clip_vision_output: Any = None,
                camera_conditions: torch.Tensor | None = None) -> tuple[Any, ...]:
        frames = latent_frames(length)
        latent = torch.zeros(batch_size, 16, frames, height // 8, width // 8)
        values: dict[str, Any] = {}
        if start_image is not None:
            from nodeloom.diffusion.families.wan import latent_stats

            start = _fit_frames(start_image[:length], width, height)
            concat = latent_stats(16)[0].expand(batch_size, 16, frames, height // 8, width // 8).clone()
            encoded = _encode(vae, start)
            known = min(encoded.shape[2], frames)
            concat[:, :, :known] = encoded[:, :, :known]
            mask = torch.ones(1, 1, frames * 4, height // 8, width // 8)
            mask[:, :, : start.shape[0] + 3] = 0.0
            mask = mask.view(1, frames, 4, height // 8, width // 8).transpose(1, 2)
            values.update(concat_latent_image=concat, concat_mask=mask)
        if camera_conditions is not None:
            if tuple(camera_conditions.shape[2:]) != (frames, height, width):
                raise ValidationError(f"`camera_conditions` covers {tuple(camera_conditions.shape[2:])} (latent frames,"
                                      f" height, width) but the video is {(frames, height, width)}: connect"
                                      " WanCameraEmbedding's width, height and length outputs here")
            values["camera_conditions"] = camera_conditions
        if clip_vision_output is not None:
            values["clip_vision_output"] = clip_vision_output
        return (with_values(positive, values), with_values(negative, values), {"samples": latent})
