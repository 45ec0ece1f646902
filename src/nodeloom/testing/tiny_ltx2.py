"""Tiny random LTX-2 audio models saved as users download them, for tests and benchmarks.

:func:`build_tiny_ltx2_audio` writes ``checkpoints/tiny_ltx2.safetensors``: the audio VAE under
``audio_vae.`` and the vocoder under ``vocoder.`` in the release's key names, as the LTX-2
all-in-one checkpoints hold them (the 2.0 release's layout and strides, narrower layers). It returns
the in-memory diffusers modules so tests can compare with LTX2Pipeline's decoding. Must not import
the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nodeloom.diffusion.ltx2_audio import AUDIO_VAE_PREFIX, VOCODER_PREFIX, vocoder_to_release

__all__ = ["build_tiny_ltx2_audio"]

_STATS = {"latents_mean": "per_channel_statistics.mean-of-means", "latents_std": "per_channel_statistics.std-of-means"}


def tiny_audio_modules(seed: int = 0) -> tuple[Any, Any]:
    """A small ``AutoencoderKLLTX2Audio`` (one res block, no widening) and ``LTX2Vocoder``
    (hidden width 32) with random weights and latent statistics."""
    import torch
    from diffusers import AutoencoderKLLTX2Audio
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    torch.manual_seed(seed)
    vae = AutoencoderKLLTX2Audio(base_channels=128, ch_mult=(1, 1, 1), num_res_blocks=1).eval()
    vae.latents_mean.copy_(torch.randn(128) * 0.1)
    vae.latents_std.copy_(torch.rand(128) + 0.5)
    vocoder = LTX2Vocoder(in_channels=128, hidden_channels=32).eval()
    return vae, vocoder


def build_tiny_ltx2_audio(root: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write the tiny LTX-2 checkpoint's audio part under ``root/checkpoints``.

    Returns:
        ``{"audio_vae", "vocoder"}`` modules and ``ckpt`` (the file name).
    """
    from safetensors.torch import save_file

    vae, vocoder = tiny_audio_modules(seed)
    (Path(root) / "checkpoints").mkdir(parents=True, exist_ok=True)
    sd = {AUDIO_VAE_PREFIX + _STATS.get(k, k): v.contiguous() for k, v in vae.state_dict().items()}
    sd.update({VOCODER_PREFIX + k: v.contiguous() for k, v in vocoder_to_release(vocoder.state_dict()).items()})
    save_file(sd, str(Path(root) / "checkpoints" / "tiny_ltx2.safetensors"))
    return {"audio_vae": vae, "vocoder": vocoder, "ckpt": "tiny_ltx2.safetensors"}


def build_tiny_upsamplers(root: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write two tiny latent upsamplers under ``root/latent_upscale_models``: the LTX-Video 0.9.x
    layout (pixel-shuffle upsampler) and the LTX-2 layout (rational resampler, its config in the
    file's metadata as the release carries it). Returns the modules and the file names."""
    import json

    import torch
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel
    from safetensors.torch import save_file

    folder = Path(root) / "latent_upscale_models"
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    for name, rational in (("tiny_ltxv_spatial_upscaler.safetensors", False),
                           ("tiny_ltx2_spatial_upscaler_x2.safetensors", True)):
        torch.manual_seed(seed)
        module = LTX2LatentUpsamplerModel(in_channels=128, mid_channels=32, num_blocks_per_stage=1,
                                          use_rational_resampler=rational).eval()
        metadata = {"config": json.dumps(dict(module.config))} if rational else None
        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(folder / name), metadata=metadata)
        out["ltx2" if rational else "ltxv"] = (module, name)
    return out
