"""Apply a resizing function to a large tensor tile by tile, blending the overlaps.

``tiled_apply`` cuts ``[B, C, *spatial]`` samples into overlapping tiles, runs ``fn`` on each
(an upscaler, a VAE decoder...), scales tile positions by ``upscale`` and blends neighbours
with linear ramps over the overlap. Memory stays bounded by one tile. Pure torch, no nodes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch

__all__ = ["blend_ramp", "tile_count", "tile_starts", "tiled_apply"]


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Starts of tiles of ``tile`` covering ``size`` with ``overlap`` (the last one flush with the end)."""
    if size <= tile:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, size - tile, stride)) + [size - tile]
    return sorted(set(starts))


def tile_count(shape: Sequence[int], tile: Sequence[int], overlap: int) -> int:
    """Number of tiles :func:`tiled_apply` runs per sample for spatial ``shape``."""
    return math.prod(len(tile_starts(s, t, overlap)) for s, t in zip(shape, tile))


def blend_ramp(length: int, feather: int, first: bool, last: bool) -> torch.Tensor:
    """A 1-D blending weight rising linearly over ``feather`` samples, except at the ``first``/``last`` side."""
    weight = torch.ones(length)
    if feather > 0:
        rise = (torch.arange(feather, dtype=torch.float32) + 1) / (feather + 1)
        if not first:
            weight[:feather] = torch.minimum(weight[:feather], rise)
        if not last:
            weight[-feather:] = torch.minimum(weight[-feather:], rise.flip(0))
    return weight


def tiled_apply(samples: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], tile: Sequence[int],
                overlap: int = 8, upscale: float | Sequence[float] = 1.0, out_channels: int | None = None,
                on_tile: Callable[[], None] | None = None) -> torch.Tensor:
    """Run ``fn`` over overlapping tiles of ``samples`` and blend the results.

    Args:
        samples: ``[B, C, *spatial]``.
        fn: maps a ``[1, C, *tile]`` tensor to ``[1, out_channels, *(tile * upscale)]``.
        tile: tile size per spatial dimension.
        overlap: overlap between neighbouring tiles, in input pixels.
        upscale: output/input size ratio (one per spatial dimension, or one for all).
        out_channels: channels ``fn`` returns (default: the input's).
        on_tile: called after every tile (progress).

    Raises:
        ValueError: ``tile`` does not name one size per spatial dimension, or a size < 1.
    """
    spatial = samples.shape[2:]
    if len(tile) != len(spatial) or any(int(t) < 1 for t in tile):
        raise ValueError(f"`tile` must give one size >= 1 per spatial dimension {tuple(spatial)}, got {tuple(tile)}")
    scales = [float(upscale)] * len(spatial) if isinstance(upscale, (int, float)) else [float(u) for u in upscale]
    out_shape = [round(s * u) for s, u in zip(spatial, scales)]
    channels = samples.shape[1] if out_channels is None else out_channels
    out = torch.zeros(samples.shape[0], channels, *out_shape)
    weight = torch.zeros(1, 1, *out_shape)
    grids = [tile_starts(s, int(t), overlap) for s, t in zip(spatial, tile)]
    for b in range(samples.shape[0]):
        for corner in itertools.product(*grids):
            index = tuple(slice(c, c + int(t)) for c, t in zip(corner, tile))
            part = fn(samples[(slice(b, b + 1), slice(None), *index)]).float().cpu()
            mask = torch.ones(1)
            dest = []
            for d, (c, size, grid, u) in enumerate(zip(corner, spatial, grids, scales)):
                length = part.shape[2 + d]
                lo = round(c * u)
                dest.append(slice(lo, lo + length))
                ramp = blend_ramp(length, round(overlap * u), c == grid[0], c == grid[-1])
                mask = mask.unsqueeze(-1) * ramp if d else ramp
            mask = mask.view(1, 1, *mask.shape)
            out[(slice(b, b + 1), slice(None), *dest)] += part * mask
            if b == 0:
                weight[(slice(None), slice(None), *dest)] += mask
            if on_tile is not None:
                on_tile()
    return out / weight.clamp(min=1e-8)
