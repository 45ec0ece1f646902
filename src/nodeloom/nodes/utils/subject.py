"""Model-free image preparation nodes of ComfyUI's core: cropping an image to its mask's subject
(``ImageCropToMask``) and matching one image's colours to another's (``ColorTransfer``).

The colour statistics and transforms live in :mod:`nodeloom.ops.color_transfer`; inputs are
never mutated.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from nodeloom.node_api import Combo, Custom, Float, Image, Int, Mask, Node, Output, Schema, ValidationError
from nodeloom.ops import resample
from nodeloom.ops.color_transfer import METHODS, transfer
from nodeloom.ops.mask import bounding_box, grow

__all__ = ["ColorTransfer", "ImageCropToMask"]

log = logging.getLogger(__name__)


def _hex_rgb(color: str) -> torch.Tensor:
    text = color.strip().lstrip("#") if isinstance(color, str) else ""
    if len(text) not in (6, 8) or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise ValidationError(f"`background` must look like #RRGGBB, got {color!r}")
    return torch.tensor([int(text[i:i + 2], 16) / 255.0 for i in (0, 2, 4)])


def _masks_for(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    m = masks if masks.ndim == 3 else masks.reshape(-1, masks.shape[-2], masks.shape[-1])
    if m.shape[0] not in (1, images.shape[0]):
        raise ValidationError(f"`masks` holds {m.shape[0]} masks for {images.shape[0]} images; give one or one per image")
    if m.shape[1:] != images.shape[1:3]:
        m = resample.upscale_image(m[..., None].float(), images.shape[2], images.shape[1], "bilinear")[..., 0]
    return m.float().clamp(0, 1).expand(images.shape[0], -1, -1)


def _subject_mask(mask: torch.Tensor) -> torch.Tensor:
    """The mask with its subject as foreground: an inverted mask (foreground along the border,
    background in the centre) or an empty one is flipped."""
    h, w = mask.shape
    border = torch.cat([mask[0], mask[-1], mask[:, 0], mask[:, -1]]).mean()
    centre = mask[h // 4:h - h // 4 or h, w // 4:w - w // 4 or w].mean()
    if (border > 0.5 and centre < border) or float(mask.max()) <= 0.5:
        return 1.0 - mask
    return mask


def _crop_box(box: tuple[int, int, int, int] | None, w: int, h: int, aspect: float, pad: float) -> tuple[int, int, int, int]:
    bx, by, bw, bh = box if box is not None else (0, 0, w, h)
    cw = max(bw, bh * aspect) * pad
    ch = cw / aspect
    cx, cy = bx + bw / 2, by + bh / 2
    return round(cx - cw / 2), round(cy - ch / 2), max(1, round(cw)), max(1, round(ch))


class ImageCropToMask(Node):
    """Crop each image to its mask's subject, centred over a solid background, at a fixed size."""

    SCHEMA = Schema(
        "ImageCropToMask",
        display_name="Crop Image to Mask",
        category="image/transform",
        inputs=[
            Image("images", tooltip="The image or batch of images to crop."),
            Mask("masks", tooltip="The subject's mask: one for all images, or one per image."),
            Int("width", 1024, min=64, max=4096, step=8, tooltip="Output width in pixels."),
            Int("height", 1024, min=64, max=4096, step=8, tooltip="Output height in pixels."),
            Float("pad_factor", 1.0, min=1.0, max=2.0, step=0.01, tooltip="Scale applied to the mask's bounding box to leave room around the subject."),
            Int("grow_mask", 0, min=-32, max=32, step=1, tooltip="Pixels to dilate (positive) or erode (negative) the mask by before the crop."),
            Custom("COLOR", "background", default="#000000", tooltip="Colour filled in wherever the mask hides the image."),
        ],
        outputs=[Output("IMAGE", "images", tooltip="The subject over the background, cropped and resized to width × height.")],
    )

    @classmethod
    def execute(cls, images: torch.Tensor, masks: torch.Tensor, width: int, height: int, pad_factor: float,
                grow_mask: int, background: str) -> tuple[torch.Tensor]:
        bg = _hex_rgb(background)
        rgb = images[..., :3].float()
        out = []
        for image, raw in zip(rgb, _masks_for(images, masks)):
            mask = grow(_subject_mask(raw)[None], int(grow_mask))[0].clamp(0, 1)
            box = bounding_box(mask[None])[0]
            if box is None:
                log.warning("ImageCropToMask: the mask is empty either way round; the whole image is used")
            h, w = mask.shape
            x, y, cw, ch = _crop_box(box, w, h, width / height, float(pad_factor))
            subject = image * mask[..., None] + bg * (1.0 - mask[..., None])
            canvas = bg.expand(ch, cw, 3).clone()
            sx0, sy0, sx1, sy1 = max(x, 0), max(y, 0), min(x + cw, w), min(y + ch, h)
            if sx1 > sx0 and sy1 > sy0:
                canvas[sy0 - y:sy1 - y, sx0 - x:sx1 - x] = subject[sy0:sy1, sx0:sx1]
            out.append(resample.upscale_image(canvas[None], width, height, "bilinear")[0])
        return (torch.stack(out).clamp(0, 1),)


class ColorTransfer(Node):
    """Match the colors of one image to another using various algorithms."""

    SCHEMA = Schema(
        "ColorTransfer",
        display_name="Transfer Color",
        category="image/postprocessing",
        inputs=[
            Image("image_target", tooltip="The image or batch whose colours get changed."),
            Image("image_ref", tooltip="The image or batch whose colours are copied."),
            Combo("method", list(METHODS), default="reinhard_lab",
                  tooltip="reinhard_lab: match mean and spread in Lab; mkl_lab: match the Lab covariance; "
                          "histogram: match each RGB channel's distribution."),
            Custom("COMFY_DYNAMICCOMBO_V3", "source_stats",
                   tooltip="per_frame: each frame matched to image_ref individually. uniform: pool stats across all "
                           "source frames as baseline, match to image_ref. target_frame: use one chosen frame as the "
                           "baseline for the transform to image_ref, applied uniformly to all frames (preserves "
                           "relative differences)",
                   options=[{"key": "per_frame", "inputs": {"required": {}}},
                            {"key": "uniform", "inputs": {"required": {}}},
                            {"key": "target_frame", "inputs": {"required": {"target_index": ["INT", {
                                "default": 0, "min": 0, "max": 10000,
                                "tooltip": "The frame whose colours are the baseline (clipped to the last)."}]}}}]),
            Float("strength", 1.0, min=0.0, max=10.0, step=0.01, tooltip="1 applies the full transform, 0 returns the original."),
        ],
        outputs=[Output("IMAGE", "image", tooltip="The target image(s) with the reference's colours.")],
    )

    @classmethod
    def execute(cls, image_target: torch.Tensor, image_ref: torch.Tensor | None, method: str, source_stats: str,
                strength: float, **options: Any) -> tuple[torch.Tensor]:
        if image_ref is None or strength == 0:
            return (image_target,)
        index = options.get("source_stats.target_index", 0)
        return (transfer(image_target, image_ref, method, source_stats, int(index or 0), float(strength)),)
