"""Guidance patches with ComfyUI's math, as functions for a MODEL's CFG hooks: CFG-Zero* (a
post-CFG correction by the optimal scale of the negative estimate), RescaleCFG (a guidance formula
that rescales the guided v-prediction toward the positive one's spread), CFG overrides (a fixed
CFG scale inside a start/end percent range), RenormCFG (guidance truncated late in the run and
its norm capped relative to the positive estimate's), Mahiro (post-CFG weighting toward the positive
estimate's direction), TCFG (the negative noise prediction damped to its shared direction with
the positive one) and APG (adaptive projected guidance, before CFG). Pure torch, no models."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from nodeloom.diffusion.post_cfg import PostCfg

__all__ = ["CFG_OVERRIDES", "adaptive_projected", "cfg_at", "cfg_zero_star", "mahiro", "optimized_scale", "renorm_cfg", "rescale_cfg",
           "tangential_damping", "tcfg"]

#: the MODEL ``extra`` key holding ``(start_percent, end_percent, cfg)`` overrides, oldest first
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


def renorm_cfg(cfg_trunc: float, renorm: float) -> PostCfg:
    """RenormCFG's guidance formula (a ``sampler_cfg_function``): while the step's timestep (σ) is
    below ``cfg_trunc``, plain CFG on the denoised estimates with each item's norm capped at
    ``renorm`` times the positive estimate's (``renorm`` 0: no cap); from ``cfg_trunc`` on, the
    positive estimate alone. Returns ``input − denoised``."""

    def apply(args: dict[str, Any]) -> torch.Tensor:
        cond, uncond, scale, x = args["cond_denoised"], args["uncond_denoised"], args["cond_scale"], args["input"]
        if not float(args["timestep"].reshape(-1)[0]) < cfg_trunc:
            return x - cond
        guided = uncond + scale * (cond - uncond)
        if renorm > 0.0:
            dims = tuple(range(1, cond.ndim))
            cap = torch.linalg.vector_norm(cond, dim=dims, keepdim=True) * renorm
            norm = torch.linalg.vector_norm(guided, dim=dims, keepdim=True)
            guided = torch.where(norm >= cap, guided * (cap / norm), guided)
        return x - guided

    return apply


def cfg_at(extra: dict[str, Any], sampling: Any, sigma: torch.Tensor, cfg: float) -> float:
    """The CFG scale at ``sigma``: the newest override (the one nearest the sampler) whose start/end
    percent range holds it, else ``cfg``."""
    key = float(sigma.reshape(-1)[0])
    for start, end, scale in reversed(extra.get(CFG_OVERRIDES) or ()):
        if sampling.percent_to_sigma(end) <= key <= sampling.percent_to_sigma(start):
            return float(scale)
    return cfg


def mahiro(args: dict[str, Any]) -> torch.Tensor:
    """Mahiro's post-CFG function: the guided estimate blended with the positive estimate times the
    scale, weighted by how alike (cosine over channels of sign-kept square roots, averaged) the
    negative leap and the mean of both are."""
    scale, guided = args["cond_scale"], args["denoised"]
    leap = args["cond_denoised"] * scale
    u_leap = args["uncond_denoised"] * scale
    merge = (leap + guided) / 2
    root_u = torch.sqrt(u_leap.abs()) * u_leap.sign()
    root_m = torch.sqrt(merge.abs()) * merge.sign()
    weight = 2 * (F.cosine_similarity(root_u, root_m).mean() + 1)
    return (weight * guided + (4 - weight) * leap) / 4


def tangential_damping(cond_score: torch.Tensor, uncond_score: torch.Tensor) -> torch.Tensor:
    """Per batch item, the negative noise prediction projected on the first right-singular vector of
    the stacked [negative, positive] predictions (its tangential part dropped)."""
    batch = cond_score.shape[0]
    cond_flat = cond_score.reshape(batch, 1, -1).float()
    uncond_flat = uncond_score.reshape(batch, 1, -1).float()
    stacked = torch.cat((uncond_flat, cond_flat), dim=1)
    try:
        _, _, vh = torch.linalg.svd(stacked, full_matrices=False)
    except RuntimeError:  # some accelerator builds lack this SVD; the CPU has it
        _, _, vh = torch.linalg.svd(stacked.cpu(), full_matrices=False)
    direction = vh[:, 0:1, :].to(uncond_flat.device)
    damped = (uncond_flat @ direction.transpose(-2, -1)) * direction
    return damped.reshape_as(uncond_score).to(uncond_score.dtype)


def tcfg(args: dict[str, Any]) -> list[torch.Tensor]:
    """TCFG's pre-CFG function: the negative estimate rebuilt from its damped noise prediction."""
    outs = args["conds_out"]
    if len(outs) <= 1:
        return outs
    x, cond, uncond = args["input"], outs[0], outs[1]
    return [cond, x - tangential_damping(x - cond, x - uncond)] + list(outs[2:])


def _project(v0: torch.Tensor, v1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``v0``'s parts parallel and orthogonal to ``v1`` over the last three dimensions."""
    unit = F.normalize(v1, dim=[-1, -2, -3])
    parallel = (v0 * unit).sum(dim=[-1, -2, -3], keepdim=True) * unit
    return parallel, v0 - parallel


def adaptive_projected(eta: float, norm_threshold: float, momentum: float) -> Any:
    """APG's pre-CFG function: the guidance direction (positive − negative) optionally averaged with
    ``momentum`` over the run (reset when σ rises, i.e. a new run), capped at ``norm_threshold``
    in norm, its part parallel to the positive estimate scaled by ``eta``; the positive estimate is
    rewritten so that CFG at the sampler's scale yields that guidance."""
    state: dict[str, Any] = {"avg": None, "sigma": None}

    def apply(args: dict[str, Any]) -> list[torch.Tensor]:
        outs = args["conds_out"]
        if len(outs) == 1:
            return outs
        cond, uncond, sigma, scale = outs[0], outs[1], args["sigma"][0], args["cond_scale"]
        if state["sigma"] is not None and sigma > state["sigma"]:
            state["avg"] = None
        state["sigma"] = sigma
        guidance = cond - uncond
        if momentum != 0:
            state["avg"] = guidance if state["avg"] is None else momentum * state["avg"] + guidance
            guidance = state["avg"]
        if norm_threshold > 0:
            norm = guidance.norm(p=2, dim=[-1, -2, -3], keepdim=True)
            guidance = guidance * torch.minimum(torch.ones_like(norm), norm_threshold / norm)
        parallel, orthogonal = _project(guidance, cond)
        return [uncond + orthogonal + eta * parallel + (cond - uncond) / scale, uncond] + list(outs[2:])

    return apply
