"""Run an image-to-image function (an upscaler) over overlapping tiles and blend the results.

Tiles start every ``tile - overlap`` pixels; each tile's output is weighted by a ramp that rises
linearly over the scaled overlap at every edge, and the weighted sum is divided by the summed
weights, so seams fade instead of showing. These are ComfyUI's tiling conventions (positions,
ramp, tile count), so a result equals ComfyUI's; the 2-D ramp is an outer product of two 1-D
ramps and the weights are summed in one plane, not per channel. Pure torch: no nodes, no models.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch

__all__ = ["tile_count", "tile_positions", "tiled_scale"]


def tile_count(height: int, width: int, tile: int, overlap: int) -> int:
    """How many tiles :func:`tiled_scale` runs for one ``height`` x ``width`` image."""
    rows = 1 if height <= tile else math.ceil((height - overlap) / (tile - overlap))
    cols = 1 if width <= tile else math.ceil((width - overlap) / (tile - overlap))
    return rows * cols


def tile_positions(size: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """``(start, length)`` of each tile along one axis of ``size`` pixels."""
    if size <= tile:
        return [(0, size)]
    return [(start, min(tile, size - start)) for start in range(0, size - overlap, tile - overlap)]


def _ramp(n: int, feather: int) -> torch.Tensor:
    """Weights along one axis: 1 inside, rising as (t+1)/feather over ``feather`` pixels at each end."""
    ramp = torch.ones(n)
    if feather < n:
        steps = torch.arange(1, feather + 1, dtype=torch.float32) / feather
        ramp[:feather] *= steps
        ramp[n - feather:] *= steps.flip(0)
    return ramp


def tiled_scale(
    image: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    scale: float,
    tile: int = 512,
    overlap: int = 32,
    out_channels: int = 3,
    on_tile: Callable[[], None] | None = None,
    output_device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Apply ``fn`` (``[1,C,h,w]`` -> ``[1,out_channels,h*scale,w*scale]``) tile by tile.

    Args:
        image: ``[B,C,H,W]`` input.
        fn: the per-tile function (e.g. an upscale model).
        scale: the factor ``fn`` scales by.
        tile: tile edge in input pixels.
        overlap: overlap between neighbouring tiles in input pixels (``< tile``).
        out_channels: channels ``fn`` returns.
        on_tile: called after every tile (progress, interruption).
        output_device: where the blended result is assembled.

    Returns:
        ``[B,out_channels,round(H*scale),round(W*scale)]``.

    Raises:
        ValueError: ``image`` is not 4-D, or ``overlap`` is not below ``tile``.
    """
    if image.ndim != 4:
        raise ValueError(f"`image` must be [B,C,H,W], got shape {tuple(image.shape)}")
    if not 0 <= overlap < tile:
        raise ValueError(f"`overlap` must be in [0, tile), got overlap={overlap}, tile={tile}")
    b, _, h, w = image.shape
    out_h, out_w = round(h * scale), round(w * scale)
    output = torch.empty((b, out_channels, out_h, out_w), device=output_device)
    feather = round(overlap * scale)
    for i in range(b):
        one = image[i:i + 1]
        if h <= tile and w <= tile:
            output[i:i + 1] = fn(one).to(output_device)
            if on_tile is not None:
                on_tile()
            continue
        acc = torch.zeros((1, out_channels, out_h, out_w), device=output_device)
        weight = torch.zeros((1, 1, out_h, out_w), device=output_device)  # one plane serves every channel
        for (y, th), (x, tw) in itertools.product(tile_positions(h, tile, overlap), tile_positions(w, tile, overlap)):
            part = fn(one[:, :, y:y + th, x:x + tw]).to(output_device)
            ph, pw = part.shape[2], part.shape[3]
            mask = (_ramp(ph, feather)[:, None] * _ramp(pw, feather)[None, :]).to(part.device)
            oy, ox = round(y * scale), round(x * scale)
            acc[:, :, oy:oy + ph, ox:ox + pw] += part * mask
            weight[:, :, oy:oy + ph, ox:ox + pw] += mask
            if on_tile is not None:
                on_tile()
        output[i:i + 1] = acc / weight
    return output
