"""``comfy.taesd`` / ``comfy.taesd.taesd``: the tiny autoencoder (TAESD) packs build previews and
fast VAEs from.

The published TAESD layout (Ollin Boer Bohan's tiny AutoEncoder for Stable Diffusion): ``conv``
(3×3, padding 1), ``Clamp`` (a soft clamp to ±3), ``Block`` (three convolutions with a skip),
``Encoder`` / ``Decoder`` as ``torch.nn.Sequential`` stacks whose indices match the released weight
files, and ``TAESD`` holding both with the latent scale and shift. The video variant
(``comfy.taesd.taehv``) is not provided.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

__all__ = ["TAESD", "Block", "Clamp", "Decoder", "Encoder", "conv"]


def conv(n_in: int, n_out: int, **kwargs: Any) -> nn.Conv2d:
    """A 3×3 convolution keeping the size (``stride``/``bias`` passed through)."""
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


class Clamp(nn.Module):
    """``3·tanh(x/3)``: a smooth clamp of the latent to about ±3."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    """Three 3×3 convolutions with ReLUs, added to a (1×1 when widths differ) skip, then ReLU."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(conv(n_in, n_out), nn.ReLU(), conv(n_out, n_out), nn.ReLU(), conv(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(self.conv(x) + self.skip(x))


def Encoder(latent_channels: int = 4) -> nn.Sequential:  # noqa: N802 - the published name
    """RGB in [0, 1] → latent at 1/8 size: three stride-2 stages of three blocks each."""
    layers: list[nn.Module] = [conv(3, 64), Block(64, 64)]
    for _ in range(3):
        layers += [conv(64, 64, stride=2, bias=False), Block(64, 64), Block(64, 64), Block(64, 64)]
    return nn.Sequential(*layers, conv(64, latent_channels))


def Decoder(latent_channels: int = 4) -> nn.Sequential:  # noqa: N802 - the published name
    """Latent → RGB in [0, 1] at 8× size: three ×2 upsampling stages."""
    layers: list[nn.Module] = [Clamp(), conv(latent_channels, 64), nn.ReLU()]
    for _ in range(3):
        layers += [Block(64, 64), Block(64, 64), Block(64, 64), nn.Upsample(scale_factor=2), conv(64, 64, bias=False)]
    return nn.Sequential(*layers, Block(64, 64), conv(64, 3))


class TAESD(nn.Module):
    """Encoder and decoder with the VAE's latent ``vae_scale`` / ``vae_shift`` (1 and 0 until a pack sets them).

    Args:
        encoder_path / decoder_path: weight files (safetensors) of each half, or None to leave it random.
        latent_channels: 4 for SD/SDXL, 16 for SD3/Flux.
    """

    latent_magnitude = 3
    latent_shift = 0.5

    def __init__(self, encoder_path: str | os.PathLike[str] | None = None,
                 decoder_path: str | os.PathLike[str] | None = None, latent_channels: int = 4) -> None:
        super().__init__()
        self.taesd_encoder = Encoder(latent_channels)
        self.taesd_decoder = Decoder(latent_channels)
        self.vae_scale = nn.Parameter(torch.tensor(1.0))
        self.vae_shift = nn.Parameter(torch.tensor(0.0))
        from nodeloom.compat.comfy.utils import load_torch_file

        if encoder_path is not None:
            self.taesd_encoder.load_state_dict(load_torch_file(encoder_path, safe_load=True))
        if decoder_path is not None:
            self.taesd_decoder.load_state_dict(load_torch_file(decoder_path, safe_load=True))

    @staticmethod
    def scale_latents(x: torch.Tensor) -> torch.Tensor:
        """Raw latents → [0, 1]."""
        return x.div(2 * TAESD.latent_magnitude).add(TAESD.latent_shift).clamp(0, 1)

    @staticmethod
    def unscale_latents(x: torch.Tensor) -> torch.Tensor:
        """[0, 1] → raw latents."""
        return x.sub(TAESD.latent_shift).mul(2 * TAESD.latent_magnitude)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Latents (VAE scale) → images in [-1, 1]."""
        image = self.taesd_decoder((x - self.vae_shift) * self.vae_scale)
        return image.sub(0.5).mul(2)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] → latents (VAE scale)."""
        return self.taesd_encoder(x * 0.5 + 0.5) / self.vae_scale + self.vae_shift
