"""Cheap step previews: a linear latent → RGB map calibrated once per VAE, applied to each step's estimate.

The map is fitted by least squares between latents of a few smooth synthetic images (encoded by
the model's own VAE) and those images averaged down to the latent grid, so it works for any VAE
without hard-coded factors. Pure torch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["fit_latent_rgb", "latent_preview"]


def _calibration_images(n: int = 6, size: int = 64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    coarse = torch.rand(n, 3, 4, 4, generator=gen)
    smooth = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    return smooth.movedim(1, -1)


def fit_latent_rgb(vae: Any, manager: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit ``rgb ≈ latent @ weight + bias`` for a :class:`~nodeloom.diffusion.models.VaeModel`.

    Returns:
        ``(weight [C, 3], bias [3])`` on the CPU.
    """
    images = _calibration_images()
    latents = vae.encode(images, manager)  # [n, C, h, w]
    small = F.adaptive_avg_pool2d(images.movedim(-1, 1), latents.shape[-2:])
    x = latents.movedim(1, -1).reshape(-1, latents.shape[1])
    y = small.movedim(1, -1).reshape(-1, 3)
    design = torch.cat([x, torch.ones(x.shape[0], 1)], dim=1)
    solution = torch.linalg.lstsq(design, y).solution
    return solution[:-1], solution[-1]


def latent_preview(latent: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """An IMAGE-like ``[h, w, 3]`` preview (0..1) of the first latent in a batch."""
    rgb = latent[0].detach().float().cpu().movedim(0, -1) @ weight + bias
    return rgb.clamp(0, 1)
