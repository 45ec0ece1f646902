"""ComfyUI's HunyuanVideo 1.5 nodes: EmptyHunyuanVideo15Latent and HunyuanVideo15ImageToVideo —
exact ids, inputs, defaults and categories. They build the 32-channel video LATENT
``[B,32,1+(T−1)/4,H/16,W/16]`` and attach the start frames' latent and the mask of known latent
frames (and the SigLIP image states) that the HunyuanVideo 1.5 model adapter reads."""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.node_api import (
    IO,
    MAX_RESOLUTION,
    Conditioning,
    Custom,
    Image,
    Int,
    Node,
    Output,
    Schema,
    ValidationError,
    Vae,
)
from nodeloom.nodes.diffusion._common import device_guard
from nodeloom.nodes.diffusion.wan_nodes import latent_frames, with_values
from nodeloom.ops.resample import upscale

__all__ = ["EmptyHunyuanVideo15Latent", "HunyuanVideo15ImageToVideo", "empty_latent"]

_CHANNELS = 32
_SCALE = 16


def empty_latent(batch: int, length: int, height: int, width: int) -> torch.Tensor:
    """Zeros ``[batch, 32, 1+(length−1)/4, height/16, width/16]`` (raises for a length that is not 4k + 1)."""
    return torch.zeros(batch, _CHANNELS, latent_frames(length), height // _SCALE, width // _SCALE)


def _size_inputs(length: int) -> list[Any]:
    return [Int("width", 848, min=16, max=MAX_RESOLUTION, step=16, tooltip="Video width in pixels."),
            Int("height", 480, min=16, max=MAX_RESOLUTION, step=16, tooltip="Video height in pixels."),
            Int("length", length, min=1, max=MAX_RESOLUTION, step=4, tooltip="Number of frames (4k + 1: 1, 5, 9, ...)."),
            Int("batch_size", 1, min=1, max=4096, tooltip="How many videos to generate.")]


class EmptyHunyuanVideo15Latent(Node):
    """An empty HunyuanVideo 1.5 video latent: 32 channels, 16× smaller in space, a latent frame per 4 frames."""

    SCHEMA = Schema(
        "EmptyHunyuanVideo15Latent", display_name="Empty HunyuanVideo 1.5 Latent", category="latent/video",
        inputs=_size_inputs(25),
        outputs=[Output(IO.LATENT, "LATENT")],
    )

    @classmethod
    def execute(cls, width: int, height: int, length: int, batch_size: int = 1) -> tuple[Any, ...]:
        return ({"samples": empty_latent(batch_size, length, height, width)},)


def _encode(vae: Any, frames: torch.Tensor) -> torch.Tensor:
    if getattr(vae, "latent_channels", None) != _CHANNELS or not getattr(vae, "is_video", False):
        raise ValidationError("`vae` must be the HunyuanVideo 1.5 VAE (hunyuanvideo15_vae_fp16.safetensors, a"
                              " 32-channel video VAE); it encodes the start frames the model is conditioned on")
    with device_guard() as mgr:
        return vae.encode(frames, mgr)


class HunyuanVideo15ImageToVideo(Node):
    """HunyuanVideo 1.5 image-to-video: an empty video latent, the start frames' latent (the rest
    zeros) with a mask of the known latent frames, and the SigLIP image states, in the conditioning."""

    SCHEMA = Schema(
        "HunyuanVideo15ImageToVideo", display_name="HunyuanVideo15ImageToVideo", category="conditioning/video_models",
        inputs=[Conditioning("positive", tooltip="Positive conditioning (the prompt)."),
                Conditioning("negative", tooltip="Negative conditioning."),
                Vae("vae", tooltip="The HunyuanVideo 1.5 VAE that encodes the start frames."), *_size_inputs(33),
                Image("start_image", optional=True, tooltip="The first frame(s) of the video."),
                Custom("CLIP_VISION_OUTPUT", "clip_vision_output", optional=True,
                       tooltip="CLIPVisionEncode of the start image (sigclip_vision_patch14_384).")],
        outputs=[Output(IO.CONDITIONING, "positive"), Output(IO.CONDITIONING, "negative"), Output(IO.LATENT, "latent")],
    )

    @classmethod
    def execute(cls, positive: list[Any], negative: list[Any], vae: Any, width: int, height: int, length: int,
                batch_size: int, start_image: torch.Tensor | None = None,
                clip_vision_output: Any = None) -> tuple[Any, ...]:
        latent = empty_latent(batch_size, length, height, width)
        values: dict[str, Any] = {}
        if start_image is not None:
            # resized and centre-cropped to the video's size, as ComfyUI's common_upscale does
            start = upscale(start_image[:length, ..., :3].movedim(-1, 1), width, height, "bilinear", "center").movedim(1, -1)
            encoded = _encode(vae, start)
            image = torch.zeros(batch_size, _CHANNELS, *latent.shape[2:])
            known = min(encoded.shape[2], latent.shape[2])
            image[:, :, :known] = encoded[:, :, :known]
            mask = torch.ones(1, 1, *latent.shape[2:])
            mask[:, :, : (start.shape[0] - 1) // 4 + 1] = 0.0
            values.update(concat_latent_image=image, concat_mask=mask)
        if clip_vision_output is not None:
            values["clip_vision_output"] = clip_vision_output
        return (with_values(positive, values), with_values(negative, values), {"samples": latent})
