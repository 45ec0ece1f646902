"""Whole-latent operations of ComfyUI's LATENT_OPERATION values: Reinhard tone-mapping of the
per-position channel-vector magnitude, unsharp sharpening of the normalised latent (magnitude
kept), and a blend toward a reference latent. Pure functions on ``[B, C, H, W]`` (or
``[B, C, T, H, W]`` for the blend) tensors; no nodes, no model code."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["blend_toward", "sharpen", "tonemap_reinhard"]


def tonemap_reinhard(latent: torch.Tensor, multiplier: float) -> torch.Tensor:
    """Compress the length of each position's channel vector with Reinhard's ``m / (m + 1)``,
    scaled so that ``top = (mean + 5·std of the lengths) · multiplier`` is the curve's unit;
    directions are unchanged. ``multiplier`` 0 gives zeros (the curve's top is 0)."""
    magnitude = torch.linalg.vector_norm(latent, dim=1, keepdim=True) + 1e-10
    direction = latent / magnitude
    dims = tuple(range(1, latent.ndim))
    top = (torch.std(magnitude, dim=dims, keepdim=True) * 5 + torch.mean(magnitude, dim=dims, keepdim=True)) * multiplier
    scaled = magnitude / top
    return direction * (scaled / (scaled + 1.0)) * top


def sharpen(latent: torch.Tensor, radius: int, sigma: float, alpha: float) -> torch.Tensor:
    """Unsharp-mask each channel of the magnitude-normalised latent with a ``(2·radius+1)²``
    Gaussian (``sigma`` in units of the radius, the kernel spanning −1..1) weighted by
    ``alpha``, then restore the magnitude. Edges are mirrored (repeated when the latent is no
    larger than the radius, where mirroring is undefined)."""
    magnitude = torch.linalg.vector_norm(latent, dim=1, keepdim=True) + 1e-6
    normalised = latent / magnitude
    size = 2 * radius + 1
    axis = torch.linspace(-1, 1, size, device=latent.device)
    kernel = torch.exp(-(axis[:, None] ** 2 + axis[None, :] ** 2) / (2.0 * sigma * sigma))
    kernel = kernel / kernel.sum() * (alpha * -10)
    kernel[radius, radius] = kernel[radius, radius] - kernel.sum() + 1.0
    channels = latent.shape[1]
    mode = "reflect" if radius < min(latent.shape[-2:]) else "replicate"
    padded = F.pad(normalised, (radius, radius, radius, radius), mode=mode)
    weight = kernel.to(latent.dtype).expand(channels, 1, size, size)
    return magnitude * F.conv2d(padded, weight, groups=channels)


def blend_toward(latent: torch.Tensor, reference: torch.Tensor, strength: float) -> torch.Tensor:
    """``latent`` moved ``strength`` of the way toward ``reference`` (0 keeps it, 1 gives the
    reference), the reference first resized (nearest) to the latent's spatial size and its batch
    repeated or cut to the latent's.

    Raises:
        ValueError: the two have different channel counts or ranks.
    """
    if reference.ndim != latent.ndim or reference.shape[1] != latent.shape[1]:
        raise ValueError(f"`reference` {tuple(reference.shape)} cannot blend into a latent {tuple(latent.shape)}: "
                         "rank and channel count must match")
    ref = reference.to(device=latent.device, dtype=latent.dtype)
    if ref.shape[2:] != latent.shape[2:]:
        ref = F.interpolate(ref, size=latent.shape[2:], mode="nearest")
    if ref.shape[0] != latent.shape[0]:
        ref = ref.repeat((-(-latent.shape[0] // ref.shape[0]),) + (1,) * (ref.ndim - 1))[: latent.shape[0]]
    return latent * (1.0 - strength) + ref * strength
