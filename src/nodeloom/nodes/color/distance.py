"""Colour-distance nodes: ΔE map, nearest named colour, palette matching."""

from __future__ import annotations

import json

import numpy as np
import torch

from nodeloom.errors import ValidationError
from nodeloom.node_api import IO, Boolean, Combo, Float, Image, Mask, Node, Output, Schema, String
from nodeloom.ops.color import METHODS, color_distance, linear_to_srgb, srgb_to_linear
from nodeloom.ops.color_qc import match_sizes, render_heatmap
from nodeloom.ops.mask import to_batch_mask
from nodeloom.ops.palette import css_palette, nearest_in_palette, parse_palette, to_hex

_CAT = "image/color"


def _method(default: str = "ciede2000") -> Combo:
    return Combo("method", list(METHODS), default=default, tooltip="Colour difference formula.")


class DeltaEMap(Node):
    """Per-pixel colour difference between two images, as a heatmap and as a mask."""

    SCHEMA = Schema(
        "DeltaEMap", display_name="ΔE Map", category=_CAT,
        inputs=[Image("reference", tooltip="The reference image."),
                Image("image", tooltip="The image compared with it (same size)."),
                _method(),
                Float("max_value", 10.0, min=0.001, max=200.0, step=0.1,
                      tooltip="Difference shown as full red, and mapped to 1 in the mask."),
                Boolean("legend", True, tooltip="Add a legend strip under the heatmap."),
                Boolean("resize", False, tooltip="Resize `image` to the reference when sizes differ.")],
        outputs=[Output(IO.IMAGE, "heatmap"), Output(IO.MASK, "delta_mask", tooltip="Difference / max_value, clipped to 0..1."),
                 Output(IO.FLOAT, "mean_delta_e")],
    )  # fmt: skip

    @classmethod
    def execute(cls, reference, image, method, max_value, legend, resize):
        img, _ = match_sizes(reference, image, resize)
        batch = max(reference.shape[0], img.shape[0])
        ref = reference[..., :3].float().expand(batch, -1, -1, -1)
        de = color_distance(ref, img[..., :3].float().expand(batch, -1, -1, -1), method, precision="fast", device="auto").cpu()
        heat = render_heatmap(de, max_value / 2.0, vmax=max_value, legend=legend, label=method)
        return (heat, (de / max_value).clamp(0.0, 1.0), float(de.mean()))


def _mean_color(image: torch.Tensor, mask: torch.Tensor | None) -> np.ndarray:
    """Mean colour in linear light (so averaging mixes light, not encoded values), as sRGB."""
    lin = srgb_to_linear(image[..., :3].float())
    if mask is None:
        weights = torch.ones(lin.shape[:-1])
    else:
        weights = to_batch_mask(mask).float().expand(lin.shape[0], -1, -1)
        if weights.shape != lin.shape[:-1]:
            raise ValidationError(f"`mask` is {tuple(weights.shape[1:])} but `image` is {tuple(lin.shape[1:3])} (H, W)")
    total = float(weights.sum())
    if total <= 0:
        raise ValidationError("`mask` selects no pixel; nothing to name")
    mean = (lin * weights.unsqueeze(-1)).reshape(-1, 3).sum(dim=0) / total
    return np.asarray(linear_to_srgb(mean.double().numpy()))


class NearestNamedColor(Node):
    """Name the average colour of an image (or of a masked area) by its nearest palette entry."""

    SCHEMA = Schema(
        "NearestNamedColor", display_name="Nearest Named Colour", category=_CAT,
        inputs=[Image("image", tooltip="The image whose average colour is named."),
                _method(),
                String("palette", "css", tooltip="'css' for the 148 CSS names, or entries like 'brand: #1a2b3c, navy'."),
                Mask("mask", optional=True, tooltip="Only average the pixels under this mask.")],
        outputs=[Output(IO.STRING, "name"), Output(IO.STRING, "hex", tooltip="The palette colour."),
                 Output(IO.STRING, "average_hex", tooltip="The measured average colour."),
                 Output(IO.FLOAT, "distance")],
    )  # fmt: skip

    @classmethod
    def execute(cls, image, method, palette, mask=None):
        pal = css_palette() if palette.strip().lower() == "css" else parse_palette(palette)
        avg = _mean_color(image, mask)
        idx, dist = nearest_in_palette(avg[None, :], pal, method)
        i = int(idx[0])
        return (pal.names[i], to_hex(pal.rgb[i]), to_hex(avg), float(dist[0]))


class PaletteMatch(Node):
    """Replace every pixel by its nearest palette colour; report each colour's share."""

    SCHEMA = Schema(
        "PaletteMatch", display_name="Palette Match", category=_CAT,
        inputs=[Image("image", tooltip="The image to map onto the palette."),
                String("palette", "#000000, #ffffff, red, lime, blue",
                       tooltip="Colours: hex, CSS names, 'label: #hex', or 'css' for all CSS names.", multiline=True),
                _method()],
        outputs=[Output(IO.IMAGE, "IMAGE"), Output(IO.STRING, "report", tooltip="JSON: share of pixels per colour."),
                 Output(IO.FLOAT, "mean_distance")],
    )  # fmt: skip

    @classmethod
    def execute(cls, image, palette, method):
        pal = parse_palette(palette)
        idx, dist = nearest_in_palette(image[..., :3], pal, method)
        rgb = torch.from_numpy(pal.rgb[idx].astype(np.float32))
        counts = np.bincount(idx.ravel(), minlength=len(pal)) / idx.size
        shares = [{"name": n, "hex": to_hex(c), "share": float(s)} for n, c, s in zip(pal.names, pal.rgb, counts)]
        return (rgb, json.dumps({"method": method, "colors": shares}, indent=2), float(dist.mean()))
