"""LTX-2's all-in-one checkpoint (``ltx-2-19b-dev*.safetensors``) as CheckpointLoaderSimple reads
it: the AV transformer and its text connectors (``model.diffusion_model.``) and the video VAE
(``vae.``); the audio VAE, vocoder and text projection in the same file are read by their own
nodes (LTXVAudioVAELoader, LTXAVTextEncoderLoader).

The video VAE (diffusers' ``AutoencoderKLLTX2Video``) is converted from the release's names with
diffusers' own converter; widths and layer counts come from tensor shapes, the block kinds and
compression (32× in space, 8× in time) from ``data/families/ltx2_vae.json``, the 2.0 release's.
LATENT values hold its normalised latent, as for LTX-Video (:class:`~nodeloom.diffusion.ltxv_vae.LtxvVae`).
Imports no node, engine or adapter.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from nodeloom.diffusion.families import family_config
from nodeloom.diffusion.state_keys import indexed_count
from nodeloom.errors import ValidationError, require

__all__ = ["is_ltx2_checkpoint", "load_ltx2_checkpoint", "load_ltx2_video_vae", "video_vae_config",
           "video_vae_to_release"]

_TRANSFORMER_KEY = "model.diffusion_model.audio_patchify_proj.weight"
_VAE_KEY = "vae.decoder.conv_in.conv.weight"


def is_ltx2_checkpoint(path: Any) -> bool:
    """True for an LTX-2 all-in-one checkpoint (the AV transformer under ComfyUI's prefix)."""
    from nodeloom.diffusion.single_file import read_header

    p = Path(path)
    return p.suffix == ".safetensors" and p.is_file() and _TRANSFORMER_KEY in read_header(p).shapes


def _count(keys: Any, prefix: str) -> int:
    return indexed_count(keys, re.escape(prefix) + r"(\d+)\.")


def video_vae_config(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """The ``AutoencoderKLLTX2Video`` config of diffusers-named weights, widths read from shapes."""
    cfg = dict(family_config("ltx2_vae"))
    n_down, n_up = _count(shapes, "encoder.down_blocks."), _count(shapes, "decoder.up_blocks.")
    if n_down != len(cfg["downsample_type"]) or n_up != len(cfg["upsample_type"]):
        raise ValidationError(f"the LTX-2 video VAE has {n_down} down and {n_up} up blocks; the 2.0 release's has "
                              f"{len(cfg['downsample_type'])} and {len(cfg['upsample_type'])}", type="invalid_model_file")

    def width(prefix: str) -> int:
        return int(shapes[f"{prefix}.resnets.0.conv1.conv.weight"][1])

    enc = [width(f"encoder.down_blocks.{i}") for i in range(1, n_down)] + [width("encoder.mid_block")]
    dec = [int(shapes["decoder.conv_in.conv.weight"][0])] + [width(f"decoder.up_blocks.{i}") for i in range(n_up - 1)]
    layers = [_count(shapes, f"encoder.down_blocks.{i}.resnets.") for i in range(n_down)]
    dec_layers = [_count(shapes, "decoder.mid_block.resnets.")] + [_count(shapes, f"decoder.up_blocks.{i}.resnets.")
                                                                   for i in range(n_up)]
    cfg.update(latent_channels=int(shapes["decoder.conv_in.conv.weight"][1]), block_out_channels=tuple(enc),
               decoder_block_out_channels=tuple(dec[::-1]),
               layers_per_block=tuple(layers + [_count(shapes, "encoder.mid_block.resnets.")]),
               decoder_layers_per_block=tuple(dec_layers[::-1]),
               timestep_conditioning=any(k.startswith("decoder.time_embedder.") for k in shapes))
    return cfg


def load_ltx2_video_vae(sd: dict[str, Any], name: str = "the checkpoint") -> Any:
    """An ``AutoencoderKLLTX2Video`` (float32, eval) from release-named weights (``vae.`` prefix or not).

    Raises:
        ValidationError: weights that do not fit the config their shapes give.
    """
    diffusers = require("diffusers", "diffusion")
    from diffusers.loaders.single_file_utils import convert_ltx2_vae_to_diffusers

    sd = convert_ltx2_vae_to_diffusers({f"vae.{k.removeprefix('vae.')}": v for k, v in sd.items()})
    model = diffusers.AutoencoderKLLTX2Video(**video_vae_config({k: tuple(v.shape) for k, v in sd.items()}))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValidationError(f"`{name}` does not hold an LTX-2 video VAE that fits its shapes ({len(missing)} tensors "
                              f"missing, {len(unexpected)} unexpected, e.g. `{(missing or unexpected)[0]}`)",
                              type="invalid_model_file")
    return model.float().eval()


def video_vae_to_release(sd: dict[str, Any]) -> dict[str, Any]:
    """Diffusers-named LTX-2 video VAE weights in the release's names (no ``vae.`` prefix): the
    inverse of diffusers' converter for the 2.0 release's four down and three up blocks."""
    def block(key: str) -> str:
        if m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.(.*)", key):
            return f"encoder.down_blocks.{2 * int(m.group(1)) + 1}.{m.group(2)}"
        if m := re.match(r"encoder\.down_blocks\.(\d+)\.(.*)", key):
            return f"encoder.down_blocks.{2 * int(m.group(1))}.{m.group(2)}"
        if key.startswith("encoder.mid_block."):
            return "encoder.down_blocks.8." + key[len("encoder.mid_block."):]
        if key.startswith("decoder.mid_block."):
            return "decoder.up_blocks.0." + key[len("decoder.mid_block."):]
        if m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.*)", key):
            return f"decoder.up_blocks.{2 * int(m.group(1)) + 1}.{m.group(2)}"
        if m := re.match(r"decoder\.up_blocks\.(\d+)\.(.*)", key):
            return f"decoder.up_blocks.{2 * int(m.group(1)) + 2}.{m.group(2)}"
        return {"latents_mean": "per_channel_statistics.mean-of-means",
                "latents_std": "per_channel_statistics.std-of-means"}.get(key, key)

    return {block(k).replace(".resnets.", ".res_blocks."): v for k, v in sd.items()}


def load_ltx2_checkpoint(path: Any) -> tuple[Any, Any, Any]:
    """``(LTX2AVModel, family, AutoencoderKLLTX2Video)`` of an all-in-one LTX-2 checkpoint, CPU float32.

    Raises:
        ValidationError: the file holds no video VAE, or weights that do not fit.
    """
    from nodeloom.diffusion.families.ltx2 import FAMILY
    from nodeloom.diffusion.single_file import load_weights

    sd = load_weights(path, dtype=torch.float32, prefix="")
    if _VAE_KEY not in sd:
        raise ValidationError(f"`{Path(path).name}` holds no LTX-2 video VAE (`{_VAE_KEY}`); load its transformer with "
                              "UNETLoader and a VAE with VAELoader", type="invalid_model_file")
    prefix = "model.diffusion_model."
    module = FAMILY.load({k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}, None)
    vae = load_ltx2_video_vae({k: v for k, v in sd.items() if k.startswith("vae.")}, Path(path).name)
    return module, FAMILY, vae
