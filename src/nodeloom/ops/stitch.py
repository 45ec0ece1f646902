"""Stitch two image batches side by side or on top of each other, with an optional strip.

Pure torch on ``[B, H, W, C]`` tensors; the shorter batch repeats its last image, a smaller
image is resized (keeping its aspect ratio) or centre-padded, and channels are padded with 1.
"""

from __future__ import annotations

import torch

from nodeloom.ops import resample

__all__ = ["SPACING_COLORS", "stitch_images"]

SPACING_COLORS = {
    "white": (1.0, 1.0, 1.0),
    "black": (0.0, 0.0, 0.0),
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
}


def _extend_batch(image: torch.Tensor, size: int) -> torch.Tensor:
    extra = size - image.shape[0]
    return torch.cat([image, image[-1:].expand(extra, -1, -1, -1)]) if extra > 0 else image


def _extend_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    extra = channels - image.shape[-1]
    return torch.cat([image, image.new_ones(*image.shape[:-1], extra)], dim=-1) if extra > 0 else image


def _pad_centre(image: torch.Tensor, size: int, axis: int, value: float) -> torch.Tensor:
    missing = size - image.shape[axis]
    if missing <= 0:
        return image
    before = missing // 2
    pads = [0, 0, 0, 0, 0, 0]  # C, W, H from the last dimension
    slot = 2 if axis == 2 else 4
    pads[slot], pads[slot + 1] = before, missing - before
    return torch.nn.functional.pad(image, pads, mode="constant", value=value)


def stitch_images(image1: torch.Tensor, image2: torch.Tensor, direction: str, match_size: bool,
                  spacing: int, color: str) -> torch.Tensor:
    """``image2`` joined to ``image1`` on its ``direction`` side (right, down, left, up).

    Raises:
        ValueError: an unknown direction or colour.
    """
    if direction not in ("right", "down", "left", "up"):
        raise ValueError(f"`direction` must be right, down, left or up, got {direction!r}")
    if color not in SPACING_COLORS:
        raise ValueError(f"`spacing_color` must be one of {list(SPACING_COLORS)}, got {color!r}")
    horizontal = direction in ("left", "right")
    batch = max(image1.shape[0], image2.shape[0])
    image1, image2 = _extend_batch(image1, batch), _extend_batch(image2, batch)
    if match_size:
        h1, w1 = image1.shape[1:3]
        ratio = image2.shape[2] / image2.shape[1]
        size = (max(1, int(h1 * ratio)), h1) if horizontal else (w1, max(1, int(w1 / ratio)))
        image2 = resample.upscale_image(image2, size[0], size[1], "lanczos", "disabled")
    else:
        axis = 1 if horizontal else 2
        pad = SPACING_COLORS[color][0] if color in ("white", "black") else 0.0
        target = max(image1.shape[axis], image2.shape[axis])
        image1, image2 = _pad_centre(image1, target, axis, pad), _pad_centre(image2, target, axis, pad)
    channels = max(image1.shape[-1], image2.shape[-1])
    image1, image2 = _extend_channels(image1, channels), _extend_channels(image2, channels)
    parts = [image2, image1] if direction in ("left", "up") else [image1, image2]
    if spacing > 0:
        shape = list(image1.shape)
        shape[2 if horizontal else 1] = spacing
        strip = image1.new_ones(shape)
        rgb = torch.tensor(SPACING_COLORS[color], dtype=image1.dtype, device=image1.device)
        strip[..., : min(3, channels)] = rgb[: min(3, channels)]
        parts.insert(1, strip)
    return torch.cat(parts, dim=2 if horizontal else 1)
