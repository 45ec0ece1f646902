"""Mask nodes with ComfyUI's class names, input names, defaults and ranges.

ImageToMask, MaskToImage, ImageColorToMask, SolidMask, InvertMask, CropMask, MaskComposite,
FeatherMask, GrowMask, ThresholdMask and ImageCompositeMasked, so that ComfyUI workflows
using them run unchanged. Algorithms come from :mod:`nodeloom.ops.mask`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nodeloom.errors import ValidationError
from nodeloom.node_api import IO, MAX_RESOLUTION, Boolean, Combo, Float, Image, Int, Mask, Node, Output, Schema
from nodeloom.ops import mask as ops

_CHANNELS = ["red", "green", "blue", "alpha"]


def _xy(name: str, tip: str) -> Int:
    return Int(name, 0, min=0, max=MAX_RESOLUTION, step=1, tooltip=tip)


class ImageToMask(Node):
    """Take one channel of an image as a mask."""

    SCHEMA = Schema(
        "ImageToMask", display_name="Convert Image to Mask", category="mask",
        inputs=[Image("image", tooltip="The image to read from."),
                Combo("channel", _CHANNELS, tooltip="Which channel becomes the mask.")],
        outputs=[Output(IO.MASK, "MASK")],
    )  # fmt: skip

    @classmethod
    def execute(cls, image, channel):
        idx = _CHANNELS.index(channel)
        if image.shape[-1] <= idx:
            raise ValidationError(f"`channel` {channel!r} asked for, but `image` has {image.shape[-1]} channels")
        return (image[..., idx].clone(),)


class MaskToImage(Node):
    """Turn a mask into a grey RGB image."""

    SCHEMA = Schema(
        "MaskToImage", display_name="Convert Mask to Image", category="mask",
        inputs=[Mask("mask", tooltip="The mask to show as an image.")],
        outputs=[Output(IO.IMAGE, "IMAGE")],
    )  # fmt: skip

    @classmethod
    def execute(cls, mask):
        m = ops.to_batch_mask(mask)
        return (m.unsqueeze(-1).expand(-1, -1, -1, 3).clone(),)


class ImageColorToMask(Node):
    """Mask the pixels whose 8-bit colour equals `color` exactly (0xRRGGBB)."""

    SCHEMA = Schema(
        "ImageColorToMask", category="mask",
        inputs=[Image("image", tooltip="The image to search."),
                Int("color", 0, min=0, max=0xFFFFFF, step=1, display="color",
                    tooltip="The colour as an integer 0xRRGGBB.")],
        outputs=[Output(IO.MASK, "MASK")],
    )  # fmt: skip

    @classmethod
    def execute(cls, image, color):
        q = (image[..., :3].clamp(0, 1) * 255.0).round().to(torch.int64)
        packed = (q[..., 0] << 16) + (q[..., 1] << 8) + q[..., 2]
        return ((packed == int(color)).float(),)


class SolidMask(Node):
    """A mask of one constant value."""

    SCHEMA = Schema(
        "SolidMask", category="mask",
        inputs=[Float("value", 1.0, min=0.0, max=1.0, step=0.01, tooltip="The value of every pixel."),
                Int("width", 512, min=1, max=MAX_RESOLUTION, step=1, tooltip="Width in pixels."),
                Int("height", 512, min=1, max=MAX_RESOLUTION, step=1, tooltip="Height in pixels.")],
        outputs=[Output(IO.MASK, "MASK")],
    )  # fmt: skip

    @classmethod
    def execute(cls, value, width, height):
        return (torch.full((1, height, width), float(value), dtype=torch.float32),)


class InvertMask(Node):
    """1 − mask."""

    SCHEMA = Schema(
        "InvertMask", category="mask",
        inputs=[Mask("mask", tooltip="The mask to invert.")],
        outputs=[Output(IO.MASK, "MASK")],
    )  # fmt: skip

    @classmethod
    def execute(cls, mask):
        return (1.0 - mask,)


class CropMask(Node):
    """Cut a rectangle out of a mask (clipped to the mask)."""

    SCHEMA = Schema(
        "CropMask", category="mask",
        inputs=[Mask("mask", tooltip="The mask to crop."),
                _xy("x", "Left edge of the crop."), _xy("y", "Top edge of the crop."),
                Int("width", 512, min=1, max=MAX_RESOLUTION, step=1, tooltip="Crop width."),
                Int("height", 512, min=1, max=MAX_RESOLUTION, step=1, tooltip="Crop height.")],
        outputs=[Output(IO.MASK, "MASK")],
    )  # fmt: skip

    @classmethod
    def execute(cls, mask, x, y, width, height):
        m = ops.to_batch_mask(mask)
        return (m[:, y : y + height, x : x + width].clone(),)


class MaskComposite(Node):
    """Combine `source` into `destination` at (x, y) with an operation; the result is clamped to 0..1."""

    SCHEMA = Schema(
        "MaskComposite", category="mask",
        inputs=[Mask("destination", tooltip="The mask drawn onto (its size is kept)."),
                Mask("source", tooltip="The mask combined in."),
                _xy("x", "Where the source's left edge goes."), _xy("y", "Where the source's top edge goes."),
                Combo("operation", ["multiply", "add", "subtract", "and", "or", "xor"],
                      tooltip="How the overlapping pixels combine (and/or/xor round to 0/1 first).")],
        outputs=[Output(IO.MASK, "MASK")],
    )  # fmt: skip

    @classmethod
    def execute(cls, destination, source, x, y, operation):
        dst = ops.to_batch_mask(destination, "destination").float()
        src = ops.to_batch_mask(source, "source").float()
        batch = max(dst.shape[0], src.shape[0])
        out = dst.expand(batch, -1, -1).clone()
        h = max(min(src.shape[1], out.shape[1] - y), 0)
        w = max(min(src.shape[2], out.shape[2] - x), 0)
        region = out[:, y : y + h, x : x + w]
        part = src[:, :h, :w].expand(batch, -1, -1)
        if operation == "multiply":
            region = region * part
        elif operation == "add":
            region = region + part
        elif operation == "subtract":
            region = region - part
        else:
            fn = {"and": torch.logical_and, "or": torch.logical_or, "xor": torch.logical_xor}[operation]
            region = fn(region.round().bool(), part.round().bool()).float()
        out[:, y : y + h, x : x + w] = region
        return (out.clamp(0.0, 1.0),)


class FeatherMask(Node):
    """Fade a mask linearly towards each edge over the given number of pixels."""

    SCHEMA = Schema(
        "FeatherMask", category="mask",
        inputs=[Mask("mask", tooltip="The mask to feather."),
                _xy("left", "Feather width at the left edge."), _xy("top", "Feather width at the top edge."),
                _xy("right", "Feather width at the right edge."), _xy("bottom", "Feather width at the bottom edge.")],
        outputs=[Output(IO.MASK, "MASK")],
    )  # fmt: skip

    @classmethod
    def execute(cls, mask, left, top, right, bottom):
        return (ops.feather_edges(mask, left, top, right, bottom),)


class GrowMask(Node):
    """Grow (positive) or shrink (negative) a mask by a number of pixels."""

    SCHEMA = Schema(
        "GrowMask", category="mask",
        inputs=[Mask("mask", tooltip="The mask to grow or shrink."),
                Int("expand", 0, min=-MAX_RESOLUTION, max=MAX_RESOLUTION, step=1,
                    tooltip="Pixels to grow; negative values shrink."),
                Boolean("tapered_corners", True, tooltip="Round (diamond) corners instead of square ones.")],
        outputs=[Output(IO.MASK, "MASK")],
    )  # fmt: skip

    @classmethod
    def execute(cls, mask, expand, tapered_corners):
        return (ops.grow(mask, expand, tapered_corners),)


class ThresholdMask(Node):
    """1 where mask > value, else 0."""

    SCHEMA = Schema(
        "ThresholdMask", category="mask",
        inputs=[Mask("mask", tooltip="The mask to binarise."),
                Float("value", 0.5, min=0.0, max=1.0, step=0.01, tooltip="Pixels above this become 1.")],
        outputs=[Output(IO.MASK, "MASK")],
    )  # fmt: skip

    @classmethod
    def execute(cls, mask, value):
        return ((mask > value).float(),)


def _match_channels(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Give a 3-channel image an opaque alpha when the other one has 4."""
    if a.shape[-1] == b.shape[-1]:
        return a, b
    if {a.shape[-1], b.shape[-1]} != {3, 4}:
        raise ValidationError(f"images have {a.shape[-1]} and {b.shape[-1]} channels; expected 3 or 4 each")
    return _opaque(a), _opaque(b)


def _opaque(t: torch.Tensor) -> torch.Tensor:
    return F.pad(t, (0, 1), value=1.0) if t.shape[-1] == 3 else t


def _repeat_to(t: torch.Tensor, batch: int) -> torch.Tensor:
    if t.shape[0] == batch:
        return t
    reps = -(-batch // t.shape[0])
    return t.repeat(reps, *([1] * (t.ndim - 1)))[:batch]


class ImageCompositeMasked(Node):
    """Paste `source` onto `destination` at (x, y), optionally through a mask."""

    SCHEMA = Schema(
        "ImageCompositeMasked", category="image",
        inputs=[Image("destination", tooltip="The image pasted onto (its size is kept)."),
                Image("source", tooltip="The image pasted."),
                _xy("x", "Where the source's left edge goes."), _xy("y", "Where the source's top edge goes."),
                Boolean("resize_source", False, tooltip="Scale the source to the destination's size first."),
                Mask("mask", optional=True, tooltip="Opacity of the source (resized to the source).")],
        outputs=[Output(IO.IMAGE, "IMAGE")],
    )  # fmt: skip

    @classmethod
    def execute(cls, destination, source, x, y, resize_source, mask=None):
        dst, src = _match_channels(destination, source)
        if resize_source:
            src = F.interpolate(src.movedim(-1, 1), size=dst.shape[1:3], mode="bilinear").movedim(1, -1)
        batch = dst.shape[0]  # the source repeats (or is cut) to the destination's batch
        out = dst.clone()
        src = _repeat_to(src.to(out.device, out.dtype), batch)
        h = max(min(src.shape[1], out.shape[1] - y), 0)
        w = max(min(src.shape[2], out.shape[2] - x), 0)
        if mask is None:
            m = torch.ones(batch, h, w, 1, dtype=out.dtype, device=out.device)
        else:
            m = ops.to_batch_mask(mask).to(out.device, out.dtype).unsqueeze(1)
            m = F.interpolate(m, size=src.shape[1:3], mode="bilinear").squeeze(1)
            m = _repeat_to(m, batch)[:, :h, :w].unsqueeze(-1)
        region = out[:, y : y + h, x : x + w]
        out[:, y : y + h, x : x + w] = region * (1.0 - m) + src[:, :h, :w] * m
        return (out,)


NODES = (
    ImageToMask, MaskToImage, ImageColorToMask, SolidMask, InvertMask, CropMask, MaskComposite,
    FeatherMask, GrowMask, ThresholdMask, ImageCompositeMasked,
)  # fmt: skip
