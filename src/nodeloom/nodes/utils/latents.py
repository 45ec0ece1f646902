"""Latent utilities of ComfyUI's core: join two latents along x, y or time, cut a latent along
one of them, cut it into a batch of slices, and trim frames off the start of a video latent. The input dict is never mutated."""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.node_api import MAX_RESOLUTION, Combo, Int, Latent, Node, Output, Schema, ValidationError

__all__ = ["LatentConcat", "LatentCut", "LatentCutToBatch", "TrimVideoLatent"]

_DIM_TIP = "x: width, y: height, t: frames (of a video latent)."


def _axis(samples: torch.Tensor, dim: str) -> int:
    """The tensor axis of ``x``/``y``/``t`` counted from the end (``t`` of a 4-D latent is its channels)."""
    return samples.ndim - {"x": 1, "y": 2, "t": 3}[dim]


def _with_samples(latent: dict[str, Any], samples: torch.Tensor, *, same_batch: bool = True) -> dict[str, Any]:
    out = {k: v for k, v in latent.items() if same_batch or k not in ("noise_mask", "batch_index")}
    out["samples"] = samples
    return out


class LatentConcat(Node):
    """Join `samples2` to `samples1` along x, y or t (a leading minus puts `samples2` first);
    `samples2`'s batch is repeated or cut to `samples1`'s."""

    SCHEMA = Schema(
        "LatentConcat",
        display_name="LatentConcat",
        category="latent/advanced",
        inputs=[
            Latent("samples1", tooltip="The first latent; its other keys are kept."),
            Latent("samples2", tooltip="The latent joined to it (same size on the other dimensions)."),
            Combo("dim", ["x", "-x", "y", "-y", "t", "-t"], tooltip=_DIM_TIP + " A minus puts samples2 first."),
        ],
        outputs=[Output("LATENT", "LATENT", tooltip="The joined latent.")],
    )

    @classmethod
    def execute(cls, samples1: dict[str, Any], samples2: dict[str, Any], dim: str) -> tuple[dict[str, Any]]:
        s1, s2 = samples1["samples"], samples2["samples"]
        if s2.shape[0] != s1.shape[0]:
            s2 = s2.repeat((-(-s1.shape[0] // s2.shape[0]),) + (1,) * (s2.ndim - 1))[: s1.shape[0]]
        axis = -{"x": 1, "y": 2, "t": 3}[dim.lstrip("-")]
        if s1.ndim != s2.ndim or any(a != b for i, (a, b) in enumerate(zip(s1.shape, s2.shape)) if i != s1.ndim + axis):
            raise ValidationError(f"`samples2` {tuple(s2.shape)} cannot join `samples1` {tuple(s1.shape)} along {dim!r}: "
                                  "the other dimensions must match")
        parts = (s2, s1) if dim.startswith("-") else (s1, s2)
        return (_with_samples(samples1, torch.cat(parts, dim=axis)),)


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
