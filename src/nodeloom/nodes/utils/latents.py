"""Latent utilities of ComfyUI's core: cut a latent along x, y or time, cut it into a batch of
slices, and trim frames off the start of a video latent. The input dict is never mutated."""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.node_api import MAX_RESOLUTION, Combo, Int, Latent, Node, Output, Schema, ValidationError

__all__ = ["LatentCut", "LatentCutToBatch", "TrimVideoLatent"]

_DIM_TIP = "x: width, y: height, t: frames (of a video latent)."


def _axis(samples: torch.Tensor, dim: str) -> int:
    """The tensor axis of ``x``/``y``/``t`` counted from the end (``t`` of a 4-D latent is its channels)."""
    return samples.ndim - {"x": 1, "y": 2, "t": 3}[dim]


def _with_samples(latent: dict[str, Any], samples: torch.Tensor, *, same_batch: bool = True) -> dict[str, Any]:
    out = {k: v for k, v in latent.items() if same_batch or k not in ("noise_mask", "batch_index")}
    out["samples"] = samples
    return out


class LatentCut(Node):
    """Keep `amount` positions of a latent along one dimension, from `index` (negative counts from
    the end); both are clipped to the latent's size."""

    SCHEMA = Schema(
        "LatentCut",
        display_name="LatentCut",
        category="latent/advanced",
        inputs=[
            Latent("samples", tooltip="The latent to cut."),
            Combo("dim", ["x", "y", "t"], tooltip=_DIM_TIP),
            Int("index", 0, min=-MAX_RESOLUTION, max=MAX_RESOLUTION, step=1,
                tooltip="First position kept; negative counts from the end."),
            Int("amount", 1, min=1, max=MAX_RESOLUTION, step=1, tooltip="How many positions to keep."),
        ],
        outputs=[Output("LATENT", "LATENT", tooltip="The cut latent.")],
    )

    @classmethod
    def execute(cls, samples: dict[str, Any], dim: str, index: int, amount: int) -> tuple[dict[str, Any]]:
        s = samples["samples"]
        axis = _axis(s, dim)
        size = s.shape[axis]
        if index >= 0:
            index = min(index, size - 1)
            amount = min(size - index, amount)
        else:
            index = max(index, -size)
            amount = min(-index, amount)
        return (_with_samples(samples, torch.narrow(s, axis, index, amount)),)


class LatentCutToBatch(Node):
    """Cut a latent along one dimension into slices of `slice_size` and stack them as a batch
    (all items' first slice, then all items' second...); a remainder is dropped."""

    SCHEMA = Schema(
        "LatentCutToBatch",
        display_name="LatentCutToBatch",
        category="latent/advanced",
        inputs=[
            Latent("samples", tooltip="The latent to cut."),
            Combo("dim", ["t", "x", "y"], tooltip=_DIM_TIP),
            Int("slice_size", 1, min=1, max=MAX_RESOLUTION, step=1, tooltip="Length of each slice."),
        ],
        outputs=[Output("LATENT", "LATENT", tooltip="The slices as one batch.")],
    )

    @classmethod
    def execute(cls, samples: dict[str, Any], dim: str, slice_size: int) -> tuple[dict[str, Any]]:
        s = samples["samples"]
        axis = _axis(s, dim)
        if axis < 2:  # `t` of a latent without frames would cut channels or the batch
            return (samples,)
        size = min(slice_size, s.shape[axis])
        count = s.shape[axis] // size
        pieces = torch.split(torch.narrow(s, axis, 0, count * size), size, dim=axis)
        return (_with_samples(samples, torch.cat(pieces, dim=0), same_batch=count == 1),)


class TrimVideoLatent(Node):
    """Drop the first `trim_amount` frames of a video latent."""

    SCHEMA = Schema(
        "TrimVideoLatent",
        display_name="TrimVideoLatent",
        category="latent/video",
        inputs=[
            Latent("samples", tooltip="A video latent [B, C, T, H, W]."),
            Int("trim_amount", 0, min=0, max=99999, tooltip="Frames (latent positions) removed from the start."),
        ],
        outputs=[Output("LATENT", "LATENT", tooltip="The latent without its first frames.")],
    )

    @classmethod
    def execute(cls, samples: dict[str, Any], trim_amount: int) -> tuple[dict[str, Any]]:
        s = samples["samples"]
        if s.ndim != 5:
            raise ValidationError(f"`samples` must be a video latent [B, C, T, H, W], got shape {tuple(s.shape)}")
        return (_with_samples(samples, s[:, :, trim_amount:]),)
