"""ComfyUI's newer image nodes that go with frontend widgets: Painter (the painter widget's
uploaded strokes composited over an image or a colour), Crop Image (ImageCropV2, the crop-box
widget's region), Image Histogram (256-bin counts the curve widget draws) and Curve Editor
(the curve widget's CURVE value passed on, checked, with the histogram shown behind it).
Painter and Crop Image show their result as a temp preview, as ComfyUI's do."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch
from PIL import Image as PILImage

from nodeloom.node_api import (
    Custom,
    Image,
    Int,
    Node,
    NodeOutput,
    Output,
    Schema,
    ValidationError,
    safe_join,
    services,
)
from nodeloom.nodes.utils.previews import save_temp_images
from nodeloom.ops.curves import check_curve, histogram
from nodeloom.ops.imageio import file_sha256, open_image
from nodeloom.ops.palette import parse_color

__all__ = ["CurveEditor", "ImageCropV2", "ImageHistogram", "Painter"]

_ANNOTATED = re.compile(r"^(.*) \[(input|output|temp)\]$")
_LUMA = (0.2126, 0.7152, 0.0722)  # ITU-R BT.709


def _input_file(name: str) -> Any:
    """The file a widget names (``"name [input]"`` / ``[output]`` / ``[temp]``; plain: input)."""
    match = _ANNOTATED.match(name)
    folder, rel = (match.group(2), match.group(1)) if match else ("input", name)
    return safe_join(services().paths.directory(folder), rel)


def _strokes(mask: str, height: int, width: int) -> torch.Tensor:
    """The painter's RGBA strokes ``[H, W, 4]`` at the canvas size (transparent when nothing is painted)."""
    if not mask.strip():
        return torch.zeros(height, width, 4)
    path = _input_file(mask)
    if not path.is_file():
        raise ValidationError(f"`mask`: painter file {mask!r} is not in the folder it names")
    limits = getattr(services(required=False), "limits", None)
    with open_image(path, getattr(limits, "max_pixels", None) or None, name="mask") as img:
        rgba = img.convert("RGBA")
        if rgba.size != (width, height):
            rgba = rgba.resize((width, height), PILImage.Resampling.LANCZOS)
        return torch.from_numpy(np.asarray(rgba, dtype=np.float32) / 255.0)


class Painter(Node):
    """Paint on a canvas in the node: the strokes (the painter widget's upload) composited over
    `image` (its first frame), or over a `width` × `height` canvas of `bg_color` when no image is
    connected; the mask is the strokes' opacity."""

    SCHEMA = Schema(
        "Painter", display_name="Painter", category="image",
        inputs=[
            Image("image", optional=True, tooltip="The image to paint over; without one, a canvas of bg_color."),
            Custom("STRING", "mask", default="", socketless=True, widgetType="PAINTER", image_upload=True,
                   tooltip="The painted strokes: a PNG in the input folder that the painter widget uploads."),
            Int("width", 512, min=64, max=4096, step=64, socketless=True, hidden=True,
                tooltip="Canvas width when no image is connected."),
            Int("height", 512, min=64, max=4096, step=64, socketless=True, hidden=True,
                tooltip="Canvas height when no image is connected."),
            Custom("COLOR", "bg_color", default="#000000", tooltip="Canvas colour when no image is connected."),
        ],
        outputs=[Output("IMAGE", "IMAGE", tooltip="The strokes over the image or canvas."),
                 Output("MASK", "MASK", tooltip="Where paint lies (its opacity, 0..1).")],
    )

    @classmethod
    def execute(cls, mask: str, width: int, height: int, bg_color: str,
                image: torch.Tensor | None = None) -> NodeOutput:
        if image is None:
            image = torch.tensor(parse_color(bg_color, "bg_color")).expand(1, height, width, 3)
        base = image[:1, ..., :3]
        strokes = _strokes(mask, base.shape[1], base.shape[2]).to(base.device, base.dtype)[None]
        alpha = strokes[..., 3:]
        out = (base * (1 - alpha) + strokes[..., :3] * alpha).contiguous()
        return NodeOutput(out, alpha[..., 0].contiguous(), ui={"images": save_temp_images(out, "ComfyUI")})

    @classmethod
    def fingerprint_inputs(cls, mask: str, **_: Any) -> str:
        path = _input_file(mask) if mask.strip() else None
        return file_sha256(path) if path is not None and path.is_file() else mask


class ImageCropV2(Node):
    """Cut the crop widget's region (`x`, `y`, `width`, `height`) out of each image; a region
    reaching past the image is clipped to it. The crop is shown as a preview."""

    SCHEMA = Schema(
        "ImageCropV2", display_name="Crop Image", category="image/transform",
        description="Crop an image to the specified dimensions.",
        inputs=[
            Image("image", tooltip="The image to crop."),
            Custom("BOUNDING_BOX", "crop_region", component="ImageCrop",
                   default={"x": 0, "y": 0, "width": 512, "height": 512},
                   tooltip="The region to keep: x, y (top-left corner), width, height in pixels."),
        ],
        outputs=[Output("IMAGE", "IMAGE", tooltip="The cropped image.")],
    )

    @classmethod
    def execute(cls, image: torch.Tensor, crop_region: Any) -> NodeOutput:
        keys = ("x", "y", "width", "height")
        if not isinstance(crop_region, dict) or not all(isinstance(crop_region.get(k), (int, float)) for k in keys):
            raise ValidationError(f"`crop_region` must be a box {{x, y, width, height}} of numbers, got {crop_region!r}")
        x, y, w, h = (int(crop_region[k]) for k in keys)
        if w < 1 or h < 1:
            raise ValidationError(f"`crop_region` width and height must be ≥ 1, got {w}×{h}")
        x = min(max(x, 0), image.shape[2] - 1)
        y = min(max(y, 0), image.shape[1] - 1)
        out = image[:, y: y + h, x: x + w, :]
        return NodeOutput(out, ui={"images": save_temp_images(out, "ComfyUI")})


class ImageHistogram(Node):
    """256-bin histograms of the first image (a value v counts in bin ⌊255·v⌋): red, green, blue,
    their average (`rgb`, each bin the integer mean of the three) and BT.709 luminance."""

    SCHEMA = Schema(
        "ImageHistogram", display_name="Image Histogram", category="utils",
        inputs=[Image("image", tooltip="The image to measure (the first of a batch).")],
        outputs=[Output("HISTOGRAM", "rgb", tooltip="The mean of the red, green and blue counts per bin."),
                 Output("HISTOGRAM", "luminance", tooltip="Counts of BT.709 luminance."),
                 Output("HISTOGRAM", "red", tooltip="Counts of the red channel."),
                 Output("HISTOGRAM", "green", tooltip="Counts of the green channel."),
                 Output("HISTOGRAM", "blue", tooltip="Counts of the blue channel.")],
    )

    @classmethod
    def execute(cls, image: torch.Tensor) -> tuple[list[int], ...]:
        rgb = image[0, ..., :3]
        if rgb.shape[-1] != 3:
            raise ValidationError(f"`image` must have 3 colour channels, got {rgb.shape[-1]}")
        luma = sum(rgb[..., i] * w for i, w in enumerate(_LUMA))
        red, green, blue = (histogram(rgb[..., i]) for i in range(3))
        return ([(r + g + b) // 3 for r, g, b in zip(red, green, blue)], histogram(luma), red, green, blue)


class CurveEditor(Node):
    """Edit a tone curve in the node (drag its points; monotone cubic or linear); a connected
    histogram is drawn behind it. Passes the curve on."""

    SCHEMA = Schema(
        "CurveEditor", display_name="Curve Editor", category="utils",
        inputs=[
            Custom("CURVE", "curve", default={"points": [[0, 0], [1, 1]], "interpolation": "monotone_cubic"},
                   tooltip="The curve: points (x, y in 0..1) and an interpolation."),
            Custom("HISTOGRAM", "histogram", optional=True, tooltip="Counts drawn behind the curve (Image Histogram)."),
        ],
        outputs=[Output("CURVE", "curve", tooltip="The curve, points sorted by x.")],
    )

    @classmethod
    def execute(cls, curve: Any, histogram: Any = None) -> NodeOutput:
        checked = check_curve(curve)
        if histogram is None:
            return NodeOutput(checked)
        if not isinstance(histogram, (list, tuple)) or not all(isinstance(c, int) and c >= 0 for c in histogram):
            raise ValidationError("`histogram` must be a list of counts (from Image Histogram)")
        return NodeOutput(checked, ui={"histogram": list(histogram)})
