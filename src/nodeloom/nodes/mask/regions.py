"""nodeloom's own mask nodes: colour ranges, logic, clean-up, boxes, crops, compositing, ROI.

Thin wrappers over :mod:`nodeloom.ops.mask`; colours are typed as ``#rrggbb`` or a CSS name.
"""

from __future__ import annotations

import torch

from nodeloom.errors import ValidationError
from nodeloom.node_api import IO, MAX_RESOLUTION, Boolean, Combo, Float, Image, Int, Mask, Node, Output, Schema, String
from nodeloom.ops import mask as ops
from nodeloom.ops.palette import parse_color

_CAT = "image/mask"


def _threshold(default: float = 0.5) -> Float:
    return Float("threshold", default, min=0.0, max=1.0, step=0.01, tooltip="Mask values above this count as inside.")


def _box_outputs() -> list[Output]:
    return [Output(IO.INT, "x"), Output(IO.INT, "y"), Output(IO.INT, "width"), Output(IO.INT, "height")]


class ColorRangeMask(Node):
    """Select the pixels whose colour is close to a target colour (RGB, HSV or CIEDE2000 distance)."""

    SCHEMA = Schema(
        "ColorRangeMask", display_name="Colour Range Mask", category=_CAT,
        inputs=[Image("image", tooltip="The image to select from."),
                String("color", "#ff0000", tooltip="Target colour: '#rrggbb' or a CSS name."),
                Float("tolerance", 0.1, min=0.0, max=200.0, step=0.01,
                      tooltip="Largest distance still selected: RGB 0..1.73, HSV 0..1.73, ΔE00 0..~100."),
                Combo("space", ["rgb", "hsv", "delta_e"], default="rgb", tooltip="How colour distance is measured."),
                Float("softness", 0.0, min=0.0, max=200.0, step=0.01,
                      tooltip="Soft edge width beyond the tolerance (same units); 0 = hard mask.")],
        outputs=[Output(IO.MASK, "MASK")],
    )  # fmt: skip

    @classmethod
    def execute(cls, image, color, tolerance, space, softness):
        return (ops.color_range_mask(image, parse_color(color), tolerance, space, softness),)


class MaskLogic(Node):
    """Combine two masks: and/or/xor/subtract (fuzzy min/max/|a−b|/max(a−b,0)), multiply, add, difference."""

    SCHEMA = Schema(
        "MaskLogic", display_name="Mask Logic", category=_CAT,
        inputs=[Mask("a", tooltip="First mask."), Mask("b", tooltip="Second mask (same size)."),
                Combo("operation", list(ops.LOGIC_OPS), default="and", tooltip="The logic operation."),
                Boolean("binarize", False, tooltip="Threshold both masks to 0/1 first."),
                _threshold()],
        outputs=[Output(IO.MASK, "MASK")],
    )  # fmt: skip

    @classmethod
    def execute(cls, a, b, operation, binarize, threshold):
        return (ops.combine_masks(a, b, operation, threshold if binarize else None),)


class MaskRemoveSmallObjects(Node):
    """Erase connected regions smaller than a number of pixels (specks, noise)."""

    SCHEMA = Schema(
        "MaskRemoveSmallObjects", display_name="Remove Small Mask Objects", category=_CAT,
        inputs=[Mask("mask", tooltip="The mask to clean."),
                Int("min_size", 64, min=0, max=MAX_RESOLUTION * MAX_RESOLUTION, tooltip="Regions below this many pixels go."),
                _threshold(),
                Combo("connectivity", ["8", "4"], default="8", tooltip="Whether diagonal pixels connect.")],
        outputs=[Output(IO.MASK, "MASK")],
    )  # fmt: skip

    @classmethod
    def execute(cls, mask, min_size, threshold, connectivity):
        return (ops.remove_small_objects(mask, min_size, threshold, int(connectivity)),)


class MaskFillHoles(Node):
    """Fill enclosed holes (background not connected to the border)."""

    SCHEMA = Schema(
        "MaskFillHoles", display_name="Fill Mask Holes", category=_CAT,
        inputs=[Mask("mask", tooltip="The mask to fill."),
                Int("max_hole_size", 0, min=0, max=MAX_RESOLUTION * MAX_RESOLUTION,
                    tooltip="Fill only holes up to this many pixels; 0 fills all."),
                _threshold()],
        outputs=[Output(IO.MASK, "MASK")],
    )  # fmt: skip

    @classmethod
    def execute(cls, mask, max_hole_size, threshold):
        return (ops.fill_holes(mask, max_hole_size, threshold),)


class MaskBoundingBox(Node):
    """The bounding box of a mask (union over the batch), as numbers and as a box mask."""

    SCHEMA = Schema(
        "MaskBoundingBox", display_name="Mask Bounding Box", category=_CAT,
        inputs=[Mask("mask", tooltip="The mask to measure."),
                Int("padding", 0, min=0, max=MAX_RESOLUTION, tooltip="Grow the box by this many pixels (clipped)."),
                _threshold()],
        outputs=[Output(IO.MASK, "box_mask"), *_box_outputs()],
    )  # fmt: skip

    @classmethod
    def execute(cls, mask, padding, threshold):
        m = ops.to_batch_mask(mask)
        x, y, w, h = ops.union_box(m, padding, threshold)
        box = torch.zeros(1, *m.shape[1:])
        box[:, y : y + h, x : x + w] = 1.0
        return (box, x, y, w, h)


class CropByMask(Node):
    """Crop an image to the box around its mask, plus padding (clipped to the image)."""

    SCHEMA = Schema(
        "CropByMask", display_name="Crop by Mask", category=_CAT,
        inputs=[Image("image", tooltip="The image to crop."),
                Mask("mask", tooltip="Where the content is (same size as the image)."),
                Int("padding", 16, min=0, max=MAX_RESOLUTION, tooltip="Extra pixels kept around the box."),
                _threshold()],
        outputs=[Output(IO.IMAGE, "IMAGE"), Output(IO.MASK, "MASK"), *_box_outputs()],
    )  # fmt: skip

    @classmethod
    def execute(cls, image, mask, padding, threshold):
        crop, mcrop, (x, y, w, h) = ops.crop_to_mask(image, mask, padding, threshold)
        return (crop, mcrop, x, y, w, h)


class ApplyMask(Node):
    """Keep the image where the mask is 1: fill the rest with a colour, or output the mask as alpha."""

    SCHEMA = Schema(
        "ApplyMask", display_name="Apply Mask", category=_CAT,
        inputs=[Image("image", tooltip="The image to mask."), Mask("mask", tooltip="1 keeps, 0 removes."),
                Combo("mode", ["background", "alpha"], default="background",
                      tooltip="Fill removed pixels with `background`, or add the mask as an alpha channel."),
                String("background", "#000000", tooltip="Fill colour for `background` mode.")],
        outputs=[Output(IO.IMAGE, "IMAGE")],
    )  # fmt: skip

    @classmethod
    def execute(cls, image, mask, mode, background):
        m = ops.to_batch_mask(mask)
        if mode == "alpha":
            if m.shape[1:] != image.shape[1:3]:
                raise ValidationError(f"`mask` is {tuple(m.shape[1:])} but `image` is {tuple(image.shape[1:3])} (H, W)")
            batch = max(image.shape[0], m.shape[0])
            rgb = image[..., :3].expand(batch, -1, -1, -1)
            return (torch.cat([rgb, m.expand(batch, -1, -1).unsqueeze(-1).to(rgb)], dim=-1),)
        fill = torch.tensor(parse_color(background, "background"), dtype=image.dtype).expand_as(image[..., :3])
        return (ops.composite(fill, image[..., :3], m),)


class CompositeByMask(Node):
    """Blend two same-sized images: `source` where the mask is 1, `destination` where it is 0."""

    SCHEMA = Schema(
        "CompositeByMask", display_name="Composite by Mask", category=_CAT,
        inputs=[Image("destination", tooltip="Shown where the mask is 0."),
                Image("source", tooltip="Shown where the mask is 1."),
                Mask("mask", tooltip="Blend weight of the source.")],
        outputs=[Output(IO.IMAGE, "IMAGE")],
    )  # fmt: skip

    @classmethod
    def execute(cls, destination, source, mask):
        return (ops.composite(destination, source, mask),)


class ReplaceColorUnderMask(Node):
    """Paint a flat colour over the masked area (the mask times `strength` is the opacity)."""

    SCHEMA = Schema(
        "ReplaceColorUnderMask", display_name="Replace Colour under Mask", category=_CAT,
        inputs=[Image("image", tooltip="The image to paint on."), Mask("mask", tooltip="Where to paint."),
                String("color", "#ffffff", tooltip="'#rrggbb' or a CSS colour name."),
                Float("strength", 1.0, min=0.0, max=1.0, step=0.01, tooltip="Opacity of the paint.")],
        outputs=[Output(IO.IMAGE, "IMAGE")],
    )  # fmt: skip

    @classmethod
    def execute(cls, image, mask, color, strength):
        return (ops.replace_color(image, mask, parse_color(color), strength),)


class ROIMask(Node):
    """A rectangular or elliptical region-of-interest mask, optionally with a soft edge."""

    SCHEMA = Schema(
        "ROIMask", display_name="ROI Mask", category=_CAT,
        inputs=[Int("width", 512, min=1, max=MAX_RESOLUTION, tooltip="Mask width."),
                Int("height", 512, min=1, max=MAX_RESOLUTION, tooltip="Mask height."),
                Int("x", 128, min=0, max=MAX_RESOLUTION, tooltip="Left edge of the region."),
                Int("y", 128, min=0, max=MAX_RESOLUTION, tooltip="Top edge of the region."),
                Int("roi_width", 256, min=1, max=MAX_RESOLUTION, tooltip="Region width."),
                Int("roi_height", 256, min=1, max=MAX_RESOLUTION, tooltip="Region height."),
                Combo("shape", ["rectangle", "ellipse"], default="rectangle", tooltip="Region shape."),
                Int("feather", 0, min=0, max=MAX_RESOLUTION, tooltip="Soft edge width inside the region, pixels.")],
        outputs=[Output(IO.MASK, "MASK")],
    )  # fmt: skip

    @classmethod
    def execute(cls, width, height, x, y, roi_width, roi_height, shape, feather):
        return (ops.roi_mask(width, height, x, y, roi_width, roi_height, shape, feather),)


NODES = (
    ColorRangeMask, MaskLogic, MaskRemoveSmallObjects, MaskFillHoles, MaskBoundingBox, CropByMask,
    ApplyMask, CompositeByMask, ReplaceColorUnderMask, ROIMask,
)  # fmt: skip
