"""Regional conditioning nodes with ComfyUI's names and rules: ConditioningSetArea (pixels),
ConditioningSetAreaPercentage and ConditioningSetAreaPercentageVideo (fractions of the latent),
ConditioningSetAreaStrength and ConditioningSetMask.

The nodes only write ComfyUI's keys on each entry (``area``, ``strength``, ``mask``,
``mask_strength``, ``set_area_to_bounds``); the sampler (:mod:`nodeloom.diffusion.regions`)
resolves them against the latent and weights each entry's prediction by them.
"""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.diffusion.regions import with_mask
from nodeloom.errors import ValidationError
from nodeloom.node_api import IO, MAX_RESOLUTION, Combo, Conditioning, Float, Int, Mask, Node, Output, Schema

__all__ = ["ConditioningSetArea", "ConditioningSetAreaPercentage", "ConditioningSetAreaPercentageVideo",
           "ConditioningSetAreaStrength", "ConditioningSetMask"]


def _with(conditioning: list[Any], values: dict[str, Any]) -> list[Any]:
    """Each entry of ``conditioning`` with ``values`` set on a copy of its options."""
    return [[item[0], {**(item[1] if len(item) > 1 else {}), **values}] for item in conditioning]


def _strength() -> Float:
    return Float("strength", 1.0, min=0.0, max=10.0, step=0.01,
                 tooltip="The entry's weight where it acts, against the other entries of its side.")


def _fraction(name: str, default: float, what: str) -> Float:
    return Float(name, default, min=0.0, max=1.0, step=0.01, tooltip=f"{what}, as a fraction of the latent.")


class ConditioningSetArea(Node):
    """Let a conditioning act only inside a rectangle of the image (in pixels, on the 8-pixel grid)."""

    SCHEMA = Schema(
        "ConditioningSetArea", display_name="Conditioning (Set Area)", category="conditioning",
        inputs=[Conditioning("conditioning", tooltip="The conditioning to confine."),
                Int("width", 64, min=64, max=MAX_RESOLUTION, step=8, tooltip="The area's width in pixels."),
                Int("height", 64, min=64, max=MAX_RESOLUTION, step=8, tooltip="The area's height in pixels."),
                Int("x", 0, min=0, max=MAX_RESOLUTION, step=8, tooltip="The area's left edge in pixels."),
                Int("y", 0, min=0, max=MAX_RESOLUTION, step=8, tooltip="The area's top edge in pixels."),
                _strength()],
        outputs=[Output(IO.CONDITIONING, "CONDITIONING")],
    )

    @classmethod
    def execute(cls, conditioning: list[Any], width: int, height: int, x: int, y: int, strength: float) -> tuple[Any, ...]:
        area = (int(height) // 8, int(width) // 8, int(y) // 8, int(x) // 8)  # latent units, as ComfyUI stores it
        return (_with(conditioning, {"area": area, "strength": float(strength), "set_area_to_bounds": False}),)


class ConditioningSetAreaPercentage(Node):
    """Let a conditioning act only inside a rectangle given as fractions of the image."""

    SCHEMA = Schema(
        "ConditioningSetAreaPercentage", display_name="Conditioning (Set Area with Percentage)", category="conditioning",
        inputs=[Conditioning("conditioning", tooltip="The conditioning to confine."),
                _fraction("width", 1.0, "The area's width"), _fraction("height", 1.0, "The area's height"),
                _fraction("x", 0.0, "The area's left edge"), _fraction("y", 0.0, "The area's top edge"),
                _strength()],
        outputs=[Output(IO.CONDITIONING, "CONDITIONING")],
    )

    @classmethod
    def execute(cls, conditioning: list[Any], width: float, height: float, x: float, y: float,
                strength: float) -> tuple[Any, ...]:
        area = ("percentage", float(height), float(width), float(y), float(x))
        return (_with(conditioning, {"area": area, "strength": float(strength), "set_area_to_bounds": False}),)


class ConditioningSetAreaPercentageVideo(Node):
    """Let a conditioning act only inside a box of a video latent (frames, height, width) given as fractions."""

    SCHEMA = Schema(
        "ConditioningSetAreaPercentageVideo", display_name="ConditioningSetAreaPercentageVideo", category="conditioning",
        inputs=[Conditioning("conditioning", tooltip="The conditioning to confine."),
                _fraction("width", 1.0, "The box's width"), _fraction("height", 1.0, "The box's height"),
                _fraction("temporal", 1.0, "The box's length in frames"),
                _fraction("x", 0.0, "The box's left edge"), _fraction("y", 0.0, "The box's top edge"),
                _fraction("z", 0.0, "The box's first frame"), _strength()],
        outputs=[Output(IO.CONDITIONING, "CONDITIONING")],
    )

    @classmethod
    def execute(cls, conditioning: list[Any], width: float, height: float, temporal: float, x: float, y: float,
                z: float, strength: float) -> tuple[Any, ...]:
        area = ("percentage", float(temporal), float(height), float(width), float(z), float(y), float(x))
        return (_with(conditioning, {"area": area, "strength": float(strength), "set_area_to_bounds": False}),)


class ConditioningSetAreaStrength(Node):
    """Set a conditioning's weight against the other entries of its side."""

    SCHEMA = Schema(
        "ConditioningSetAreaStrength", display_name="ConditioningSetAreaStrength", category="conditioning",
        inputs=[Conditioning("conditioning", tooltip="The conditioning to weight."), _strength()],
        outputs=[Output(IO.CONDITIONING, "CONDITIONING")],
    )

    @classmethod
    def execute(cls, conditioning: list[Any], strength: float) -> tuple[Any, ...]:
        return (_with(conditioning, {"strength": float(strength)}),)


class ConditioningSetMask(Node):
    """Let a conditioning act where a mask is set, weighted by the mask's values."""

    SCHEMA = Schema(
        "ConditioningSetMask", display_name="Conditioning (Set Mask)", category="conditioning",
        inputs=[Conditioning("conditioning", tooltip="The conditioning to confine."),
                Mask("mask", tooltip="Where the conditioning acts (scaled to the latent when sampling)."),
                Float("strength", 1.0, min=0.0, max=10.0, step=0.01, tooltip="Multiplies the mask."),
                Combo("set_cond_area", ["default", "mask bounds"],
                      tooltip="`mask bounds`: the model sees only the mask's bounding box (at least 8 latent "
                              "pixels a side) for this entry.")],
        outputs=[Output(IO.CONDITIONING, "CONDITIONING")],
    )

    @classmethod
    def execute(cls, conditioning: list[Any], mask: torch.Tensor, strength: float, set_cond_area: str) -> tuple[Any, ...]:
        if set_cond_area not in ("default", "mask bounds"):
            raise ValidationError(f"ConditioningSetMask: `set_cond_area` must be 'default' or 'mask bounds', got '{set_cond_area}'")
        return (with_mask(conditioning, mask, strength, set_cond_area != "default"),)
