"""ComfyUI's Wan 2.2 5B and Wan Fun control nodes: Wan22ImageToVideoLatent (the 48-channel latent of
the Wan 2.2 VAE, a start image held in its first frames by the noise mask), Wan22FunControlToVideo
and WanFunControlToVideo (a control video's latent, and a start image's, as the Fun control models'
extra input channels) — exact ids, inputs, defaults and categories. LATENT values hold raw VAE
latents, as the Wan pack's other nodes; frames the nodes leave empty hold the latent of a zero
(normalised) frame, the VAE's mean. Model code is :mod:`nodeloom.diffusion.families.wan`.
"""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.node_api import IO, MAX_RESOLUTION, Image, Int, Node, Output, Schema, ValidationError, Vae
from nodeloom.nodes.diffusion.wan_nodes import (
    _OUTPUTS,
    _cond_inputs,
    _encode,
    _fit_frames,
    _size_inputs,
    _vision,
    latent_frames,
    with_values,
)

__all__ = ["Wan22FunControlToVideo", "Wan22ImageToVideoLatent", "WanFunControlToVideo"]


def _video_vae(vae: Any, node: str) -> tuple[int, int]:
    """``(latent channels, spatial scale)`` of a Wan VAE, or an error naming the input."""
    if not getattr(vae, "is_video", False):
        raise ValidationError(f"{node}: `vae` must be a Wan video VAE (wan2.2_vae or wan_2.1_vae); an image VAE"
                              " cannot encode video frames")
    return int(vae.latent_channels), int(vae.spacial_compression_encode())


def _mean_latent(batch: int, channels: int, frames: int, height: int, width: int) -> torch.Tensor:
    """A raw latent whose every frame is the latent of a zero (normalised) frame: the VAE's mean."""
    from nodeloom.diffusion.families.wan import latent_stats

    mean, _ = latent_stats(channels)
    return mean.expand(batch, channels, frames, height, width).clone()


class Wan22ImageToVideoLatent(Node):
    """The Wan 2.2 5B's video latent (48 channels, 1/16 of the size): with a start image, its latent
    fills the first frames and the noise mask keeps them (the model reads them as clean)."""

    SCHEMA = Schema(
        "Wan22ImageToVideoLatent", display_name="Wan22ImageToVideoLatent", category="conditioning/inpaint",
        inputs=[Vae("vae", tooltip="The Wan 2.2 VAE (wan2.2_vae), to encode the start image."),
                Int("width", 1280, min=32, max=MAX_RESOLUTION, step=32, tooltip="Video width in pixels."),
                Int("height", 704, min=32, max=MAX_RESOLUTION, step=32, tooltip="Video height in pixels."),
                Int("length", 49, min=1, max=MAX_RESOLUTION, step=4,
                    tooltip="Number of frames (4k + 1: 1, 5, 9, ..., 121)."),
                Int("batch_size", 1, min=1, max=4096, tooltip="How many videos to generate."),
                Image("start_image", optional=True, tooltip="The first frame(s) of the video.")],
        outputs=[Output(IO.LATENT, "LATENT")],
    )

    @classmethod
    def execute(cls, vae: Any, width: int, height: int, length: int, batch_size: int,
                start_image: torch.Tensor | None = None) -> tuple[Any, ...]:
        channels, scale = _video_vae(vae, "Wan22ImageToVideoLatent")
        if channels != 48:
            raise ValidationError(f"Wan22ImageToVideoLatent: `vae` has a {channels}-channel latent; the Wan 2.2 5B"
                                  " takes the Wan 2.2 VAE's 48 channels (wan2.2_vae.safetensors)")
        frames = latent_frames(length)
        if start_image is None:
            return ({"samples": torch.zeros(batch_size, 48, frames, height // scale, width // scale)},)
        latent = _mean_latent(1, 48, frames, height // scale, width // scale)
        encoded = _encode(vae, _fit_frames(start_image[:length], width, height))
        known = min(encoded.shape[2], frames)
        latent[:, :, :known] = encoded[:, :, :known]
        mask = torch.ones(1, 1, frames, latent.shape[-2], latent.shape[-1])
        mask[:, :, :known] = 0.0
        return ({"samples": latent.repeat(batch_size, 1, 1, 1, 1), "noise_mask": mask.repeat(batch_size, 1, 1, 1, 1)},)


def _control_latent(vae: Any, width: int, height: int, length: int, batch_size: int,
                    node: str) -> tuple[int, int, torch.Tensor, torch.Tensor]:
    """``(channels, scale, empty latent, conditioning latent)``: the latter two latents side by side
    (control, then start image), each frame the VAE's mean until the nodes fill it."""
    channels, scale = _video_vae(vae, node)
    frames = latent_frames(length)
    h, w = height // scale, width // scale
    latent = torch.zeros(batch_size, channels, frames, h, w)
    return channels, scale, latent, _mean_latent(batch_size, channels, frames, h, w).repeat(1, 2, 1, 1, 1)


def _put(concat: torch.Tensor, vae: Any, frames: torch.Tensor, length: int, width: int, height: int,
         channels: slice) -> None:
    """Encode ``frames`` (the first ``length``, fitted to the size) into ``concat``'s ``channels``, from frame 0."""
    encoded = _encode(vae, _fit_frames(frames[:length], width, height))
    known = min(encoded.shape[2], concat.shape[2])
    concat[:, channels, :known] = encoded[:, :, :known]


class WanFunControlToVideo(Node):
    """Wan 2.1 Fun control: the control video's latent and the start image's side by side as the
    model's extra input channels (no mask); CLIP-vision states of the start image when given."""

    SCHEMA = Schema(
        "WanFunControlToVideo", display_name="WanFunControlToVideo", category="conditioning/video_models",
        inputs=[*_cond_inputs(), *_size_inputs(), _vision("clip_vision_output"),
                Image("start_image", optional=True, tooltip="The first frame(s) of the video."),
                Image("control_video", optional=True, tooltip="Frames to follow (depth, pose, edges).")],
        outputs=_OUTPUTS,
    )

    @classmethod
    def execute(cls, positive: list[Any], negative: list[Any], vae: Any, width: int, height: int, length: int,
                batch_size: int, start_image: torch.Tensor | None = None, clip_vision_output: Any = None,
                control_video: torch.Tensor | None = None) -> tuple[Any, ...]:
        channels, _, latent, concat = _control_latent(vae, width, height, length, batch_size, "WanFunControlToVideo")
        if start_image is not None:
            _put(concat, vae, start_image, length, width, height, slice(channels, None))
        if control_video is not None:
            _put(concat, vae, control_video, length, width, height, slice(0, channels))
        values: dict[str, Any] = {"concat_latent_image": concat}
        if clip_vision_output is not None:
            values["clip_vision_output"] = clip_vision_output
        return (with_values(positive, values), with_values(negative, values), {"samples": latent})


class Wan22FunControlToVideo(Node):
    """Wan 2.2 Fun control (5B with the Wan 2.2 VAE, or 14B): the control video's latent, a mask and
    an empty start latent as the model's extra channels; a reference image whose latent the model
    reads as an extra first frame."""

    SCHEMA = Schema(
        "Wan22FunControlToVideo", display_name="Wan22FunControlToVideo", category="conditioning/video_models",
        inputs=[*_cond_inputs(), *_size_inputs(),
                Image("ref_image", optional=True, tooltip="An image whose subject and look the video takes."),
                Image("control_video", optional=True, tooltip="Frames to follow (depth, pose, edges).")],
        outputs=_OUTPUTS,
    )

    @classmethod
    def execute(cls, positive: list[Any], negative: list[Any], vae: Any, width: int, height: int, length: int,
                batch_size: int, ref_image: torch.Tensor | None = None,
                control_video: torch.Tensor | None = None) -> tuple[Any, ...]:
        channels, _, latent, concat = _control_latent(vae, width, height, length, batch_size, "Wan22FunControlToVideo")
        if control_video is not None:
            _put(concat, vae, control_video, length, width, height, slice(0, channels))
        # every video frame is to be generated: the mask of known frames is empty
        mask = torch.ones(1, 4, latent.shape[2], latent.shape[-2], latent.shape[-1])
        values: dict[str, Any] = {"concat_latent_image": concat, "concat_mask": mask, "concat_mask_index": channels}
        pos, neg = with_values(positive, values), with_values(negative, values)
        if ref_image is not None:
            ref = _encode(vae, _fit_frames(ref_image[:1], width, height))
            pos = [[c, {**d, "reference_latents": [*d.get("reference_latents", []), ref]}] for c, d in pos]
            neg = [[c, {**d, "reference_latents": [*d.get("reference_latents", []), ref]}] for c, d in neg]
        return (pos, neg, {"samples": latent})
