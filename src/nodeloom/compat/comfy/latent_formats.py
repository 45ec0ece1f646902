"""``comfy.latent_formats``: each model family's latent layout (channels, scale), as packs read it.

nodeloom LATENT values hold raw VAE latents; ``process_in`` scales them to what the diffusion
model sees and ``process_out`` undoes it. Scale factors are the families' published VAE
scaling constants. No RGB preview factors are shipped: nodeloom fits its preview map from the
model's own VAE (:mod:`nodeloom.diffusion.preview`), so ``latent_rgb_factors`` is None.
"""

from __future__ import annotations

import torch

__all__ = ["SD15", "SDXL", "LatentFormat", "SD_X4", "for_model"]


class LatentFormat:
    """A latent layout: ``latent_channels`` and the ``scale_factor`` applied going in."""

    scale_factor = 1.0
    latent_channels = 4
    latent_dimensions = 2
    latent_rgb_factors = None
    latent_rgb_factors_bias = None
    taesd_decoder_name: str | None = None

    def process_in(self, latent: torch.Tensor) -> torch.Tensor:
        return latent * self.scale_factor

    def process_out(self, latent: torch.Tensor) -> torch.Tensor:
        return latent / self.scale_factor


class SD15(LatentFormat):
    """Stable Diffusion 1.x/2.x."""

    scale_factor = 0.18215
    taesd_decoder_name = "taesd_decoder"


class SDXL(LatentFormat):
    """Stable Diffusion XL."""

    scale_factor = 0.13025
    taesd_decoder_name = "taesdxl_decoder"


class SD_X4(LatentFormat):  # noqa: N801 - ComfyUI's name
    """The SD x4 upscaler's latent."""

    scale_factor = 0.08333


def for_model(model: object) -> LatentFormat:
    """The format of a nodeloom MODEL, built from its own ``latent_scale``."""
    scale = float(getattr(model, "latent_scale", SD15.scale_factor))
    fmt = SDXL() if getattr(model, "family", "") == "sdxl" else SD15()
    fmt.scale_factor = scale
    return fmt
