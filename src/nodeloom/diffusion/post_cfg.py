"""Functions applied to the guided estimate after classifier-free guidance (ComfyUI's
``sampler_post_cfg_function``): each gets ``{denoised, cond_denoised, uncond_denoised, cond_scale,
input, sigma}`` and returns the new denoised estimate. Pure torch, no models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["PostCfg", "cfg_norm"]

PostCfg = Callable[[dict[str, Any]], torch.Tensor]


def cfg_norm(strength: float) -> PostCfg:
    """CFGNorm: shrink the guided estimate, pixel by pixel, to no more than the positive estimate's
    norm over channels, then scale it by ``strength``."""

    def apply(args: dict[str, Any]) -> torch.Tensor:
        guided, cond = args["denoised"], args["cond_denoised"]
        scale = (torch.norm(cond, dim=1, keepdim=True) / (torch.norm(guided, dim=1, keepdim=True) + 1e-8)).clamp(0.0, 1.0)
        return guided * scale * strength

    return apply
