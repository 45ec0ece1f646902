"""ComfyUI's "Resize Image/Mask" node: one node, nine ways to pick the new size.

``resize_type`` is a dynamic combo: each choice brings its own inputs, which reach the node
as ``resize_type.width``, ``resize_type.multiplier``... Works on IMAGE ``[B,H,W,C]`` and MASK
``[B,H,W]`` alike; resampling goes through :mod:`nodeloom.ops.resample`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from nodeloom.node_api import Combo, Custom, Node, Output, Schema, ValidationError
from nodeloom.ops import resample

__all__ = ["RESIZE_TYPES", "ResizeImageMaskNode", "target_size"]

_SIZE = {"min": 0, "max": 8192, "step": 1}
_CROP = [["disabled", "center"], {"default": "center", "tooltip": "center: crop to the target aspect first; disabled: stretch."}]


def _int(default: int, tip: str, **limits: int) -> list[Any]:
    return ["INT", {"default": default, **(limits or _SIZE), "tooltip": tip}]


#: option key -> the inputs it brings (frontend shape: ``{"required": {name: [type, opts]}}``)
RESIZE_TYPES: dict[str, dict[str, Any]] = {
    "scale by multiplier": {"multiplier": ["FLOAT", {"default": 1.0, "min": 0.01, "max": 8.0, "step": 0.01,
                                                     "tooltip": "Size factor (2.0 doubles both sides)."}]},
    "scale dimensions": {"width": _int(512, "Target width (0: from the height, keeping the aspect)."),
                         "height": _int(512, "Target height (0: from the width, keeping the aspect)."), "crop": _CROP},
    "scale longer dimension": {"longer_size": _int(512, "Length of the longer side.")},
    "scale shorter dimension": {"shorter_size": _int(512, "Length of the shorter side.")},
    "scale width": {"width": _int(512, "Target width; the height keeps the aspect.")},
    "scale height": {"height": _int(512, "Target height; the width keeps the aspect.")},
    "scale total pixels": {"megapixels": ["FLOAT", {"default": 1.0, "min": 0.01, "max": 16.0, "step": 0.01,
                                                    "tooltip": "Target size in megapixels (1.0 = 1024×1024)."}]},
    "match size": {"match": ["IMAGE,MASK", {"tooltip": "An image or mask whose size to take."}], "crop": _CROP},
    "scale to multiple": {"multiple": _int(8, "Both sides become the nearest multiple of this.", min=1, max=8192, step=1)},
}


def _aspect(width: int, height: int, new_w: int, new_h: int) -> tuple[int, int]:
    if new_w == 0 and new_h == 0:
        return width, height
    if new_w == 0:
        return max(1, round(width * new_h / height)), new_h
    if new_h == 0:
        return new_w, max(1, round(height * new_w / width))
    return new_w, new_h


def target_size(kind: str, width: int, height: int, opts: dict[str, Any]) -> tuple[int, int, str]:
    """``(new_width, new_height, crop)`` for resize type ``kind`` and its inputs ``opts``.

    Raises:
        ValidationError: an unknown resize type or a missing `match`.
    """
    if kind == "scale by multiplier":
        m = float(opts.get("multiplier", 1.0))
        return max(1, round(width * m)), max(1, round(height * m)), "disabled"
    if kind == "scale dimensions":
        w, h = _aspect(width, height, int(opts.get("width", 512)), int(opts.get("height", 512)))
        return w, h, str(opts.get("crop", "center"))
    if kind in ("scale longer dimension", "scale shorter dimension"):
        size = int(opts.get("longer_size" if "longer" in kind else "shorter_size", 512))
        longer_is_width = width >= height
        by_width = longer_is_width if "longer" in kind else not longer_is_width
        return (*(_aspect(width, height, size, 0) if by_width else _aspect(width, height, 0, size)), "disabled")
    if kind == "scale width":
        return (*_aspect(width, height, int(opts.get("width", 512)), 0), "disabled")
    if kind == "scale height":
        return (*_aspect(width, height, 0, int(opts.get("height", 512))), "disabled")
    if kind == "scale total pixels":
        scale = math.sqrt(float(opts.get("megapixels", 1.0)) * 1024 * 1024 / (width * height))
        return max(1, round(width * scale)), max(1, round(height * scale)), "disabled"
    if kind == "match size":
        match = opts.get("match")
        if not isinstance(match, torch.Tensor):
            raise ValidationError("`resize_type.match`: connect the image or mask whose size to match")
        h_axis = 1 if match.ndim == 4 else match.ndim - 2
        return int(match.shape[h_axis + 1]), int(match.shape[h_axis]), str(opts.get("crop", "center"))
    if kind == "scale to multiple":
        m = max(1, int(opts.get("multiple", 8)))
        return max(m, math.floor(width / m + 0.5) * m), max(m, math.floor(height / m + 0.5) * m), "disabled"
    raise ValidationError(f"`resize_type` must be one of {list(RESIZE_TYPES)}, got {kind!r}")


class ResizeImageMaskNode(Node):
    """Resize an image or a mask: by a factor, to dimensions, by its longer or shorter side, to a
    width or height, to a pixel budget, to another image's size, or to a multiple."""

    SCHEMA = Schema(
        "ResizeImageMaskNode",
        display_name="Resize Image/Mask",
        category="transform",
        inputs=[
            Custom("IMAGE,MASK", "input", tooltip="The image or mask to resize."),
            Custom("COMFY_DYNAMICCOMBO_V3", "resize_type", tooltip="How the new size is chosen; each way has its own inputs.",
                   options=[{"key": k, "inputs": {"required": v}} for k, v in RESIZE_TYPES.items()]),
            Combo("scale_method", list(resample.UPSCALE_METHODS), default="area", tooltip="Resampling filter."),
        ],
        outputs=[Output("IMAGE,MASK", "resized", tooltip="The resized image or mask (the input's type).")],
    )

    @classmethod
    def execute(cls, input: torch.Tensor, resize_type: str, scale_method: str, **options: Any) -> tuple[torch.Tensor]:  # noqa: A002
        opts = {k.split(".", 1)[1]: v for k, v in options.items() if k.startswith("resize_type.")}
        is_mask = input.ndim == 3
        image = input[..., None] if is_mask else input
        width, height, crop = target_size(resize_type, int(image.shape[2]), int(image.shape[1]), opts)
        out = resample.upscale_image(image, width, height, scale_method, crop)
        return (out[..., 0] if is_mask else out,)
