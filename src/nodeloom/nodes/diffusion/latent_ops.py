"""Latent batch, transform and compositing nodes with ComfyUI's names, inputs and rules:
LatentFromBatch, RepeatLatentBatch, LatentComposite, LatentBlend, LatentRotate, LatentFlip, LatentCrop.

A LATENT is ``{"samples": [B,C,h,w], "noise_mask"?, "batch_index"?}``; pixel sizes and offsets
are divided by 8 to latent cells. ``batch_index`` records which items of a larger batch a latent
holds, so their seeded noise is the noise they would have had in the full batch.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from nodeloom.errors import ValidationError
from nodeloom.node_api import IO, MAX_RESOLUTION, Combo, Float, Int, Latent, Node, Output, Schema
from nodeloom.nodes.diffusion.latent import upscale_latent

__all__ = ["LatentBatch", "LatentBlend", "LatentComposite", "LatentCrop", "LatentFlip", "LatentFromBatch",
           "LatentRotate", "RepeatLatentBatch"]

ROTATIONS = ["none", "90 degrees", "180 degrees", "270 degrees"]
FLIPS = ["x-axis: vertically", "y-axis: horizontally"]


def _latent_output(tooltip: str = "The resulting latent.") -> Output:
    return Output(IO.LATENT, "LATENT", tooltip=tooltip)


class LatentFromBatch(Node):
    """Take ``length`` latents starting at ``batch_index``; they keep the noise they had in the batch."""

    SCHEMA = Schema(
        "LatentFromBatch", display_name="Latent From Batch", category="latent/batch",
        inputs=[Latent("samples", tooltip="The batch to take from."),
                Int("batch_index", 0, min=0, max=63, tooltip="The first item taken (clamped to the batch)."),
                Int("length", 1, min=1, max=64, tooltip="How many items to take (clamped to the batch).")],
        outputs=[_latent_output()],
    )

    @classmethod
    def execute(cls, samples: dict[str, Any], batch_index: int, length: int) -> tuple[Any, ...]:
        out = dict(samples)
        src = samples["samples"]
        start = min(src.shape[0] - 1, batch_index)
        stop = start + min(src.shape[0] - start, length)
        out["samples"] = src[start:stop].clone()
        if samples.get("noise_mask") is not None:
            masks = samples["noise_mask"]
            if masks.shape[0] == 1:
                out["noise_mask"] = masks.clone()
            else:
                if masks.shape[0] < src.shape[0]:
                    masks = masks.repeat(math.ceil(src.shape[0] / masks.shape[0]), *([1] * (masks.ndim - 1)))[: src.shape[0]]
                out["noise_mask"] = masks[start:stop].clone()
        indices = samples.get("batch_index")
        out["batch_index"] = list(range(start, stop)) if indices is None else list(indices)[start:stop]
        return (out,)


class RepeatLatentBatch(Node):
    """Repeat the whole batch ``amount`` times (the copies get the noise of the later batch positions)."""

    SCHEMA = Schema(
        "RepeatLatentBatch", display_name="Repeat Latent Batch", category="latent/batch",
        inputs=[Latent("samples", tooltip="The batch to repeat."),
                Int("amount", 1, min=1, max=64, tooltip="How many copies of the batch.")],
        outputs=[_latent_output()],
    )

    @classmethod
    def execute(cls, samples: dict[str, Any], amount: int) -> tuple[Any, ...]:
        out = dict(samples)
        src = samples["samples"]
        out["samples"] = src.repeat(amount, *([1] * (src.ndim - 1)))
        mask = samples.get("noise_mask")
        if mask is not None and mask.shape[0] > 1:
            out["noise_mask"] = mask.repeat(amount, *([1] * (mask.ndim - 1)))
        indices = samples.get("batch_index")
        if indices is not None:
            offset = max(indices) - min(indices) + 1
            out["batch_index"] = list(indices) + [x + i * offset for i in range(1, amount) for x in indices]
        return (out,)


class LatentBatch(Node):
    """Join two latent batches into one; the second is resized to the first's size when they differ."""

    SCHEMA = Schema(
        "LatentBatch", category="latent/batch",
        inputs=[Latent("samples1", tooltip="The first batch (sets the size)."),
                Latent("samples2", tooltip="The batch appended after it.")],
        outputs=[_latent_output("Both batches, the first one's items first.")],
    )

    @classmethod
    def execute(cls, samples1: dict[str, Any], samples2: dict[str, Any]) -> tuple[Any, ...]:
        s1, s2 = samples1["samples"], samples2["samples"]
        if s1.shape[1] != s2.shape[1]:
            raise ValidationError(f"`samples2` has {s2.shape[1]} latent channels but `samples1` has {s1.shape[1]}")
        if s2.shape[2:] != s1.shape[2:]:
            s2 = upscale_latent(s2, s1.shape[3], s1.shape[2], "bilinear", "center")
        out = dict(samples1)
        out["samples"] = torch.cat([s1, s2.to(s1)], dim=0)
        first = samples1.get("batch_index", list(range(s1.shape[0])))
        out["batch_index"] = list(first) + list(samples2.get("batch_index", range(s2.shape[0])))
        return (out,)


def _feather(size: int, feather: int, ramp_start: bool, ramp_end: bool) -> torch.Tensor:
    """Per-row (or per-column) weights: a linear ramp (1/f, 2/f, …) at each edge that meets the target."""
    weights = torch.ones(size)
    for t in range(min(feather, size)):
        step = (t + 1) / feather
        if ramp_start:
            weights[t] *= step
        if ramp_end:
            weights[size - 1 - t] *= step
    return weights


class LatentComposite(Node):
    """Paste ``samples_from`` into ``samples_to`` at (x, y), optionally feathering the inner edges."""

    SCHEMA = Schema(
        "LatentComposite", display_name="Latent Composite", category="latent",
        inputs=[Latent("samples_to", tooltip="The latent pasted into."),
                Latent("samples_from", tooltip="The latent pasted."),
                Int("x", 0, min=0, max=MAX_RESOLUTION, step=8, tooltip="Left edge in pixels (multiples of 8)."),
                Int("y", 0, min=0, max=MAX_RESOLUTION, step=8, tooltip="Top edge in pixels (multiples of 8)."),
                Int("feather", 0, min=0, max=MAX_RESOLUTION, step=8,
                    tooltip="Width in pixels of the blend at edges inside the target.")],
        outputs=[_latent_output()],
    )

    @classmethod
    def execute(cls, samples_to: dict[str, Any], samples_from: dict[str, Any], x: int, y: int,
                feather: int) -> tuple[Any, ...]:
        x, y, feather = x // 8, y // 8, feather // 8
        target = samples_to["samples"].clone()
        h_to, w_to = target.shape[2], target.shape[3]
        piece = samples_from["samples"][:, :, : max(h_to - y, 0), : max(w_to - x, 0)]
        h, w = piece.shape[2], piece.shape[3]
        region = target[:, :, y:y + h, x:x + w]
        if feather == 0:
            region[...] = piece
        else:
            rows = _feather(h, feather, y != 0, y + h < h_to)
            cols = _feather(w, feather, x != 0, x + w < w_to)
            mask = (rows[:, None] * cols[None, :]).to(piece)
            region[...] = piece * mask + region * (1 - mask)
        out = dict(samples_to)
        out["samples"] = target
        return (out,)


class LatentBlend(Node):
    """``blend_factor`` · samples1 + (1 − blend_factor) · samples2; samples2 is resized (bicubic, centre crop) to match."""

    SCHEMA = Schema(
        "LatentBlend", display_name="Latent Blend", category="_for_testing",
        inputs=[Latent("samples1", tooltip="The first latent (weighted by blend_factor)."),
                Latent("samples2", tooltip="The second latent."),
                Float("blend_factor", 0.5, min=0, max=1, step=0.01, tooltip="Weight of samples1.")],
        outputs=[_latent_output()],
    )

    @classmethod
    def execute(cls, samples1: dict[str, Any], samples2: dict[str, Any], blend_factor: float) -> tuple[Any, ...]:
        a, b = samples1["samples"], samples2["samples"]
        if a.shape != b.shape:
            b = upscale_latent(b, a.shape[3], a.shape[2], "bicubic", "center")
        out = dict(samples1)
        out["samples"] = a * blend_factor + b * (1 - blend_factor)
        return (out,)


class LatentRotate(Node):
    """Rotate latents clockwise by a quarter turn, a half turn or three quarters."""

    SCHEMA = Schema(
        "LatentRotate", display_name="Rotate Latent", category="latent/transform",
        inputs=[Latent("samples", tooltip="The latent to rotate."),
                Combo("rotation", ROTATIONS, tooltip="Clockwise rotation.")],
        outputs=[_latent_output()],
    )

    @classmethod
    def execute(cls, samples: dict[str, Any], rotation: str) -> tuple[Any, ...]:
        out = dict(samples)
        out["samples"] = torch.rot90(samples["samples"], k=ROTATIONS.index(rotation), dims=[3, 2])
        return (out,)


class LatentFlip(Node):
    """Mirror latents top-to-bottom (x-axis) or left-to-right (y-axis)."""

    SCHEMA = Schema(
        "LatentFlip", display_name="Flip Latent", category="latent/transform",
        inputs=[Latent("samples", tooltip="The latent to flip."),
                Combo("flip_method", FLIPS, tooltip="The axis to mirror across.")],
        outputs=[_latent_output()],
    )

    @classmethod
    def execute(cls, samples: dict[str, Any], flip_method: str) -> tuple[Any, ...]:
        out = dict(samples)
        out["samples"] = torch.flip(samples["samples"], dims=[2 if flip_method.startswith("x") else 3])
        return (out,)


class LatentCrop(Node):
    """Cut a width × height window at (x, y) out of the latents (at least 8 cells stay reachable)."""

    SCHEMA = Schema(
        "LatentCrop", display_name="Crop Latent", category="latent/transform",
        inputs=[Latent("samples", tooltip="The latent to crop."),
                Int("width", 512, min=64, max=MAX_RESOLUTION, step=8, tooltip="Window width in pixels."),
                Int("height", 512, min=64, max=MAX_RESOLUTION, step=8, tooltip="Window height in pixels."),
                Int("x", 0, min=0, max=MAX_RESOLUTION, step=8, tooltip="Left edge in pixels."),
                Int("y", 0, min=0, max=MAX_RESOLUTION, step=8, tooltip="Top edge in pixels.")],
        outputs=[_latent_output()],
    )

    @classmethod
    def execute(cls, samples: dict[str, Any], width: int, height: int, x: int, y: int) -> tuple[Any, ...]:
        src = samples["samples"]
        x, y = min(x // 8, src.shape[3] - 8), min(y // 8, src.shape[2] - 8)
        out = dict(samples)
        out["samples"] = src[:, :, y:y + height // 8, x:x + width // 8]
        return (out,)
