"""The Qwen-Image VAE: a Wan-2.1-style causal 3-D VAE (``qwen_image_vae.safetensors``).

ComfyUI's file holds the Wan 2.1 original key layout (``encoder.downsamples.N.residual.*``,
``decoder.middle.*``, ``conv1``/``conv2``); :func:`load_wan21_vae` maps it with diffusers' own Wan
VAE converter onto ``AutoencoderKLQwenImage`` (the same module tree) with sizes read from shapes.
:class:`QwenVaeModel` is the VAE value: images are encoded one frame each into ``[B, 16, h, w]``
raw latents (the posterior mean) and 4-D or 5-D latents decode to images. One-frame inputs take
the 2-D path of :func:`nodeloom.diffusion.wan_vae.use_one_frame_convs`. Imports no node or engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from nodeloom.diffusion.models import VaeModel, _prepare
from nodeloom.diffusion.wan_vae import use_one_frame_convs
from nodeloom.errors import ValidationError, require

__all__ = ["QwenVaeModel", "is_wan21_vae", "load_wan21_vae", "vae_value"]


def is_wan21_vae(keys: Any) -> bool:
    """True for a Wan 2.1 / Qwen-Image VAE in the original layout (not Wan 2.2's 48-channel one)."""
    keys = set(keys)
    return "decoder.middle.0.residual.0.gamma" in keys and "decoder.upsamples.0.upsamples.0.residual.2.weight" not in keys


def load_wan21_vae(sd: dict[str, Any], name: str, dtype: Any = None) -> Any:
    """An ``AutoencoderKLQwenImage`` from Wan-2.1-layout weights (eval mode).

    Raises:
        ValidationError: weights that do not fit the module the shapes describe.
    """
    diffusers = require("diffusers", "diffusion")
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    converted = convert_wan_vae_to_diffusers(dict(sd))
    base = converted["encoder.conv_in.weight"].shape[0]
    z_dim = converted["quant_conv.weight"].shape[0] // 2
    model = diffusers.AutoencoderKLQwenImage(base_dim=base, z_dim=z_dim)
    missing, unexpected = model.load_state_dict(converted, strict=False)
    if missing or unexpected:
        raise ValidationError(f"`{name}` does not fit a Wan 2.1 / Qwen-Image VAE: missing {missing[:2]},"
                              f" unexpected {unexpected[:2]}", type="invalid_model_file", extra_info={"name": name})
    use_one_frame_convs(model)
    return (model.to(dtype) if dtype is not None else model).eval()


@dataclass(frozen=True)
class QwenVaeModel(VaeModel):
    """The VAE value of an ``AutoencoderKLQwenImage``: LATENT values hold its raw latents."""

    @property
    def downscale_ratio(self) -> int:
        return 2 ** len(self.vae.config.temperal_downsample)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.z_dim)

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor, manager: Any = None) -> torch.Tensor:
        """IMAGE ``[B,H,W,C]`` in 0..1 → latent ``[B,16,H/8,W/8]`` (each image a one-frame clip)."""
        vae = _prepare(self.vae, manager, torch.float32)
        dev = next(vae.parameters()).device
        x = pixels[..., :3].movedim(-1, 1).to(dev, torch.float32) * 2.0 - 1.0
        out = [vae.encode(frame[None, :, None]).latent_dist.mode()[:, :, 0] for frame in x]
        return torch.cat(out).float().cpu()

    @torch.no_grad()
    def decode(self, latent: torch.Tensor, manager: Any = None) -> torch.Tensor:
        """Latent ``[B,16,h,w]`` or ``[B,16,T,h,w]`` → IMAGE ``[B·T,H,W,3]`` in 0..1."""
        vae = _prepare(self.vae, manager, torch.float32)
        dev = next(vae.parameters()).device
        z = latent.to(dev, torch.float32)
        z = z.unsqueeze(2) if z.ndim == 4 else z
        img = vae.decode(z).sample  # [B, 3, T, H, W]
        img = img.movedim(2, 1).reshape(-1, img.shape[1], img.shape[3], img.shape[4])
        return (img / 2 + 0.5).clamp(0, 1).movedim(1, -1).float().cpu()


def vae_value(vae: Any, manager: Any) -> VaeModel:
    """The VAE value for a loaded module: :class:`QwenVaeModel` for the Qwen-Image / Wan 2.1 VAE."""
    if type(vae).__name__ == "AutoencoderKLQwenImage":
        return QwenVaeModel(vae, manager=manager)
    return VaeModel(vae, manager=manager)
