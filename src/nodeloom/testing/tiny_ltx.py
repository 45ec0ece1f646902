"""Tiny random LTX-Video 0.9 models saved as users download them, for tests and benchmarks.

:func:`build_tiny_ltxv` writes ``checkpoints/`` (an all-in-one file as the release ships it: the
transformer under ComfyUI's ``model.diffusion_model.`` prefix, the VAE under ``vae.``),
``diffusion_models/`` (the transformer alone, release and diffusers layouts), ``vae/`` (the VAE in
the release layout), ``text_encoders/`` (a T5 encoder as ComfyUI's ``t5xxl`` files) and a T5-style
tokenizer in ``tokenizers/t5``; it returns the in-memory modules so tests can build diffusers'
pipeline on the same weights. :data:`LTXV_T2V_WORKFLOW` is the official LTX-Video text-to-video
template's graph at a tiny size. Must not import the engine.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from nodeloom.testing.tiny_families import _tiny_flux_encoders, build_t5_tokenizer

__all__ = ["LTXV_T2V_WORKFLOW", "build_tiny_ltxv", "tiny_ltxv_vae", "transformer_to_release", "vae_to_release"]

#: the official ``ltxv_text_to_video`` template's nodes and widget values, at 64×64 and 9 frames
LTXV_T2V_WORKFLOW: dict[str, Any] = {
    "38": {"class_type": "CLIPLoader", "inputs": {"clip_name": "tiny_t5xxl.safetensors", "type": "ltxv",
                                                  "device": "default"}},
    "44": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_ltxv.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox running through fresh snow", "clip": ["38", 0]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "low quality, worst quality, deformed", "clip": ["38", 0]}},
    "70": {"class_type": "EmptyLTXVLatentVideo", "inputs": {"width": 64, "height": 64, "length": 9, "batch_size": 1}},
    "69": {"class_type": "LTXVConditioning", "inputs": {"positive": ["6", 0], "negative": ["7", 0], "frame_rate": 25.0}},
    "71": {"class_type": "LTXVScheduler", "inputs": {"steps": 4, "max_shift": 2.05, "base_shift": 0.95, "stretch": True,
                                                     "terminal": 0.1, "latent": ["70", 0]}},
    "73": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
    "72": {"class_type": "SamplerCustom", "inputs": {"model": ["44", 0], "add_noise": True, "noise_seed": 7, "cfg": 3.0,
                                                     "positive": ["69", 0], "negative": ["69", 1], "sampler": ["73", 0],
                                                     "sigmas": ["71", 0], "latent_image": ["70", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["72", 0], "vae": ["44", 2]}},
    "78": {"class_type": "CreateVideo", "inputs": {"images": ["8", 0], "fps": 24.0}},
    "79": {"class_type": "SaveVideo", "inputs": {"video": ["78", 0], "filename_prefix": "video/ltxv", "format": "auto",
                                                 "codec": "auto"}},
}

_TRANSFORMER_TO_RELEASE = (("proj_in", "patchify_proj"), ("time_embed", "adaln_single"), ("norm_q", "q_norm"),
                           ("norm_k", "k_norm"))

#: diffusers → release block names of the 0.9.0 VAE (longest first)
_VAE_BLOCKS = {
    "encoder.down_blocks.0.downsamplers.0.": "encoder.down_blocks.1.", "encoder.down_blocks.0.conv_out.":
    "encoder.down_blocks.2.", "encoder.down_blocks.1.downsamplers.0.": "encoder.down_blocks.4.",
    "encoder.down_blocks.1.conv_out.": "encoder.down_blocks.5.", "encoder.down_blocks.2.downsamplers.0.":
    "encoder.down_blocks.7.", "encoder.down_blocks.0.": "encoder.down_blocks.0.", "encoder.down_blocks.1.":
    "encoder.down_blocks.3.", "encoder.down_blocks.2.": "encoder.down_blocks.6.", "encoder.down_blocks.3.":
    "encoder.down_blocks.8.", "encoder.mid_block.": "encoder.down_blocks.9.", "decoder.mid_block.": "decoder.up_blocks.0.",
    "decoder.up_blocks.1.upsamplers.0.": "decoder.up_blocks.2.", "decoder.up_blocks.2.conv_in.": "decoder.up_blocks.4.",
    "decoder.up_blocks.2.upsamplers.0.": "decoder.up_blocks.5.", "decoder.up_blocks.3.conv_in.": "decoder.up_blocks.7.",
    "decoder.up_blocks.3.upsamplers.0.": "decoder.up_blocks.8.", "decoder.up_blocks.0.": "decoder.up_blocks.1.",
    "decoder.up_blocks.1.": "decoder.up_blocks.3.", "decoder.up_blocks.2.": "decoder.up_blocks.6.",
    "decoder.up_blocks.3.": "decoder.up_blocks.9.",
}


def transformer_to_release(sd: dict[str, Any]) -> dict[str, Any]:
    """Diffusers-layout LTX-Video transformer weights in the release's key names."""
    out = {}
    for key, value in sd.items():
        for new, old in _TRANSFORMER_TO_RELEASE:
            key = key.replace(new, old)
        out[key] = value.contiguous()
    return out


def _vae_090_to_release(sd: dict[str, Any]) -> dict[str, Any]:
    """Diffusers-layout 0.9.0 LTX-Video VAE weights in the release's key names (no ``vae.`` prefix)."""
    out = {}
    for key, value in sd.items():
        block = next((b for b in sorted(_VAE_BLOCKS, key=len, reverse=True) if key.startswith(b)), None)
        if block is not None:
            key = _VAE_BLOCKS[block] + key[len(block):]
        key = re.sub(r"\.resnets\.", ".res_blocks.", key).replace("conv_shortcut.conv.", "conv_shortcut.")
        key = re.sub(r"\.norm3\.(weight|bias)$", r".norm3.norm.\1", key)
        key = {"latents_mean": "per_channel_statistics.mean-of-means",
               "latents_std": "per_channel_statistics.std-of-means"}.get(key, key)
        out[key] = value.contiguous()
    return out


def _later_block(key: str, encoder_095: bool, n_down: int) -> str | None:
    """The release block path of a 0.9.1+ diffusers key (None: the 0.9.0 table applies, as for the
    0.9.1 encoder and the keys outside the blocks)."""
    if key.startswith("decoder.mid_block."):
        return "decoder.up_blocks.0." + key[len("decoder.mid_block."):]
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.(upsamplers\.0\.)?(.*)", key):
        k, up, rest = int(m.group(1)), m.group(2), m.group(3)
        return f"decoder.up_blocks.{2 * k + 1 if up else 2 * k + 2}.{rest}"
    if key == "decoder.scale_shift_table":
        return "decoder.last_scale_shift_table"
    if key.startswith("decoder.time_embedder."):
        return "decoder.last_time_embedder." + key[len("decoder.time_embedder."):]
    if not encoder_095:
        return None
    if key.startswith("encoder.mid_block."):
        return f"encoder.down_blocks.{2 * n_down}." + key[len("encoder.mid_block."):]
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.(downsamplers\.0\.)?(.*)", key):
        k, down, rest = int(m.group(1)), m.group(2), m.group(3)
        return f"encoder.down_blocks.{2 * k + 1 if down else 2 * k}.{rest}"
    return None


def vae_to_release(sd: dict[str, Any], version: str = "0.9.0") -> dict[str, Any]:
    """Diffusers-layout LTX-Video VAE weights of ``version``'s structure (0.9.0, 0.9.1, 0.9.5 — 0.9.7
    has 0.9.5's) in the release's key names (no ``vae.`` prefix)."""
    if version == "0.9.0":
        return _vae_090_to_release(sd)
    n_down = len({k.split(".")[2] for k in sd if k.startswith("encoder.down_blocks.")})
    out, rest = {}, {}
    for key, value in sd.items():
        block = _later_block(key, version != "0.9.1", n_down)
        if block is None:
            rest[key] = value
            continue
        key = re.sub(r"\.resnets\.", ".res_blocks.", block).replace("conv_shortcut.conv.", "conv_shortcut.")
        out[re.sub(r"\.norm3\.(weight|bias)$", r".norm3.norm.\1", key)] = value.contiguous()
    return {**out, **_vae_090_to_release(rest)}


def tiny_ltxv_vae(version: str, seed: int = 0) -> Any:
    """A tiny ``AutoencoderKLLTXVideo`` with a release's structure: ``0.9.0``; ``0.9.1`` (timestep-
    conditioned decoder, noise injection, residual upsamplers); ``0.9.5`` (also 0.9.7's: pixel-unshuffle
    downsamplers of three kinds, a fifth encoder width, 32×/8× compression)."""
    import torch
    from diffusers import AutoencoderKLLTXVideo

    if version == "0.9.0":
        return _tiny_vae(seed)
    torch.manual_seed(seed)
    later = {"decoder_block_out_channels": (16, 32, 64), "decoder_layers_per_block": (1, 1, 1, 1),
             "decoder_spatio_temporal_scaling": (True, True, True), "upsample_residual": (True, True, True),
             "upsample_factor": (2, 2, 2), "timestep_conditioning": True, "latent_channels": 128}
    if version == "0.9.1":
        vae = AutoencoderKLLTXVideo(**later, block_out_channels=(8, 16, 32, 32), layers_per_block=(1, 1, 1, 1, 1),
                                    spatio_temporal_scaling=(True, True, True, False),
                                    decoder_inject_noise=(False, True, True, True))
    elif version == "0.9.5":
        vae = AutoencoderKLLTXVideo(**later, block_out_channels=(8, 16, 32, 64, 128), layers_per_block=(1, 1, 1, 1, 1),
                                    down_block_types=("LTXVideo095DownBlock3D",) * 4,
                                    spatio_temporal_scaling=(True, True, True, True),
                                    decoder_inject_noise=(False, False, False, False),
                                    downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
                                    spatial_compression_ratio=32, temporal_compression_ratio=8)
    else:
        raise ValueError(f"no tiny LTX-Video VAE for version {version!r}")
    with torch.no_grad():
        vae.latents_mean.copy_(torch.randn(128) * 0.1)
        vae.latents_std.copy_(torch.rand(128) + 0.5)
        for name, p in vae.named_parameters():  # the release's noise scales are learned; zeros would hide them
            if "per_channel_scale" in name:
                p.normal_(0, 0.1)
    return vae.eval()


def _tiny_vae(seed: int) -> Any:
    import torch
    from diffusers import AutoencoderKLLTXVideo

    torch.manual_seed(seed)
    vae = AutoencoderKLLTXVideo(latent_channels=128, block_out_channels=(8, 16, 32, 32),
                                decoder_block_out_channels=(8, 16, 32, 32), layers_per_block=(1, 1, 1, 1, 1),
                                decoder_layers_per_block=(1, 1, 1, 1, 1)).eval()
    vae.latents_mean.copy_(torch.randn(128) * 0.1)
    vae.latents_std.copy_(torch.rand(128) + 0.5)
    return vae


def build_tiny_ltxv(root: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write tiny LTX-Video 0.9 files under ``root`` and return the modules.

    Returns:
        ``{"transformer", "t5", "tokenizer", "vae"}`` modules and the file names (``ckpt``, ``unet``,
        ``unet_diffusers``, ``vae_file``, ``t5_file``).
    """
    import torch
    from diffusers import LTXVideoTransformer3DModel
    from safetensors.torch import save_file

    root = Path(root)
    for sub in ("checkpoints", "diffusion_models", "text_encoders", "vae", "tokenizers/t5"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    tokenizer = build_t5_tokenizer()
    tokenizer.save_pretrained(root / "tokenizers" / "t5")
    _, t5 = _tiny_flux_encoders(len(tokenizer), seed)
    save_file({k: v.contiguous() for k, v in t5.state_dict().items() if k != "encoder.embed_tokens.weight"},
              str(root / "text_encoders" / "tiny_t5xxl.safetensors"))
    torch.manual_seed(seed)
    transformer = LTXVideoTransformer3DModel(in_channels=128, out_channels=128, num_attention_heads=32,
                                             attention_head_dim=2, cross_attention_dim=64, num_layers=2,
                                             caption_channels=32).eval()
    sd = {k: v.contiguous() for k, v in transformer.state_dict().items()}
    release = transformer_to_release(sd)
    save_file(release, str(root / "diffusion_models" / "tiny_ltxv.safetensors"))
    save_file(sd, str(root / "diffusion_models" / "tiny_ltxv_diffusers.safetensors"))
    vae = _tiny_vae(seed)
    vae_sd = vae_to_release(vae.state_dict())
    save_file(vae_sd, str(root / "vae" / "tiny_ltxv_vae.safetensors"))
    save_file({**{f"model.diffusion_model.{k}": v for k, v in release.items()},
               **{f"vae.{k}": v for k, v in vae_sd.items()}}, str(root / "checkpoints" / "tiny_ltxv.safetensors"))
    return {"transformer": transformer, "t5": t5, "tokenizer": tokenizer, "vae": vae, "ckpt": "tiny_ltxv.safetensors",
            "unet": "tiny_ltxv.safetensors", "unet_diffusers": "tiny_ltxv_diffusers.safetensors",
            "vae_file": "tiny_ltxv_vae.safetensors", "t5_file": "tiny_t5xxl.safetensors"}
