"""Guidance functions a MODEL patch installs, for the nodes TemporalScoreRescaling (TSR),
VideoLinearCFGGuidance and SkipLayerGuidanceDiT: the math only, on estimates handed over by the
sampler (:func:`nodeloom.diffusion.sampling.apply_cfg_patches` and the post-CFG loop).
Model code: imports no node class, engine or adapter.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from nodeloom.errors import ValidationError

__all__ = ["half_log_snr", "skip_layer_guidance", "temporal_score_rescaling", "tsr_factor", "video_linear_cfg"]


def half_log_snr(sigma: float, flow: bool) -> float:
    """½·log SNR at ``sigma``: ``log((1 − σ)/σ)`` on a flow schedule, ``−log σ`` on the SD ones."""
    if flow:
        return math.log(max(1.0 - sigma, 0.0)) - math.log(sigma) if sigma < 1.0 else -math.inf
    return -math.log(sigma)


def tsr_factor(snr: float, k: float, variance: float) -> float:
    """TSR's score ratio r = (SNR·v + 1) / (SNR·v / k + 1) (arXiv 2510.01184, eq. 6); k when SNR is infinite."""
    if math.isinf(snr):
        return k
    return (snr * variance + 1.0) / (snr * variance / k + 1.0)


def temporal_score_rescaling(k: float, tsr_sigma: float, flow: bool) -> Callable[[dict[str, Any]], torch.Tensor]:
    """A post-CFG function scaling the noise the guided estimate implies by r (:func:`tsr_factor`):
    with α = σ·e^{½·log SNR} (1 − σ for flow, 1 otherwise), ``x/α + r·(denoised − x/α)``. Nothing
    changes when ``k`` is 1, at σ 0, or where SNR is 0 (σ 1 of a flow schedule)."""
    variance = float(tsr_sigma) ** 2

    def rescale(args: dict[str, Any]) -> torch.Tensor:
        denoised, x = args["denoised"], args["input"]
        sigma = float(torch.as_tensor(args["sigma"]).reshape(-1)[0])
        if k == 1 or sigma == 0:
            return denoised
        hls = half_log_snr(sigma, flow)
        snr = math.exp(2 * hls) if hls < 354 else math.inf
        if snr == 0:
            return denoised
        alpha = sigma * math.exp(hls) if not math.isinf(hls) else 1.0
        base = x / alpha
        return base + tsr_factor(snr, float(k), variance) * (denoised - base)

    return rescale


def video_linear_cfg(min_cfg: float) -> Callable[[dict[str, Any]], torch.Tensor]:
    """A ``sampler_cfg_function``: the batch's items (a video's frames) get a CFG scale rising
    linearly from ``min_cfg`` at the first to the sampler's cfg at the last (on the noise
    predictions ``cond``/``uncond``, as ComfyUI's hook receives them)."""

    def linear(args: dict[str, Any]) -> torch.Tensor:
        cond, uncond = args["cond"], args["uncond"]
        n = cond.shape[0]
        scales = torch.linspace(float(min_cfg), float(args["cond_scale"]), n, device=cond.device)
        return uncond + scales.reshape((n,) + (1,) * (cond.ndim - 1)).to(cond.dtype) * (cond - uncond)

    return linear


def skip_layer_guidance(adapter: Any, scale: float, sigma_start: float, sigma_end: float,
                        rescaling_scale: float) -> Callable[[dict[str, Any]], torch.Tensor]:
    """A post-CFG function: while σ lies in [``sigma_end``, ``sigma_start``] the positive
    conditioning runs once more through ``adapter`` (the model with some blocks skipped) and the
    guided estimate moves away from that pass, ``out + (cond − skipped)·scale``; with
    ``rescaling_scale`` r the result is then scaled by ``r·std(cond)/std(out) + 1 − r``."""

    def guide(args: dict[str, Any]) -> torch.Tensor:
        out = args["denoised"]
        sigma = float(torch.as_tensor(args["sigma"]).reshape(-1)[0])
        if scale <= 0 or not sigma_end <= sigma <= sigma_start:
            return out
        cond, again = args["cond_denoised"], args.get("cond_with")
        if again is None:
            raise ValidationError("SkipLayerGuidanceDiT: this guider gives the patch no way to run the extra "
                                  "skipped-layer pass; use CFGGuider, SamplerCustom or KSampler")
        skipped = again(adapter)
        out = out + (cond - skipped) * scale
        if rescaling_scale != 0:
            factor = float(cond.std() / out.std())
            out = out * (rescaling_scale * factor + (1 - rescaling_scale))
        return out

    return guide
