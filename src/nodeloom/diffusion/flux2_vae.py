"""The Flux.2 VAE (``flux2-vae.safetensors``): a 32-channel autoencoder whose latents the model
sees patchified into 2×2 (128 channels at 1/16 of the image size) and normalised by the VAE's own
batch-norm statistics.

Files: the original single-file layout (``encoder.down.N.block.M``, ``decoder.up.N``, with the
``bn.running_mean``/``bn.running_var`` statistics, quant convs at the top or inside the
encoder/decoder) loads into diffusers' ``AutoencoderKLFlux2`` through diffusers' LDM key converter.
:class:`Flux2Vae` is its VAE value: LATENT values hold the patchified, normalised latent — what
EmptyFlux2LatentImage makes and the transformer samples — so encode ends and decode starts with
that step. Imports no node or engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from nodeloom.diffusion.models import VaeModel
from nodeloom.errors import ValidationError, require

__all__ = ["Flux2Vae", "is_flux2_vae", "load_flux2_vae", "patchify", "unpatchify"]

_NESTED = {"encoder.quant_conv.": "quant_conv.", "decoder.post_quant_conv.": "post_quant_conv."}


def is_flux2_vae(keys: Any) -> bool:
    """True for a state dict (or header keys) of the Flux.2 VAE (its batch-norm statistics)."""
    return "bn.running_mean" in keys and "decoder.conv_in.weight" in keys


def patchify(x: torch.Tensor) -> torch.Tensor:
    """``[B,C,H,W]`` → ``[B,4C,H/2,W/2]``, each channel's 2×2 patch as four channels (the release's order)."""
    b, c, h, w = x.shape
    return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, c * 4, h // 2, w // 2)


def unpatchify(x: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`patchify`."""
    b, c, h, w = x.shape
    return x.reshape(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c // 4, h * 2, w * 2)


def load_flux2_vae(sd: dict[str, Any], name: str, dtype: Any = None) -> Any:
    """An ``AutoencoderKLFlux2`` from original-layout weights, sizes read from their shapes.

    Raises:
        ValidationError: the weights do not fit (named after ``name``).
    """
    diffusers = require("diffusers", "diffusion")
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    from nodeloom.diffusion.detect import family_defaults, infer_vae_config

    src = {}
    for key, value in sd.items():
        for nested, top in _NESTED.items():
            key = top + key[len(nested):] if key.startswith(nested) else key
        src[key] = value
    cfg = infer_vae_config(src, family_defaults("sd1")["vae"])
    cfg.update(latent_channels=src["decoder.conv_in.weight"].shape[1], use_quant_conv="quant_conv.weight" in src,
               use_post_quant_conv="post_quant_conv.weight" in src)
    keep = ("in_channels", "out_channels", "down_block_types", "up_block_types", "block_out_channels",
            "layers_per_block", "latent_channels", "norm_num_groups", "use_quant_conv", "use_post_quant_conv")
    vae = diffusers.AutoencoderKLFlux2(**{k: cfg[k] for k in keep if k in cfg})
    weights = convert_ldm_vae_checkpoint(src, dict(cfg))
    for key in ("bn.running_mean", "bn.running_var", "bn.num_batches_tracked"):
        if key in src:
            weights[key] = src[key]
    missing, _ = vae.load_state_dict(weights, strict=False)
    missing = [k for k in missing if k != "bn.num_batches_tracked"]
    if missing:
        raise ValidationError(f"`{name}` lacks {len(missing)} weights of the Flux.2 VAE, e.g. `{missing[0]}`",
                              type="invalid_model_file", extra_info={"name": name})
    return (vae.to(dtype) if dtype is not None else vae).eval()


@dataclass(frozen=True)
class Flux2Vae(VaeModel):
    """The Flux.2 VAE value: LATENT ``[B,128,H/16,W/16]``, patchified and batch-normalised."""

    @property
    def downscale_ratio(self) -> int:
        return 2 ** len(self.vae.config.block_out_channels)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels) * 4

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bn = self.vae.bn
        mean = bn.running_mean.view(1, -1, 1, 1).to(like.device, like.dtype)
        std = torch.sqrt(bn.running_var.view(1, -1, 1, 1) + self.vae.config.batch_norm_eps).to(like.device, like.dtype)
        return mean, std

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor, manager: Any = None) -> torch.Tensor:
        """IMAGE ``[B,H,W,C]`` in 0..1 → the normalised 128-channel latent (posterior mean); H, W
        multiples of 16 (others are cut down to one, as the release crops)."""
        vae = manager.prepare(self.vae, dtype=torch.float32) if manager is not None else self.vae
        dev = next(vae.parameters()).device
        r = self.downscale_ratio
        h, w = pixels.shape[1] // r * r, pixels.shape[2] // r * r
        if h == 0 or w == 0:
            raise ValidationError(f"the Flux.2 VAE needs images of at least {r}×{r} pixels, got"
                                  f" {pixels.shape[2]}×{pixels.shape[1]}")
        x = pixels[:, :h, :w, :3].movedim(-1, 1).to(dev, torch.float32) * 2.0 - 1.0
        lat = patchify(vae.encode(x).latent_dist.mode().float())
        mean, std = self._stats(lat)
        return ((lat - mean) / std).cpu()

    @torch.no_grad()
    def decode(self, latent: torch.Tensor, manager: Any = None) -> torch.Tensor:
        """The normalised 128-channel latent → IMAGE ``[B,H,W,3]`` in 0..1."""
        if latent.ndim != 4 or latent.shape[1] != self.latent_channels:
            raise ValidationError(f"the Flux.2 VAE decodes [B,{self.latent_channels},h,w] latents, got"
                                  f" {tuple(latent.shape)} (a latent of another family?)")
        vae = manager.prepare(self.vae, dtype=torch.float32) if manager is not None else self.vae
        dev = next(vae.parameters()).device
        lat = latent.to(dev, torch.float32)
        mean, std = self._stats(lat)
        img = vae.decode(unpatchify(lat * std + mean)).sample
        return (img / 2 + 0.5).clamp(0, 1).movedim(1, -1).float().cpu()
