"""Model-free image utility nodes of ComfyUI's core: size, batch slicing and joining, scaling
to a pixel budget or a longest side, stitching, alpha joining and the resolution picker.

Resampling goes through :mod:`nodeloom.ops.resample`; inputs are never mutated.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from nodeloom.node_api import (
    MAX_RESOLUTION,
    Boolean,
    Combo,
    Custom,
    Float,
    Image,
    Int,
    Mask,
    Node,
    Output,
    Schema,
    ValidationError,
)
from nodeloom.nodes.utils.logic import autogrow, group_values
from nodeloom.ops import resample
from nodeloom.ops.stitch import stitch_images

__all__ = [
    "BatchImagesNode",
    "GetImageSize",
    "ImageFromBatch",
    "ImageScaleToMaxDimension",
    "ImageScaleToTotalPixels",
    "ImageStitch",
    "JoinImageWithAlpha",
    "RepeatImageBatch",
    "ResolutionSelector",
]

_METHOD_TIP = "Resampling filter: area suits shrinking, lanczos is sharpest."


def _image_out(tooltip: str) -> Output:
    return Output("IMAGE", "IMAGE", tooltip=tooltip)


class GetImageSize(Node):
    """The image's width and height (and batch size); the image passes on unchanged."""

    SCHEMA = Schema(
        "GetImageSize",
        display_name="Get Image Size",
        category="image",
        inputs=[Image("image", tooltip="The image to measure.")],
        outputs=[Output("INT", "width", tooltip="Width in pixels."),
                 Output("INT", "height", tooltip="Height in pixels."),
                 Output("INT", "batch_size", tooltip="Number of images in the batch.")],
    )

    @classmethod
    def execute(cls, image: torch.Tensor) -> tuple[int, int, int]:
        return (int(image.shape[2]), int(image.shape[1]), int(image.shape[0]))


class ImageFromBatch(Node):
    """Take `length` images of a batch starting at `batch_index` (both clipped to the batch)."""

    SCHEMA = Schema(
        "ImageFromBatch",
        display_name="ImageFromBatch",
        category="image/batch",
        inputs=[
            Image("image", tooltip="The batch to take images from."),
            Int("batch_index", 0, min=0, max=4095, tooltip="Index of the first image taken (clipped to the last)."),
            Int("length", 1, min=1, max=4096, tooltip="How many images to take (clipped at the end of the batch)."),
        ],
        outputs=[_image_out("The selected images.")],
    )

    @classmethod
    def execute(cls, image: torch.Tensor, batch_index: int, length: int) -> tuple[torch.Tensor]:
        start = min(int(image.shape[0]) - 1, batch_index)
        count = min(int(image.shape[0]) - start, length)
        return (image[start : start + count].clone(),)


class RepeatImageBatch(Node):
    """Repeat a batch of images `amount` times."""

    SCHEMA = Schema(
        "RepeatImageBatch",
        display_name="RepeatImageBatch",
        category="image/batch",
        inputs=[Image("image", tooltip="The images to repeat."),
                Int("amount", 1, min=1, max=4096, tooltip="How many copies of the batch.")],
        outputs=[_image_out("The batch repeated.")],
    )

    @classmethod
    def execute(cls, image: torch.Tensor, amount: int) -> tuple[torch.Tensor]:
        return (image.repeat((amount, 1, 1, 1)),)


class BatchImagesNode(Node):
    """Join the connected images into one batch (later images resized to the first's size)."""

    SCHEMA = Schema(
        "BatchImagesNode",
        display_name="Batch Images",
        category="image",
        inputs=[Custom("COMFY_AUTOGROW_V3", "images", optional=True,
                       tooltip="Images to batch; a new socket appears for each one connected.",
                       **autogrow("IMAGE", prefix="image", min_count=2, max_count=50))],
        outputs=[_image_out("All images in one batch.")],
    )

    @classmethod
    def execute(cls, **inputs: Any) -> tuple[torch.Tensor]:
        images = list(group_values(inputs, "images").values())
        if not images:
            raise ValidationError("`images`: connect at least one image")
        first = images[0]
        same = [img if img.shape[1:3] == first.shape[1:3] else
                resample.upscale_image(img, int(first.shape[2]), int(first.shape[1]), "bilinear", "center")
                for img in images]
        return (torch.cat([s[..., : first.shape[3]] for s in same], dim=0),)


class ImageScaleToTotalPixels(Node):
    """Resize an image to about `megapixels` million pixels, keeping its aspect ratio."""

    SCHEMA = Schema(
        "ImageScaleToTotalPixels",
        display_name="Scale Image to Total Pixels",
        category="image/upscaling",
        inputs=[
            Image("image", tooltip="The image to resize."),
            Combo("upscale_method", list(resample.UPSCALE_METHODS), tooltip=_METHOD_TIP),
            Float("megapixels", 1.0, min=0.01, max=16.0, step=0.01, tooltip="Target size in megapixels (1.0 = 1024×1024)."),
            Int("resolution_steps", 1, min=1, max=256, optional=True,
                tooltip="Round width and height to a multiple of this."),
        ],
        outputs=[_image_out("The resized image.")],
    )

    @classmethod
    def execute(cls, image: torch.Tensor, upscale_method: str, megapixels: float, resolution_steps: int = 1) -> tuple[torch.Tensor]:
        height, width = int(image.shape[1]), int(image.shape[2])
        scale = math.sqrt(megapixels * 1024 * 1024 / (width * height))
        step = max(1, resolution_steps)
        new_w = max(step, round(width * scale / step) * step)
        new_h = max(step, round(height * scale / step) * step)
        return (resample.upscale_image(image, new_w, new_h, upscale_method, "disabled"),)


class ImageScaleToMaxDimension(Node):
    """Resize an image so its longer side is `largest_size`, keeping its aspect ratio."""

    SCHEMA = Schema(
        "ImageScaleToMaxDimension",
        display_name="ImageScaleToMaxDimension",
        category="image/upscaling",
        inputs=[
            Image("image", tooltip="The image to resize."),
            Combo("upscale_method", ["area", "lanczos", "bilinear", "nearest-exact", "bilinear", "bicubic"], tooltip=_METHOD_TIP),
            Int("largest_size", 512, min=0, max=MAX_RESOLUTION, step=1, tooltip="Length of the longer side in pixels."),
        ],
        outputs=[_image_out("The resized image.")],
    )

    @classmethod
    def execute(cls, image: torch.Tensor, upscale_method: str, largest_size: int) -> tuple[torch.Tensor]:
        height, width = int(image.shape[1]), int(image.shape[2])
        if largest_size < 1:
            raise ValidationError(f"`largest_size` must be ≥ 1 to resize, got {largest_size}")
        if height > width:
            width, height = round(width / height * largest_size), largest_size
        elif width > height:
            width, height = largest_size, round(height / width * largest_size)
        else:
            width = height = largest_size
        return (resample.upscale_image(image, max(1, width), max(1, height), upscale_method, "disabled"),)


class ImageStitch(Node):
    """Stitches image2 to image1 in the specified direction.
    If image2 is not provided, returns image1 unchanged.
    Optional spacing can be added between images."""

    SCHEMA = Schema(
        "ImageStitch",
        display_name="Image Stitch",
        category="image/transform",
        inputs=[
            Image("image1", tooltip="The first image."),
            Combo("direction", ["right", "down", "left", "up"], default="right", tooltip="Where image2 goes."),
            Boolean("match_image_size", True, tooltip="Resize image2 to image1's height (left/right) or width (up/down)."),
            Int("spacing_width", 0, min=0, max=1024, step=2, tooltip="Width of a strip between the images."),
            Combo("spacing_color", ["white", "black", "red", "green", "blue"], default="white",
                  tooltip="Colour of the strip (and of padding when sizes differ)."),
            Image("image2", optional=True, tooltip="The image stitched on; none returns image1."),
        ],
        outputs=[_image_out("The stitched image.")],
    )

    @classmethod
    def execute(cls, image1: torch.Tensor, direction: str, match_image_size: bool, spacing_width: int,
                spacing_color: str, image2: torch.Tensor | None = None) -> tuple[torch.Tensor]:
        if image2 is None:
            return (image1,)
        return (stitch_images(image1, image2, direction, match_image_size, spacing_width, spacing_color),)


class JoinImageWithAlpha(Node):
    """Add an alpha channel to an image from a mask (mask 1 = transparent, as LoadImage gives)."""

    SCHEMA = Schema(
        "JoinImageWithAlpha",
        display_name="Join Image with Alpha",
        category="mask/compositing",
        inputs=[Image("image", tooltip="The colour image."),
                Mask("alpha", tooltip="The mask; resized to the image, alpha = 1 − mask.")],
        outputs=[_image_out("RGBA images.")],
    )

    @classmethod
    def execute(cls, image: torch.Tensor, alpha: torch.Tensor) -> tuple[torch.Tensor]:
        count = min(len(image), len(alpha))
        mask = alpha.reshape(-1, alpha.shape[-2], alpha.shape[-1])[:count].float()
        if mask.shape[1:] != image.shape[1:3]:
            mask = torch.nn.functional.interpolate(mask[:, None], size=tuple(image.shape[1:3]), mode="bilinear")[:, 0]
        return (torch.cat((image[:count, ..., :3], (1.0 - mask)[..., None].to(image.dtype)), dim=-1),)


ASPECT_RATIOS = {
    "1:1 (Square)": (1, 1),
    "2:3 (Portrait Photo)": (2, 3),
    "3:2 (Photo)": (3, 2),
    "3:4 (Portrait Standard)": (3, 4),
    "4:3 (Standard)": (4, 3),
    "9:16 (Portrait Widescreen)": (9, 16),
    "16:9 (Widescreen)": (16, 9),
    "21:9 (Ultrawide)": (21, 9),
}


class ResolutionSelector(Node):
    """Width and height for an aspect ratio and a pixel budget, rounded to a multiple."""

    SCHEMA = Schema(
        "ResolutionSelector",
        display_name="Resolution Selector",
        category="utils",
        inputs=[
            Combo("aspect_ratio", list(ASPECT_RATIOS), default="1:1 (Square)", tooltip="Width to height ratio."),
            Float("megapixels", 1.0, min=0.1, max=16.0, step=0.1, tooltip="Target size; 1.0 ≈ 1024×1024."),
            Int("multiple", 8, min=8, max=128, step=4, optional=True, tooltip="Round both sides to a multiple of this."),
        ],
        outputs=[Output("INT", "width", tooltip="Width in pixels."), Output("INT", "height", tooltip="Height in pixels.")],
    )

    @classmethod
    def execute(cls, aspect_ratio: str, megapixels: float, multiple: int = 8) -> tuple[int, int]:
        if aspect_ratio not in ASPECT_RATIOS:
            raise ValidationError(f"`aspect_ratio` must be one of {list(ASPECT_RATIOS)}, got {aspect_ratio!r}")
        w, h = ASPECT_RATIOS[aspect_ratio]
        total = megapixels * 1024 * 1024
        width = math.sqrt(total * w / h)
        step = max(1, multiple)
        return (max(step, round(width / step) * step), max(step, round(total / width / step) * step))
