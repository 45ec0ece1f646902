"""The HunyuanVideo 1.0 video VAE (``hunyuan_video_vae_bf16.safetensors``) as ComfyUI's VAE value.

:func:`is_hunyuan_video_vae` recognises a 16-channel causal 3-D VAE in either layout it is shared
in: the release's (diffusers-style ``encoder.down_blocks.N.resnets.M``, ``mid_block.attentions``)
or ComfyUI's (``encoder.down.N.block.M``, ``mid.attn_1`` with 1×1×1 convolutions; the decoder's
``up.N`` counted from the full-resolution end). :func:`load_hunyuan_video_vae` builds diffusers'
``AutoencoderKLHunyuanVideo`` from it (widths, depth and group count from shapes). The value the
nodes see is :class:`nodeloom.diffusion.hunyuan_video15_vae.HunyuanVideo15Vae`'s behaviour over
this module (encode frames, decode 5-D latents, diffusers' tiling). Imports no node or engine.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from nodeloom.diffusion.hunyuan_video15_vae import HunyuanVideo15Vae
from nodeloom.diffusion.state_keys import indexed_count as _stages
from nodeloom.errors import ValidationError, require

__all__ = ["HunyuanVideoVae", "diffusers_vae_keys", "is_hunyuan_video_vae", "load_hunyuan_video_vae",
           "read_hunyuan_video_vae"]


def is_hunyuan_video_vae(shapes: dict[str, tuple[int, ...]]) -> bool:
    """True for a HunyuanVideo 1.0 VAE file (16-channel latent, causal 3-D convolutions, GroupNorm)."""
    conv = shapes.get("decoder.conv_in.conv.weight")
    if conv is None or len(conv) != 5 or conv[1] != 16:
        return False
    return ("encoder.down_blocks.0.resnets.0.norm1.weight" in shapes
            or "encoder.down.0.block.0.norm1.weight" in shapes)


def _resnet(rest: str) -> str:
    return re.sub(r"^nin_shortcut\.(conv\.)?", "conv_shortcut.conv.", rest)


def _from_comfy(sd: dict[str, Any]) -> dict[str, Any]:
    """ComfyUI's layout under diffusers' names (attention convolutions to linear weights)."""
    ups = _stages(sd, r"decoder\.up\.(\d+)\.")
    out = {}
    for key, value in sd.items():
        new = key
        if m := re.match(r"(encoder|decoder)\.mid\.(block_1|block_2|attn_1)\.(.*)", key):
            side, part, rest = m.groups()
            if part == "attn_1":
                rest = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}[
                    rest.split(".")[0]] + "." + rest.split(".", 1)[1]
                value = value.reshape(value.shape[0], -1) if value.ndim == 5 else value
                new = f"{side}.mid_block.attentions.0.{rest}"
            else:
                new = f"{side}.mid_block.resnets.{int(part[-1]) - 1}.{_resnet(rest)}"
        elif m := re.match(r"encoder\.down\.(\d+)\.(?:block\.(\d+)\.|downsample\.)(.*)", key):
            i, j, rest = m.groups()
            new = (f"encoder.down_blocks.{i}.resnets.{j}.{_resnet(rest)}" if j is not None
                   else f"encoder.down_blocks.{i}.downsamplers.0.{rest}")
        elif m := re.match(r"decoder\.up\.(\d+)\.(?:block\.(\d+)\.|upsample\.)(.*)", key):
            i, j, rest = m.groups()
            i = ups - 1 - int(i)
            new = (f"decoder.up_blocks.{i}.resnets.{j}.{_resnet(rest)}" if j is not None
                   else f"decoder.up_blocks.{i}.upsamplers.0.{rest}")
        elif m := re.match(r"(encoder|decoder)\.norm_out\.(.*)", key):
            new = f"{m.group(1)}.conv_norm_out.{m.group(2)}"
        out[new] = value
    return out


def diffusers_vae_keys(sd: dict[str, Any]) -> dict[str, Any]:
    """VAE weights in either layout under ``AutoencoderKLHunyuanVideo``'s names."""
    if any(k.startswith("encoder.down_blocks.") for k in sd):
        return dict(sd)
    return _from_comfy(sd)


def load_hunyuan_video_vae(sd: dict[str, Any], name: str) -> Any:
    """An ``AutoencoderKLHunyuanVideo`` (eval, float32) from either layout.

    Raises:
        ValidationError: weights that do not fit the architecture their shapes describe.
    """
    diffusers = require("diffusers", "diffusion")
    sd = diffusers_vae_keys(sd)
    stages = _stages(sd, r"encoder\.down_blocks\.(\d+)\.")
    widths = tuple(int(sd[f"encoder.down_blocks.{i}.resnets.0.conv1.conv.weight"].shape[0]) for i in range(stages))
    per_stage = _stages(sd, r"encoder\.down_blocks\.0\.resnets\.(\d+)\.")
    groups = 32 if widths[0] % 32 == 0 else max(g for g in (16, 8, 4, 2, 1) if widths[0] % g == 0)
    model = diffusers.AutoencoderKLHunyuanVideo(
        latent_channels=int(sd["decoder.conv_in.conv.weight"].shape[1]), block_out_channels=widths,
        layers_per_block=per_stage, norm_num_groups=groups,
        spatial_compression_ratio=2 ** (stages - 1), temporal_compression_ratio=4)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValidationError(f"`{name}` does not fit the HunyuanVideo VAE its shapes describe ({len(missing)}"
                              f" missing, {len(unexpected)} unexpected, e.g. `{(missing or unexpected)[0]}`)",
                              type="invalid_model_file", extra_info={"name": name})
    return model.eval()


def read_hunyuan_video_vae(path: str | Path) -> Any:
    """Load a HunyuanVideo 1.0 VAE file (safetensors)."""
    from nodeloom.diffusion.single_file import load_weights

    return load_hunyuan_video_vae(load_weights(path, dtype=torch.float32, prefix=""), Path(path).name)


class HunyuanVideoVae(HunyuanVideo15Vae):
    """ComfyUI's VAE value for the HunyuanVideo 1.0 VAE (LATENT values hold raw latents); encoding and
    decoding as the 1.5 VAE's, tiling through this VAE's own settings."""

    def _tiled(self, vae: Any, tile_latent: int) -> dict[str, Any]:
        """diffusers' tiling settings of this VAE (tile and stride in pixels, a quarter blended) for
        tiles of ``tile_latent`` latent pixels (old values, to restore)."""
        names = ("use_tiling", "tile_sample_min_height", "tile_sample_min_width", "tile_sample_stride_height",
                 "tile_sample_stride_width")
        old = {k: getattr(vae, k) for k in names}
        size = max(2, tile_latent) * self.downscale_ratio
        vae.use_tiling = True
        vae.tile_sample_min_height = vae.tile_sample_min_width = size
        vae.tile_sample_stride_height = vae.tile_sample_stride_width = size * 3 // 4
        return old
