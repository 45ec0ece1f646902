"""Blend modes for two images (0..1 floats, any broadcastable shape), ComfyUI's set:
normal, multiply, screen, overlay, soft light (the W3C formula) and difference; and the
Gaussian blur of ComfyUI's post-processing nodes."""

from __future__ import annotations

import torch

__all__ = ["BLEND_MODES", "blend", "gaussian_blur"]

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


def gaussian_blur(image: torch.Tensor, radius: int, sigma: float) -> torch.Tensor:
    """Blur ``[B, H, W, C]`` images with a ``(2·radius+1)²`` Gaussian whose ``sigma`` is measured in
    units of the radius (the kernel spans −1..1), edges mirrored, as ComfyUI's Image Blur does.
    A radius of 0 returns the image."""
    if radius <= 0:
        return image
    size = 2 * radius + 1
    axis = torch.linspace(-1, 1, size, dtype=image.dtype, device=image.device)
    dist2 = axis[:, None] ** 2 + axis[None, :] ** 2
    kernel = torch.exp(-dist2 / (2.0 * sigma * sigma))
    channels = image.shape[-1]
    kernel = (kernel / kernel.sum()).expand(channels, 1, size, size)
    x = image.permute(0, 3, 1, 2)
    mode = "reflect" if radius < min(x.shape[2], x.shape[3]) else "replicate"
    x = torch.nn.functional.pad(x, (radius, radius, radius, radius), mode=mode)
    return torch.nn.functional.conv2d(x, kernel, groups=channels).permute(0, 2, 3, 1)
