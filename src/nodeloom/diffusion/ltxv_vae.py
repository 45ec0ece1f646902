"""LTX-Video's causal video VAE (ComfyUI's VAE value for the LTX family): files, config and the
latent convention.

A file is recognised by its keys — the release's layout (``res_blocks``,
``per_channel_statistics``; bare in ComfyUI's ``vae/`` files, under ``vae.`` inside the all-in-one
checkpoints) or diffusers' (``resnets``, ``latents_mean``). The release layout is converted with
diffusers' own single-file converter; the config is read from the converted tensor shapes (block
widths, resnets per block, which blocks rescale, patch size, timestep conditioning). Three
release structures are read: 0.9.0's; 0.9.1's (a timestep-conditioned decoder with noise
injection and residual upsamplers, the release layout converted by diffusers); and 0.9.5/0.9.7's
(pixel-unshuffle downsamplers of three kinds and a wider encoder; the release layout renamed
here, as diffusers' converter tells it only by the released width). The timestep-conditioned
decoders decode as ComfyUI's do: the latent mixed with 2.5 % noise, at time 0.05, with the noise
injection the decoder has; nodeloom seeds that noise so a decode repeats.

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
from nodeloom.diffusion.state_keys import indexed_count
from nodeloom.errors import ValidationError, require

__all__ = ["LtxvVae", "is_ltxv_vae", "load_ltxv_vae", "vae_config"]

#: how ComfyUI decodes the timestep-conditioned VAEs (0.9.1 and later): the latent mixed with this
#: much noise, decoded at this time; nodeloom seeds the noise (ComfyUI's is unseeded) so decodes repeat
DECODE_TIMESTEP, DECODE_NOISE_SCALE, DECODE_SEED = 0.05, 0.025, 0
_RELEASE = ("decoder.conv_in.conv.weight", "per_channel_statistics.mean-of-means")
_DIFFUSERS = ("decoder.conv_in.conv.weight", "latents_mean", "encoder.down_blocks.0.resnets.0.conv1.conv.weight")


def is_ltxv_vae(keys: Any) -> bool:
    """True when ``keys`` (any ``vae.`` prefix removed) are an LTX-Video VAE's."""
    keys = set(keys)
    return all(k in keys for k in _RELEASE) or all(k in keys for k in _DIFFUSERS)


def _count(keys: set[str], prefix: str) -> int:
    return indexed_count(keys, re.escape(prefix) + r"(\d+)\.")


#: how much a 0.9.5-style downsampler shrinks (next width / its conv's channels) → its kind
_DOWNSAMPLE_KINDS = {4: "spatial", 2: "temporal", 8: "spatiotemporal"}


def _encoder_config(sd: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    """The encoder half of the config: the 0.9.0/0.9.1 structure (strided-conv downsamplers, a
    width change at each block's end) or the 0.9.5/0.9.7 one (pixel-unshuffle downsamplers of
    three kinds, one more width)."""
    n_down = _count(keys, "encoder.down_blocks.")
    widths = [int(sd[f"encoder.down_blocks.{i}.resnets.0.conv1.conv.weight"].shape[0]) for i in range(n_down)]
    layers = [_count(keys, f"encoder.down_blocks.{i}.resnets.") for i in range(n_down)]
    mid = int(sd["encoder.mid_block.resnets.0.conv1.conv.weight"].shape[0])
    cfg: dict[str, Any] = {"layers_per_block": layers + [_count(keys, "encoder.mid_block.resnets.")]}
    if f"encoder.down_blocks.0.downsamplers.0.conv.conv.weight" not in keys:  # 0.9.0 / 0.9.1
        cfg.update(block_out_channels=widths, downsample_type=["conv"] * n_down,
                   spatio_temporal_scaling=[f"encoder.down_blocks.{i}.downsamplers.0.conv.weight" in keys
                                            for i in range(n_down)])
        return cfg
    nexts = widths[1:] + [mid]
    kinds = []
    for i, after in enumerate(nexts):
        shrink = after // int(sd[f"encoder.down_blocks.{i}.downsamplers.0.conv.conv.weight"].shape[0])
        if shrink not in _DOWNSAMPLE_KINDS:
            raise ValidationError(f"an LTX-Video VAE downsampler that shrinks channels {shrink}× (down block {i});"
                                  " the releases' shrink 2×, 4× or 8×", type="invalid_model_file")
        kinds.append(_DOWNSAMPLE_KINDS[shrink])
    cfg.update(block_out_channels=widths + [mid], down_block_types=["LTXVideo095DownBlock3D"] * n_down,
               downsample_type=kinds, spatio_temporal_scaling=[True] * n_down,
               temporal_compression_ratio=2 ** sum(k != "spatial" for k in kinds))
    cfg["spatial_compression_ratio"] = 2 ** sum(k != "temporal" for k in kinds)  # times the patch, set below
    return cfg


def _decoder_config(sd: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    """The decoder half: block widths, resnets, upsamplers (their channel factor: 2 with the
    residual upsampling of 0.9.1 and later), noise injection and timestep conditioning."""
    n_up = _count(keys, "decoder.up_blocks.")
    widths, factors = [], []
    for i in range(n_up):
        width = int(sd[f"decoder.up_blocks.{i}.resnets.0.conv1.conv.weight"].shape[0])
        up = sd.get(f"decoder.up_blocks.{i}.upsamplers.0.conv.conv.weight")
        factor = 1 if up is None else max(1, int(up.shape[1]) * 8 // int(up.shape[0]))
        widths.append(width * factor)
        factors.append(factor)
    blocks = ["decoder.mid_block."] + [f"decoder.up_blocks.{i}." for i in range(n_up)]
    return {
        "decoder_block_out_channels": widths[::-1],
        "decoder_layers_per_block": [_count(keys, b + "resnets.") for b in blocks][::-1],
        "decoder_spatio_temporal_scaling": [f"decoder.up_blocks.{i}.upsamplers.0.conv.conv.weight" in keys
                                            for i in range(n_up)][::-1],
        "decoder_inject_noise": [f"{b}resnets.0.per_channel_scale1" in keys for b in blocks][::-1],
        "upsample_residual": [f > 1 for f in factors][::-1], "upsample_factor": factors[::-1],
        "timestep_conditioning": "decoder.time_embedder.timestep_embedder.linear_1.weight" in keys,
    }


def vae_config(sd: dict[str, Any]) -> dict[str, Any]:
    """The ``AutoencoderKLLTXVideo`` config of diffusers-layout weights, read from their shapes: the
    0.9.0 structure, 0.9.1's (timestep-conditioned decoder, noise injection, residual upsamplers)
    and 0.9.5/0.9.7's (pixel-unshuffle downsamplers, a wider encoder)."""
    keys = set(sd)
    patch_in = int(sd["encoder.conv_in.conv.weight"].shape[1])
    patch = round((patch_in // 3) ** 0.5)
    cfg = {"in_channels": 3, "out_channels": 3, "latent_channels": int(sd["decoder.conv_in.conv.weight"].shape[1]),
           "patch_size": patch, "patch_size_t": 1, **_encoder_config(sd, keys), **_decoder_config(sd, keys)}
    if "spatial_compression_ratio" in cfg:
        cfg["spatial_compression_ratio"] *= patch
    return cfg


_RELEASE_NAMES = (("res_blocks.", "resnets."), ("conv_shortcut.", "conv_shortcut.conv."), ("norm3.norm.", "norm3."),
                  ("last_time_embedder.", "time_embedder."), ("last_scale_shift_table", "scale_shift_table"))
_RELEASE_STATS = {"per_channel_statistics.mean-of-means": "latents_mean",
                  "per_channel_statistics.std-of-means": "latents_std"}


def _block_095(key: str) -> str:
    """A 0.9.5/0.9.7 release block path under diffusers' name: encoder blocks alternate resnets
    (even) and downsamplers (odd), the last is the middle; the decoder's first is the middle, then
    upsampler (odd) and resnets (even) alternate."""
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.(.*)", key):
        i, rest = int(m.group(1)), m.group(2)
        return f"encoder.down_blocks.{i // 2}.{'downsamplers.0.' if i % 2 else ''}{rest}"
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.(.*)", key):
        i, rest = int(m.group(1)), m.group(2)
        if i == 0:
            return f"decoder.mid_block.{rest}"
        return f"decoder.up_blocks.{(i - 1) // 2}.{'upsamplers.0.' if i % 2 else ''}{rest}"
    return key


def _from_release_095(sd: dict[str, Any]) -> dict[str, Any]:
    """Release-layout weights of the 0.9.5/0.9.7 VAE structure under diffusers' names. (diffusers'
    single-file converter tells this layout by the released encoder width alone, so a VAE of the
    same structure at another width would be renamed as 0.9.1's.)"""
    last = _count(set(sd), "encoder.down_blocks.") - 1
    out = {}
    for key, value in sd.items():
        if key.startswith("per_channel_statistics."):
            if key in _RELEASE_STATS:
                out[_RELEASE_STATS[key]] = value
            continue
        key = key.replace(f"encoder.down_blocks.{last}.", "encoder.mid_block.")
        key = _block_095(key)
        for old, new in _RELEASE_NAMES:
            key = key.replace(old, new)
        out[key] = value
    return out


def load_ltxv_vae(sd: dict[str, Any], name: str = "the VAE") -> Any:
    """An ``AutoencoderKLLTXVideo`` (float32, eval mode) from either layout, ``vae.`` prefix or not.

    Raises:
        ValidationError: weights that do not fit the config their shapes give.
    """
    diffusers = require("diffusers", "diffusion")
    sd = {k.removeprefix("vae."): v for k, v in sd.items()}
    if "latents_mean" not in sd and "encoder.down_blocks.1.conv.conv.weight" in sd:  # 0.9.5 / 0.9.7 structure
        sd = _from_release_095(sd)
    elif "latents_mean" not in sd:
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
        if not vae.config.timestep_conditioning:
            video = vae.decode(z).sample
        else:  # 0.9.1 and later: a little noise and a decode time, as ComfyUI decodes them (seeded here)
            with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
                torch.manual_seed(DECODE_SEED)
                z = (1.0 - DECODE_NOISE_SCALE) * z + DECODE_NOISE_SCALE * torch.randn_like(z)
                temb = torch.full((z.shape[0],), DECODE_TIMESTEP, device=dev)
                video = vae.decode(z, temb=temb).sample
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
