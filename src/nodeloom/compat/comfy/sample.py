"""``comfy.sample``: ``prepare_noise``, ``sample`` and ``sample_custom`` as packs call them.

Both sampling functions run nodeloom's loop through :mod:`nodeloom.compat.comfy.samplers`
and return raw latent samples (what a LATENT dict's ``"samples"`` holds). Noise is the
caller's tensor; ``seed`` drives the stochastic steps of ancestral/SDE samplers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from nodeloom.compat.comfy.samplers import CFGGuider, KSampler, check_model
from nodeloom.diffusion.sampling import prepare_noise

__all__ = ["fix_empty_latent_channels", "prepare_noise", "sample", "sample_custom"]


def fix_empty_latent_channels(model: Any, latent_image: torch.Tensor) -> torch.Tensor:
    """An all-zero latent with the wrong channel count gets the MODEL's latent channels."""
    channels = int(getattr(getattr(check_model(model, "comfy.sample.fix_empty_latent_channels"), "unet", None),
                           "config", {}).get("out_channels", latent_image.shape[1]))
    if latent_image.shape[1] != channels and torch.count_nonzero(latent_image) == 0:
        shape = list(latent_image.shape)
        shape[1] = channels
        return torch.zeros(shape, dtype=latent_image.dtype, device=latent_image.device)
    return latent_image


def sample(model: Any, noise: torch.Tensor, steps: int, cfg: float, sampler_name: str, scheduler: str,
           positive: list[Any], negative: list[Any], latent_image: torch.Tensor, denoise: float = 1.0,
           disable_noise: bool = False, start_step: int | None = None, last_step: int | None = None,
           force_full_denoise: bool = False, noise_mask: torch.Tensor | None = None,
           sigmas: torch.Tensor | None = None, callback: Callable[..., Any] | None = None,
           disable_pbar: bool = False, seed: int | None = None) -> torch.Tensor:
    """KSampler sampling of raw ``latent_image`` from ``noise``; returns raw samples."""
    sampler = KSampler(model, steps=steps, sampler=sampler_name, scheduler=scheduler, denoise=denoise)
    if disable_noise:
        noise = torch.zeros_like(latent_image, dtype=torch.float32)
    return sampler.sample(noise, positive, negative, cfg=cfg, latent_image=latent_image, start_step=start_step,
                          last_step=last_step, force_full_denoise=force_full_denoise, denoise_mask=noise_mask,
                          sigmas=sigmas, callback=callback, disable_pbar=disable_pbar, seed=seed)


def sample_custom(model: Any, noise: torch.Tensor, cfg: float, sampler: Any, sigmas: torch.Tensor,
                  positive: list[Any], negative: list[Any], latent_image: torch.Tensor,
                  noise_mask: torch.Tensor | None = None, callback: Callable[..., Any] | None = None,
                  disable_pbar: bool = False, seed: int | None = None) -> torch.Tensor:
    """SamplerCustom sampling with a SAMPLER value along ``sigmas``; returns raw samples."""
    guider = CFGGuider(model)
    guider.set_conds(positive, negative)
    guider.set_cfg(cfg)
    return guider.sample(noise, latent_image, sampler, sigmas, denoise_mask=noise_mask, callback=callback,
                         disable_pbar=disable_pbar, seed=seed)
