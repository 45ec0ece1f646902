"""SeedVR2's model-free pixel nodes: ``SeedVR2Preprocess`` pads resized frames to the shape the
model takes, ``SeedVR2PostProcessing`` crops the decoded frames back to the source and pulls
their colours to it. The padding and colour transfers live in :mod:`nodeloom.ops.seedvr2`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nodeloom.node_api import Combo, Image, Node, Output, Schema, ValidationError
from nodeloom.ops.seedvr2 import COLOR_METHODS, color_transfer, pad_video

__all__ = ["SeedVR2PostProcessing", "SeedVR2Preprocess"]

_CATEGORY = "image/upscaling"


class SeedVR2Preprocess(Node):
    """Pad a resized image for SeedVR2 model. Alpha channel is dropped. The node Post-Process SeedVR2
    Output re-applies it from the original resized image."""

    SCHEMA = Schema(
        "SeedVR2Preprocess", display_name="Pre-Process SeedVR2 Input", category=_CATEGORY,
        inputs=[Image("resized_images", tooltip="The resized image to process.")],
        outputs=[Output("IMAGE", "images", tooltip="[batch, frames (4n+1), height, width (multiples of 16), 3] for VAE encoding.")],
    )

    @classmethod
    def execute(cls, resized_images: torch.Tensor) -> tuple[torch.Tensor]:
        return (pad_video(resized_images),)


def _as_video(images: torch.Tensor, name: str) -> tuple[torch.Tensor, bool]:
    if images.ndim == 4:
        return images[None], True
    if images.ndim == 5:
        return images, False
    raise ValidationError(f"`{name}` must be a 4-D or 5-D IMAGE tensor, got shape {tuple(images.shape)}")


def _split_batch(decoded: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """A decode that folded several videos into one long one is split back by the reference's batch."""
    ref_b, ref_t = reference.shape[:2]
    if decoded.shape[0] != 1 or decoded.shape[1] % ref_b:
        return decoded
    per_video = decoded.shape[1] // ref_b
    if per_video < ref_t:
        return decoded
    return decoded.reshape(ref_b, per_video, *decoded.shape[2:])


def _resize(video: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if video.shape[2:4] == (height, width):
        return video
    b, t = video.shape[:2]
    flat = video.reshape(b * t, *video.shape[2:]).movedim(-1, 1).float()
    out = F.interpolate(flat, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
    return out.movedim(1, -1).reshape(b, t, height, width, -1)


class SeedVR2PostProcessing(Node):
    """Align the generated image with the original resized image and apply color correction."""

    SCHEMA = Schema(
        "SeedVR2PostProcessing", display_name="Post-Process SeedVR2 Output", category=_CATEGORY,
        inputs=[
            Image("images", tooltip="The generated frames to post-process."),
            Image("original_resized_images",
                  tooltip="The resized input frames as they were before pre-processing; the reference for "
                          "alignment and colour."),
            Combo("color_correction_method", [*COLOR_METHODS, "none"], default="lab",
                  tooltip="How the output's colours are matched to the reference. lab: in CIELAB space, "
                          "keeping detail (closest match). wavelet: takes the reference's coarse colour and keeps the "
                          "upscaled fine detail. adain: matches each channel's mean and std (quickest; a global "
                          "shift). none: no colour matching, only the geometry alignment."),
        ],
        outputs=[Output("IMAGE", "images", tooltip="The aligned, colour-corrected frames (even height and width).")],
    )

    @classmethod
    def execute(cls, images: torch.Tensor, original_resized_images: torch.Tensor,
                color_correction_method: str) -> tuple[torch.Tensor]:
        if color_correction_method not in (*COLOR_METHODS, "none"):
            raise ValidationError(f"`color_correction_method` must be one of {[*COLOR_METHODS, 'none']}, "
                                  f"got {color_correction_method!r}")
        reference, alpha = original_resized_images, None
        if reference.shape[-1] == 4:
            reference, alpha = reference[..., :3], reference[..., 3:4]
        decoded, was_frames = _as_video(images, "images")
        ref, _ = _as_video(reference, "original_resized_images")
        decoded = _split_batch(decoded, ref)
        b, t = min(decoded.shape[0], ref.shape[0]), min(decoded.shape[1], ref.shape[1])
        h, w = min(decoded.shape[2], ref.shape[2]), min(decoded.shape[3], ref.shape[3])
        out = decoded[:b, :t, :h, :w]
        if color_correction_method != "none":
            target = _resize(ref[:b, :t], h, w)
            flat = out.reshape(b * t, h, w, -1).movedim(-1, 1).float() * 2 - 1
            style = target.reshape(b * t, h, w, -1).movedim(-1, 1).float() * 2 - 1
            fixed = color_transfer(flat[:, :3], style[:, :3], color_correction_method)
            out = ((fixed + 1) / 2).clamp(0, 1).movedim(1, -1).reshape(b, t, h, w, 3)
        if alpha is not None:
            a, _ = _as_video(alpha, "original_resized_images")
            out = torch.cat([out, a[:b, :t, :h, :w].to(out.dtype)], dim=-1)
        out = out[:, :, : h - h % 2, : w - w % 2]
        if was_frames:
            out = out.reshape(-1, *out.shape[2:])
        return (out,)
