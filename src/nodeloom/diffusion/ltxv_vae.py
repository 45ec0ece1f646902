"""LTX-Video's causal video VAE (ComfyUI's VAE value for the LTX family): files, config and the
latent convention.

A file is recognised by its keys — the release's layout (``res_blocks``,
``per_channel_statistics``; bare in ComfyUI's ``vae/`` files, under ``vae.`` inside the all-in-one
checkpoints) or diffusers' (``resnets``, ``latents_mean``). The release layout is converted with
diffusers' own single-file converter; the config is read from the converted tensor shapes (block
widths, resnets per block, which blocks rescale, patch size, timestep conditioning). The release
0.9.0 block structure is what is read; later releases' VAEs (0.9.1's timestep-conditioned decoder
with noise injection, 0.9.5's) are refused with a message rather than loaded wrongly.

LATENT values hold the normalised latent, as ComfyUI's do: ``(z − mean)/std`` with the VAE's
per-channel statistics. Pixels go in as IMAGE frames ``[F,H,W,C]`` (one clip), frame counts
``1 + 8k``; decoding returns ``[B·F,H,W,3]``. Imports no node, engine or adapter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch

from nodeloom.diffusion.models import VaeModel, _prepare
from nodeloom.errors import ValidationError, require

__all__ = ["LtxvVae", "is_ltxv_vae", "load_ltxv_vae", "vae_config"]

_RELEASE = ("decoder.conv_in.conv.weight", "per_channel_statistics.mean-of-means")
_DIFFUSERS = ("decoder.conv_in.conv.weight", "latents_mean", "encoder.down_blocks.0.resnets.0.conv1.conv.weight")


def is_ltxv_vae(keys: Any) -> bool:
    """True when ``keys`` (any ``vae.`` prefix removed) are an LTX-Video VAE's."""
    keys = set(keys)
    return all(k in keys for k in _RELEASE) or all(k in keys for k in _DIFFUSERS)


def _count(keys: set[str], prefix: str) -> int:
    found = {int(m.group(1)) for k in keys if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return max(found) + 1 if found else 0


def vae_config(sd: dict[str, Any]) -> dict[str, Any]:
    """The ``AutoencoderKLLTXVideo`` config of diffusers-layout weights, read from their shapes.

    Raises:
        ValidationError: a VAE of a later release structure (noise injection, residual upsamplers).
    """
    keys = set(sd)
    later = any("per_channel_scale" in k or k.startswith("decoder.time_embedder.") for k in keys) or \
        int(sd["encoder.conv_out.conv.weight"].shape[1]) == 2048
    if later:
        raise ValidationError("this LTX-Video VAE has a later release's structure (0.9.1's timestep-conditioned"
                              " decoder with noise injection, or 0.9.5's); nodeloom loads the 0.9.0 VAE structure so far",
                              type="unsupported_model_file")
    n_down, n_up = _count(keys, "encoder.down_blocks."), _count(keys, "decoder.up_blocks.")
    enc_width = [int(sd[f"encoder.down_blocks.{i}.resnets.0.conv1.conv.weight"].shape[0]) for i in range(n_down)]
    dec_width = [int(sd[f"decoder.up_blocks.{i}.resnets.0.conv1.conv.weight"].shape[0]) for i in range(n_up)]
    enc_layers = [_count(keys, f"encoder.down_blocks.{i}.resnets.") for i in range(n_down)]
    dec_layers = [_count(keys, "decoder.mid_block.resnets.")] + [_count(keys, f"decoder.up_blocks.{i}.resnets.")
                                                                 for i in range(n_up)]
    patch_in = int(sd["encoder.conv_in.conv.weight"].shape[1])
    return {
        "in_channels": 3, "out_channels": 3, "latent_channels": int(sd["decoder.conv_in.conv.weight"].shape[1]),
        "block_out_channels": enc_width, "decoder_block_out_channels": dec_width[::-1],
        "layers_per_block": enc_layers + [_count(keys, "encoder.mid_block.resnets.")],
        "decoder_layers_per_block": dec_layers[::-1],
        "spatio_temporal_scaling": [f"encoder.down_blocks.{i}.downsamplers.0.conv.weight" in keys
                                    for i in range(n_down)],
        "decoder_spatio_temporal_scaling": [f"decoder.up_blocks.{i}.upsamplers.0.conv.conv.weight" in keys
                                            for i in range(n_up)][::-1],
        "decoder_inject_noise": [False] * (n_up + 1), "upsample_residual": [False] * n_up,
        "upsample_factor": [1] * n_up, "downsample_type": ["conv"] * n_down,
        "patch_size": round((patch_in // 3) ** 0.5), "patch_size_t": 1,
    }


def load_ltxv_vae(sd: dict[str, Any], name: str = "the VAE") -> Any:
    """An ``AutoencoderKLLTXVideo`` (float32, eval mode) from either layout, ``vae.`` prefix or not.

    Raises:
        ValidationError: weights that do not fit the config their shapes give.
    """
    diffusers = require("diffusers", "diffusion")
    sd = {k.removeprefix("vae."): v for k, v in sd.items()}
    if "latents_mean" not in sd:
        from diffusers.loaders.single_file_utils import convert_ltx_vae_checkpoint_to_diffusers

        sd = convert_ltx_vae_checkpoint_to_diffusers({f"vae.{k}": v for k, v in sd.items()})
    sd = {k: v for k, v in sd.items() if not k.startswith("per_channel_statistics.")}
    model = diffusers.AutoencoderKLLTXVideo(**vae_config(sd))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        wrong = (missing or unexpected)[0]
        raise ValidationError(f"`{name}` does not fit an LTX-Video VAE ({len(missing)} tensors missing,"
                              f" {len(unexpected)} unexpected, e.g. `{wrong}`)", type="invalid_model_file")
    return model.float().eval()


@dataclass(frozen=True)
class LtxvVae(VaeModel):
    """LTX-Video's VAE: IMAGE frames ↔ normalised ``[B,128,F,H/32,W/32]`` latents."""

    @property
    def downscale_ratio(self) -> int:
        return int(self.vae.spatial_compression_ratio)

    @property
    def temporal_ratio(self) -> int:
        return int(self.vae.temporal_compression_ratio)

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1, 1, 1, 1)
        return (self.vae.latents_mean.view(shape).to(like), self.vae.latents_std.view(shape).to(like))

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor, manager: Any = None) -> torch.Tensor:
        """IMAGE frames ``[F,H,W,C]`` (one clip) → ``[1,128,(F−1)/8+1,H/32,W/32]``.

        Raises:
            ValidationError: a frame count other than ``1 + 8k`` or a size not a multiple of 32.
        """
        frames, height, width = pixels.shape[:3]
        t, r = self.temporal_ratio, self.downscale_ratio
        if (frames - 1) % t:
            raise ValidationError(f"LTX-Video's VAE encodes 1 + {t}·k frames (1, {1 + t}, {1 + 2 * t}, ...),"
                                  f" got {frames}")
        if height % r or width % r:
            raise ValidationError(f"LTX-Video's VAE encodes sizes that are multiples of {r}, got {width}×{height}")
        vae = _prepare(self.vae, manager, torch.float32)
        dev = next(vae.parameters()).device
        x = pixels[..., :3].movedim(-1, 0)[None].to(dev, torch.float32) * 2.0 - 1.0
        z = vae.encode(x).latent_dist.mode().float()
        mean, std = self._stats(z)
        return ((z - mean) / std).cpu()

    @torch.no_grad()
    def decode(self, latent: torch.Tensor, manager: Any = None) -> torch.Tensor:
        """``[B,128,F,h,w]`` → IMAGE frames ``[B·(8(F−1)+1), 32h, 32w, 3]`` in 0..1.

        Raises:
            ValidationError: a latent that is not a 5-D 128-channel video latent.
        """
        if latent.ndim != 5 or latent.shape[1] != self.latent_channels:
            raise ValidationError(f"LTX-Video's VAE decodes [B,{self.latent_channels},F,H,W] video latents,"
                                  f" got a latent shaped {tuple(latent.shape)}")
        vae = _prepare(self.vae, manager, torch.float32)
        dev = next(vae.parameters()).device
        z = latent.to(dev, torch.float32)
        mean, std = self._stats(z)
        z = z * std + mean
        video = vae.decode(z).sample
        return (video / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 4, 1).flatten(0, 1).float().cpu()

    def decode_tiled(self, latent: torch.Tensor, tile: int = 16, overlap: int = 2, manager: Any = None,
                     temporal_size: int = 64, temporal_overlap: int = 8) -> torch.Tensor:
        """:meth:`decode` in overlapping tiles blended linearly: ``tile``/``overlap`` in latent pixels,
        ``temporal_size``/``temporal_overlap`` in frames (diffusers' tiled decode of this VAE; the
        module's tiling settings are restored afterwards)."""
        r, t = self.downscale_ratio, self.temporal_ratio
        vae = self.vae
        keep = {k: getattr(vae, k) for k in ("use_tiling", "use_framewise_decoding", "tile_sample_min_height",
                                             "tile_sample_min_width", "tile_sample_min_num_frames",
                                             "tile_sample_stride_height", "tile_sample_stride_width",
                                             "tile_sample_stride_num_frames")}
        size, step = max(tile, 2) * r, max(tile - min(overlap, tile // 2), 1) * r
        frames = max(temporal_size // t, 1) * t
        frame_step = max(frames - max(temporal_overlap // t, 1) * t, t)
        vae.enable_tiling(tile_sample_min_height=size, tile_sample_min_width=size, tile_sample_min_num_frames=frames,
                          tile_sample_stride_height=step, tile_sample_stride_width=step,
                          tile_sample_stride_num_frames=frame_step)
        vae.use_framewise_decoding = True
        try:
            return self.decode(latent, manager)
        finally:
            for key, value in keep.items():
                setattr(vae, key, value)


def is_ltxv_vae_file(path: Any) -> bool:
    """True for a ``.safetensors`` file holding an LTX-Video VAE (either layout)."""
    from pathlib import Path

    from nodeloom.diffusion.single_file import read_header

    p = Path(path)
    return p.suffix == ".safetensors" and p.is_file() and is_ltxv_vae(read_header(p).shapes)


def is_ltxv_checkpoint(path: Any) -> bool:
    """True for an all-in-one LTX-Video checkpoint: the transformer under ComfyUI's prefix and the VAE under ``vae.``."""
    from pathlib import Path

    from nodeloom.diffusion.single_file import read_header

    p = Path(path)
    if p.suffix != ".safetensors" or not p.is_file():
        return False
    shapes = read_header(p).shapes
    return "model.diffusion_model.patchify_proj.weight" in shapes and "vae.decoder.conv_in.conv.weight" in shapes


def load_ltxv_checkpoint(path: Any) -> tuple[Any, Any, Any]:
    """``(transformer, family, AutoencoderKLLTXVideo)`` of an all-in-one LTX-Video checkpoint, CPU
    float32 (the text encoder is a separate T5 file, loaded with CLIPLoader type ``ltxv``)."""
    from pathlib import Path

    from nodeloom.diffusion.families.ltxv import FAMILY
    from nodeloom.diffusion.single_file import load_weights

    sd = load_weights(path, dtype=torch.float32, prefix="")
    prefix = "model.diffusion_model."
    transformer = FAMILY.load({k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}, None)
    vae = load_ltxv_vae({k: v for k, v in sd.items() if k.startswith("vae.")}, Path(path).name)
    return transformer, FAMILY, vae
