"""Blend modes for two images (0..1 floats, any broadcastable shape), ComfyUI's set:
normal, multiply, screen, overlay, soft light (the W3C formula) and difference."""

from __future__ import annotations

import torch

__all__ = ["BLEND_MODES", "blend"]

BLEND_MODES = ("normal", "multiply", "screen", "overlay", "soft_light", "difference")


def _soft_light_d(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.25, ((16 * x - 12) * x + 4) * x, torch.sqrt(x))


def blend(base: torch.Tensor, top: torch.Tensor, mode: str) -> torch.Tensor:
    """``top`` blended onto ``base`` with ``mode`` (unclamped; ``difference`` may go negative).

    Raises:
        ValueError: an unknown mode.
    """
    if mode == "normal":
        return top
    if mode == "multiply":
        return base * top
    if mode == "screen":
        return 1 - (1 - base) * (1 - top)
    if mode == "overlay":
        return torch.where(base <= 0.5, 2 * base * top, 1 - 2 * (1 - base) * (1 - top))
    if mode == "soft_light":
        return torch.where(top <= 0.5, base - (1 - 2 * top) * base * (1 - base),
                           base + (2 * top - 1) * (_soft_light_d(base) - base))
    if mode == "difference":
        return base - top
    raise ValueError(f"`blend_mode` must be one of {list(BLEND_MODES)}, got {mode!r}")
