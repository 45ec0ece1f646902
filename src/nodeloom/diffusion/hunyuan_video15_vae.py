"""The HunyuanVideo 1.5 video VAE (``hunyuanvideo15_vae_fp16.safetensors``) as ComfyUI's VAE value.

:func:`is_hunyuan_video15_vae` recognises the release's layout (``encoder.down.N.block.M``,
``decoder.mid.attn_1``, causal convolutions under ``.conv``, RMS-norm ``gamma``s, a 32-channel
latent); :func:`load_hunyuan_video15_vae` builds diffusers' ``AutoencoderKLHunyuanVideo15`` from it
(stage widths and depth from shapes, keys renamed by :func:`diffusers_vae_keys`).
:class:`HunyuanVideo15Vae` is the value the nodes see: IMAGE frames ``[T,H,W,3]`` encode to one
raw latent ``[1,32,1+(T−1)/4,H/16,W/16]`` (the model scales it), a 5-D latent decodes to
``[B·T,H,W,3]``; the tiled forms use diffusers' own tiling with the tile size asked for.
Imports no node or engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nodeloom.diffusion.state_keys import indexed_count as _count
from nodeloom.diffusion.video_vae import CausalVideoVae
from nodeloom.errors import ValidationError, require

__all__ = ["HunyuanVideo15Vae", "diffusers_vae_keys", "is_hunyuan_video15_vae", "load_hunyuan_video15_vae",
           "read_hunyuan_video15_vae"]

_KEYS = ("decoder.mid.attn_1.q.weight", "encoder.down.0.block.0.norm1.gamma", "decoder.conv_in.conv.weight")


def is_hunyuan_video15_vae(shapes: dict[str, tuple[int, ...]]) -> bool:
    """True for a HunyuanVideo 1.5 VAE file in the release layout (its header's key → shape map)."""
    return all(k in shapes for k in _KEYS) and len(shapes["decoder.conv_in.conv.weight"]) == 5


def _resnet(rest: str) -> str:
    return re.sub(r"^nin_shortcut\.(conv\.)?", "conv_shortcut.", rest)


def _vae_key(key: str) -> str:
    if m := re.match(r"(encoder|decoder)\.mid\.(block_1|block_2|attn_1)\.(.*)", key):
        side, part, rest = m.groups()
        if part == "attn_1":
            rest = re.sub(r"^(q|k|v)\.", lambda n: f"to_{n.group(1)}.", rest)
            return f"{side}.mid_block.attentions.0.{rest}"
        return f"{side}.mid_block.resnets.{int(part[-1]) - 1}.{_resnet(rest)}"
    if m := re.match(r"(encoder)\.down\.(\d+)\.(block\.(\d+)\.|downsample\.)(.*)", key):
        side, i, kind, j, rest = m.groups()
        if j is None:
            return f"{side}.down_blocks.{i}.downsamplers.0.{rest}"
        return f"{side}.down_blocks.{i}.resnets.{j}.{_resnet(rest)}"
    if m := re.match(r"(decoder)\.up\.(\d+)\.(block\.(\d+)\.|upsample\.)(.*)", key):
        side, i, kind, j, rest = m.groups()
        if j is None:
            return f"{side}.up_blocks.{i}.upsamplers.0.{rest}"
        return f"{side}.up_blocks.{i}.resnets.{j}.{_resnet(rest)}"
    return key


def diffusers_vae_keys(sd: dict[str, Any]) -> dict[str, Any]:
    """Release-layout VAE weights under ``AutoencoderKLHunyuanVideo15``'s names."""
    return {_vae_key(k): v for k, v in sd.items()}


def load_hunyuan_video15_vae(sd: dict[str, Any], name: str) -> Any:
    """An ``AutoencoderKLHunyuanVideo15`` (eval, float32) from release-layout weights.

    Raises:
        ValidationError: weights that do not fit the architecture their shapes describe.
    """
    diffusers = require("diffusers", "diffusion")
    stages = _count(sd, r"encoder\.down\.(\d+)\.")
    widths = tuple(int(sd[f"encoder.down.{i}.block.0.conv1.conv.weight"].shape[0]) for i in range(stages))
    per_stage = _count(sd, r"encoder\.down\.0\.block\.(\d+)\.")
    spatial = 2 ** sum(f"encoder.down.{i}.downsample.conv.conv.weight" in sd for i in range(stages))
    model = diffusers.AutoencoderKLHunyuanVideo15(
        latent_channels=int(sd["decoder.conv_in.conv.weight"].shape[1]), block_out_channels=widths,
        layers_per_block=per_stage, spatial_compression_ratio=spatial, temporal_compression_ratio=4)
    missing, unexpected = model.load_state_dict(diffusers_vae_keys(sd), strict=False)
    if missing or unexpected:
        raise ValidationError(f"`{name}` does not fit the HunyuanVideo 1.5 VAE its shapes describe ({len(missing)}"
                              f" missing, {len(unexpected)} unexpected, e.g. `{(missing or unexpected)[0]}`)",
                              type="invalid_model_file", extra_info={"name": name})
    return model.eval()


def read_hunyuan_video15_vae(path: str | Path) -> Any:
    """Load a HunyuanVideo 1.5 VAE file (safetensors)."""
    from nodeloom.diffusion.single_file import load_weights

    return load_hunyuan_video15_vae(load_weights(path, dtype=torch.float32, prefix=""), Path(path).name)


@dataclass(frozen=True)
class HunyuanVideo15Vae(CausalVideoVae):
    """ComfyUI's VAE value for the HunyuanVideo 1.5 VAE (LATENT values hold raw latents)."""

    @property
    def downscale_ratio(self) -> int:
        return int(self.vae.config.spatial_compression_ratio)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @torch.no_grad()
    def decode(self, latent: torch.Tensor, manager: Any = None) -> torch.Tensor:
        """A latent ``[B,C,t,h,w]`` (or one frame ``[B,C,h,w]``) → IMAGE ``[B·T,H,W,3]`` in 0..1."""
        if latent.ndim == 4:
            latent = latent.unsqueeze(2)
        if latent.shape[1] != self.latent_channels:
            raise ValidationError(f"the HunyuanVideo 1.5 VAE decodes {self.latent_channels}-channel latents, got"
                                  f" {latent.shape[1]} channels (an image model's latent?)")
        vae = self._module(manager)
        return self._frames(vae, latent)

    @staticmethod
    def _frames(vae: Any, latent: torch.Tensor) -> torch.Tensor:
        """Decode video by video: diffusers' causal mid-block attention mask does not broadcast over a
        batch of several videos (``[B,S,S]`` against ``[B,1,S,S]``)."""
        dev = next(vae.parameters()).device
        video = torch.cat([vae.decode(one[None].to(dev, torch.float32)).sample.float().cpu() for one in latent])
        return (video / 2 + 0.5).clamp(0, 1).movedim(1, -1).flatten(0, 1)

    def _tiled(self, vae: Any, tile_latent: int) -> dict[str, Any]:
        """diffusers' tiling settings for tiles of ``tile_latent`` latent pixels (old values, to restore)."""
        old = {k: getattr(vae, k) for k in ("use_tiling", "tile_sample_min_height", "tile_sample_min_width",
                                             "tile_latent_min_height", "tile_latent_min_width")}
        r = self.downscale_ratio
        tile_latent = max(2, tile_latent)
        vae.use_tiling = True
        vae.tile_latent_min_height = vae.tile_latent_min_width = tile_latent
        vae.tile_sample_min_height = vae.tile_sample_min_width = tile_latent * r
        return old

    @torch.no_grad()
    def decode_tiled(self, latent: torch.Tensor, tile: int = 32, overlap: int = 4, manager: Any = None,
                     temporal_size: int = 64, temporal_overlap: int = 8) -> torch.Tensor:
        """Decode in spatial tiles of ``tile`` latent pixels (diffusers' tiling, a quarter of a tile
        blended); the causal decoder runs through time whole, so the temporal inputs bound nothing."""
        if latent.ndim == 4:
            latent = latent.unsqueeze(2)
        vae = self._module(manager)
        old = self._tiled(vae, tile)
        try:
            return self._frames(vae, latent)
        finally:
            for k, v in old.items():
                setattr(vae, k, v)

    @torch.no_grad()
    def encode_tiled(self, pixels: torch.Tensor, tile_x: int = 512, tile_y: int = 512, overlap: int = 64,
                     manager: Any = None) -> torch.Tensor:
        """Encode in spatial tiles of ``min(tile_x, tile_y)`` pixels (diffusers' tiling)."""
        vae = self._module(manager)
        old = self._tiled(vae, min(tile_x, tile_y) // self.downscale_ratio)
        try:
            return self.encode(pixels, manager)
        finally:
            for k, v in old.items():
                setattr(vae, k, v)
