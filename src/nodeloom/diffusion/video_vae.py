"""What the causal 3-D video VAE values share (Wan, HunyuanVideo 1.5/1.0).

:class:`CausalVideoVae` holds the diffusers autoencoder and the engine's device manager, says the
value is a video VAE with 4× temporal compression, and encodes IMAGE frames into one video latent;
each family's value adds its sizes (``downscale_ratio``, ``latent_channels``, read from its config)
and its decode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["CausalVideoVae"]


@dataclass(frozen=True)
class CausalVideoVae:
    """ComfyUI's VAE value for a causal video autoencoder (LATENT values hold raw latents)."""

    vae: Any = field(repr=False)
    manager: Any = field(default=None, repr=False, compare=False)
    is_video = True
    temporal_ratio = 4

    def spacial_compression_encode(self) -> int:
        return self.downscale_ratio

    def spacial_compression_decode(self) -> int:
        return self.downscale_ratio

    def _module(self, manager: Any) -> Any:
        manager = manager if manager is not None else self.manager
        return manager.prepare(self.vae, dtype=torch.float32) if manager is not None else self.vae

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor, manager: Any = None) -> torch.Tensor:
        """IMAGE frames ``[T,H,W,C]`` in 0..1 → one video latent ``[1,C,1+(T−1)//4,h,w]`` (posterior mode)."""
        vae = self._module(manager)
        dev = next(vae.parameters()).device
        x = pixels[..., :3].movedim(-1, 0).unsqueeze(0).to(dev, torch.float32) * 2.0 - 1.0
        return vae.encode(x).latent_dist.mode().float().cpu()
