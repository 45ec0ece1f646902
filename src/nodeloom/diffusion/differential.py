"""Differential diffusion: a soft inpainting mask turned, step by step, into the region still
being regenerated (pixels whose mask value is at least the run's remaining progress), as ComfyUI's
DifferentialDiffusion does through its ``denoise_mask_function``. Pure torch, no models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["differential_mask"]

MaskFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Any], torch.Tensor]


def differential_mask(strength: float = 1.0) -> MaskFn:
    """``fn(sigma, mask, sigmas, sampling)``: 1 where ``mask ≥`` the share of the run still ahead (in the model's
    timesteps, from the schedule's first sigma to its last or the model's smallest), else 0;
    ``strength`` < 1 blends that binary mask with the soft one."""

    def apply(sigma: torch.Tensor, mask: torch.Tensor, sigmas: torch.Tensor, sampling: Any) -> torch.Tensor:
        sigma_to = max(float(sampling.sigma_min), float(sigmas[-1]))
        ts_from, ts_to = float(sampling.timestep(sigmas[0])), float(sampling.timestep(sigma_to))
        threshold = (float(sampling.timestep(sigma)) - ts_to) / (ts_from - ts_to)
        binary = (mask >= threshold).to(mask.dtype)
        return strength * binary + (1 - strength) * mask if strength and strength < 1 else binary

    return apply
