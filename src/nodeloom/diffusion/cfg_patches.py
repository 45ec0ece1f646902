"""Guidance patches with ComfyUI's math, as functions for a MODEL's CFG hooks: CFG-Zero* (a
post-CFG correction by the optimal scale of the negative estimate), RescaleCFG (a guidance formula
that rescales the guided v-prediction toward the positive one's spread) and CFG overrides (a fixed
CFG scale inside a start/end percent range). Pure torch, no models."""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.diffusion.post_cfg import PostCfg

__all__ = ["CFG_OVERRIDES", "cfg_at", "cfg_zero_star", "optimized_scale", "rescale_cfg"]

#: the ``model_options`` key holding ``(start_percent, end_percent, cfg)`` overrides, oldest first
CFG_OVERRIDES = "cfg_overrides"


def optimized_scale(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Per batch item, the scale s minimising ‖positive − s·negative‖: ⟨p, n⟩ / (‖n‖² + 1e-8),
    shaped to broadcast over the item."""
    pos, neg = positive.reshape(positive.shape[0], -1), negative.reshape(negative.shape[0], -1)
    dot = torch.sum(pos * neg, dim=1, keepdim=True)
    norm = torch.sum(neg ** 2, dim=1, keepdim=True) + 1e-8
    return (dot / norm).reshape([positive.shape[0]] + [1] * (positive.ndim - 1))


def cfg_zero_star(args: dict[str, Any]) -> torch.Tensor:
    """CFG-Zero*: the guided estimate with its negative part scaled by the optimal scale α of the
    negative noise prediction onto the positive one (``out + u·(α−1) + cfg·u·(1−α)``). With no
    negative estimate (CFG 1 skipped it) the estimate is returned as is."""
    out, uncond = args["denoised"], args.get("uncond_denoised")
    if uncond is None:
        return out
    x, cond, scale = args["input"], args["cond_denoised"], args["cond_scale"]
    alpha = optimized_scale(x - cond, x - uncond)
    return out + uncond * (alpha - 1.0) + scale * uncond * (1.0 - alpha)


def rescale_cfg(multiplier: float) -> PostCfg:
    """RescaleCFG's guidance formula (a ``sampler_cfg_function``): guidance done on the
    v-prediction read from the two estimates, the result's standard deviation rescaled to the
    positive one's, blended with plain guidance by ``multiplier`` (0 is plain CFG). Returns
    ``input − denoised`` as ComfyUI's cfg functions do."""

    def apply(args: dict[str, Any]) -> torch.Tensor:
        cond, uncond, scale, x_orig = args["cond"], args["uncond"], args["cond_scale"], args["input"]
        sigma = args["sigma"].reshape(args["sigma"].shape[:1] + (1,) * (cond.ndim - 1))
        x = x_orig / (sigma * sigma + 1.0)
        root = (sigma ** 2 + 1.0) ** 0.5
        v_cond = ((x - (x_orig - cond)) * root) / sigma
        v_uncond = ((x - (x_orig - uncond)) * root) / sigma
        v_cfg = v_uncond + scale * (v_cond - v_uncond)
        spread = torch.std(v_cond, dim=(1, 2, 3), keepdim=True) / torch.std(v_cfg, dim=(1, 2, 3), keepdim=True)
        rescaled = v_cfg * spread
        final = multiplier * rescaled + (1.0 - multiplier) * v_cfg
        return x_orig - (x - final * sigma / root)

    return apply


def cfg_at(options: dict[str, Any], sampling: Any, sigma: torch.Tensor, cfg: float) -> float:
    """The CFG scale at ``sigma``: the newest override (the one nearest the sampler) whose start/end
    percent range holds it, else ``cfg``."""
    key = float(sigma.reshape(-1)[0])
    for start, end, scale in reversed(options.get(CFG_OVERRIDES) or ()):
        if sampling.percent_to_sigma(end) <= key <= sampling.percent_to_sigma(start):
            return float(scale)
    return cfg
