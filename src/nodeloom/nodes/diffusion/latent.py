"""Latent nodes: EmptyLatentImage, LatentUpscale, LatentUpscaleBy, SetLatentNoiseMask."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from nodeloom.node_api import IO, MAX_RESOLUTION, Combo, Float, Int, Latent, Mask, Node, Output, Schema
from nodeloom.ops.resample import bislerp

__all__ = ["EmptyLatentImage", "LatentUpscale", "LatentUpscaleBy", "SetLatentNoiseMask", "upscale_latent"]

UPSCALE_METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "bislerp"]
CROP_METHODS = ["disabled", "center"]


def upscale_latent(samples: torch.Tensor, width: int, height: int, method: str, crop: str) -> torch.Tensor:
    """Resize ``[B,C,h,w]`` latents to ``height``×``width`` (latent pixels), optionally center-cropping to the aspect."""
    if crop == "center":
        old_w, old_h = samples.shape[3], samples.shape[2]
        old_aspect, new_aspect = old_w / old_h, width / height
        x = y = 0
        if old_aspect > new_aspect:
            x = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
        elif old_aspect < new_aspect:
            y = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
        samples = samples[:, :, y:old_h - y, x:old_w - x]
    if method == "bislerp":
        return bislerp(samples, width, height)
    if method in ("bilinear", "bicubic"):
        return F.interpolate(samples, size=(height, width), mode=method, align_corners=False)
    return F.interpolate(samples, size=(height, width), mode=method)


class EmptyLatentImage(Node):
    """A batch of empty latents for sampling to start from."""

    SCHEMA = Schema(
        "EmptyLatentImage", display_name="Empty Latent Image", category="latent",
        inputs=[Int("width", 512, min=16, max=MAX_RESOLUTION, step=8, tooltip="The width of the images, in pixels."),
                Int("height", 512, min=16, max=MAX_RESOLUTION, step=8, tooltip="The height of the images, in pixels."),
                Int("batch_size", 1, min=1, max=4096, tooltip="How many latents to make at once.")],
        outputs=[Output(IO.LATENT, "LATENT", tooltip="The empty latent image batch.")],
    )

    @classmethod
    def execute(cls, width: int, height: int, batch_size: int = 1) -> tuple[Any, ...]:
        return ({"samples": torch.zeros([batch_size, 4, height // 8, width // 8])},)


class LatentUpscale(Node):
    """Resize latents to a pixel size (0 for one side keeps the aspect ratio)."""

    SCHEMA = Schema(
        "LatentUpscale", display_name="Upscale Latent", category="latent",
        inputs=[Latent("samples", tooltip="The latents to resize."),
                Combo("upscale_method", UPSCALE_METHODS, tooltip="Interpolation method."),
                Int("width", 512, min=0, max=MAX_RESOLUTION, step=8, tooltip="Target width in pixels (0 = keep aspect)."),
                Int("height", 512, min=0, max=MAX_RESOLUTION, step=8, tooltip="Target height in pixels (0 = keep aspect)."),
                Combo("crop", CROP_METHODS, tooltip="Center-crop to the target aspect first.")],
        outputs=[Output(IO.LATENT, "LATENT")],
    )

    @classmethod
    def execute(cls, samples: dict[str, Any], upscale_method: str, width: int, height: int, crop: str) -> tuple[Any, ...]:
        if width == 0 and height == 0:
            return (samples,)
        lat = samples["samples"]
        if width == 0:
            height = max(64, height)
            width = max(64, round(lat.shape[-1] * height / lat.shape[-2]))
        elif height == 0:
            width = max(64, width)
            height = max(64, round(lat.shape[-2] * width / lat.shape[-1]))
        else:
            width, height = max(64, width), max(64, height)
        out = dict(samples)
        out["samples"] = upscale_latent(lat, width // 8, height // 8, upscale_method, crop)
        return (out,)


class LatentUpscaleBy(Node):
    """Resize latents by a factor."""

    SCHEMA = Schema(
        "LatentUpscaleBy", display_name="Upscale Latent By", category="latent",
        inputs=[Latent("samples", tooltip="The latents to resize."),
                Combo("upscale_method", UPSCALE_METHODS, tooltip="Interpolation method."),
                Float("scale_by", 1.5, min=0.01, max=8.0, step=0.01, tooltip="Scale factor.")],
        outputs=[Output(IO.LATENT, "LATENT")],
    )

    @classmethod
    def execute(cls, samples: dict[str, Any], upscale_method: str, scale_by: float) -> tuple[Any, ...]:
        lat = samples["samples"]
        out = dict(samples)
        out["samples"] = upscale_latent(lat, round(lat.shape[-1] * scale_by), round(lat.shape[-2] * scale_by),
                                        upscale_method, "disabled")
        return (out,)


class SetLatentNoiseMask(Node):
    """Restrict sampling to the masked area (1 = regenerate); works with any checkpoint."""

    SCHEMA = Schema(
        "SetLatentNoiseMask", display_name="Set Latent Noise Mask", category="latent/inpaint",
        inputs=[Latent("samples", tooltip="The latents to mask."), Mask("mask", tooltip="Area to regenerate.")],
        outputs=[Output(IO.LATENT, "LATENT")],
    )

    @classmethod
    def execute(cls, samples: dict[str, Any], mask: torch.Tensor) -> tuple[Any, ...]:
        out = dict(samples)
        out["noise_mask"] = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1]))
        return (out,)
