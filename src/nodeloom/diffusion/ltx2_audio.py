"""LTX-2's audio side: the audio VAE (a mel-spectrogram autoencoder, 8 latent channels, 4× shorter
in time and in mel bins) and the vocoder that turns its mel spectrograms into a stereo waveform.

Files: the release's all-in-one checkpoint keeps them under ``audio_vae.`` (diffusers' key names,
with ``per_channel_statistics.mean-of-means``/``std-of-means`` as the latent statistics) and
``vocoder.`` (``conv_pre``/``ups``/``resblocks``/``conv_post``, diffusers' ``conv_in``/
``upsamplers``/``resnets``/``conv_out``). Sizes come from tensor shapes; what shapes cannot tell
(sample rate, hop length, mel bins, upsampling strides) from ``data/families/ltx2_audio.json``,
the 2.0 release's values. Latents are kept as LTX2Pipeline denoises them: normalised per
(channel, mel bin) by the VAE's statistics. Imports no node, engine or adapter.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from nodeloom.diffusion.families import family_config
from nodeloom.diffusion.models import _prepare
from nodeloom.errors import ValidationError, require

__all__ = ["AUDIO_VAE_PREFIX", "VOCODER_PREFIX", "LTX2AudioVae", "audio_latent_frames", "has_ltx2_audio",
           "load_ltx2_audio", "vocoder_from_release", "vocoder_to_release"]

AUDIO_VAE_PREFIX = "audio_vae."
VOCODER_PREFIX = "vocoder."
#: release → diffusers names of the vocoder's parts
_VOCODER_NAMES = (("conv_pre.", "conv_in."), ("ups.", "upsamplers."), ("resblocks.", "resnets."),
                  ("conv_post.", "conv_out."))
_STATS = {"per_channel_statistics.mean-of-means": "latents_mean", "per_channel_statistics.std-of-means": "latents_std"}


def has_ltx2_audio(keys: Any) -> bool:
    """True when a checkpoint's keys hold LTX-2's audio VAE and vocoder."""
    keys = set(keys)
    return (f"{AUDIO_VAE_PREFIX}decoder.conv_in.conv.weight" in keys and f"{VOCODER_PREFIX}conv_pre.weight" in keys)


def _rename(sd: dict[str, Any], pairs: Any) -> dict[str, Any]:
    out = {}
    for key, value in sd.items():
        for old, new in pairs:
            if key.startswith(old):
                key = new + key[len(old):]
        out[key] = value
    return out


def vocoder_from_release(sd: dict[str, Any]) -> dict[str, Any]:
    """Release-layout vocoder weights (no prefix) in diffusers' key names."""
    return _rename(sd, _VOCODER_NAMES)


def vocoder_to_release(sd: dict[str, Any]) -> dict[str, Any]:
    """Diffusers-layout vocoder weights in the release's key names (no prefix)."""
    return _rename(sd, [(new, old) for old, new in _VOCODER_NAMES])


def _indices(keys: Any, pattern: str) -> list[int]:
    return sorted({int(m.group(1)) for k in keys if (m := re.match(pattern, k))})


def audio_vae_config(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """The ``AutoencoderKLLTX2Audio`` config of diffusers-named weights, sizes read from shapes."""
    cfg = dict(family_config("ltx2_audio")["audio_vae"])
    levels = _indices(shapes, r"decoder\.up\.(\d+)\.")
    blocks = _indices(shapes, r"decoder\.up\.0\.block\.(\d+)\.")
    if not levels or not blocks:
        raise ValidationError("the LTX-2 audio VAE has no `decoder.up.N.block.M` weights", type="invalid_model_file")
    widths = [shapes[f"decoder.up.{i}.block.{blocks[-1]}.conv2.conv.weight"][0] for i in levels]
    base = widths[0]
    cfg.update(base_channels=base, ch_mult=tuple(w // base for w in widths), num_res_blocks=len(blocks) - 1,
               latent_channels=shapes["decoder.conv_in.conv.weight"][1],
               output_channels=shapes["decoder.conv_out.conv.weight"][0])
    return cfg


def vocoder_config(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """The ``LTX2Vocoder`` config of diffusers-named weights, sizes read from shapes."""
    cfg = dict(family_config("ltx2_audio")["vocoder"])
    ups = _indices(shapes, r"upsamplers\.(\d+)\.weight")
    resnets = _indices(shapes, r"resnets\.(\d+)\.")
    if not ups or len(resnets) % len(ups):
        raise ValidationError("the LTX-2 vocoder's `ups`/`resblocks` weights do not fit together",
                              type="invalid_model_file")
    per = len(resnets) // len(ups)
    hidden, channels = shapes["conv_in.weight"][:2]
    cfg.update(in_channels=channels, hidden_channels=hidden, out_channels=shapes["conv_out.weight"][0],
               upsample_kernel_sizes=[shapes[f"upsamplers.{i}.weight"][2] for i in ups],
               resnet_kernel_sizes=[shapes[f"resnets.{j}.convs1.0.weight"][2] for j in range(per)])
    if len(cfg["upsample_factors"]) != len(ups):
        raise ValidationError(f"the LTX-2 vocoder has {len(ups)} upsampling layers; the 2.0 release's have "
                              f"{len(cfg['upsample_factors'])}", type="invalid_model_file")
    return cfg


def _build(model_class: Any, sd: dict[str, Any], cfg: dict[str, Any], what: str) -> Any:
    module = model_class(**cfg)
    missing, unexpected = module.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValidationError(f"the LTX-2 {what} weights do not fit its architecture (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})", type="invalid_model_file")
    return module.eval()


def load_ltx2_audio(sd: dict[str, Any]) -> tuple[Any, Any]:
    """(audio VAE, vocoder) from a checkpoint's state dict (``audio_vae.``/``vocoder.`` keys)."""
    diffusers = require("diffusers", "diffusion")
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    if not has_ltx2_audio(sd):
        raise ValidationError("the checkpoint holds no LTX-2 audio VAE and vocoder (looked for "
                              f"`{AUDIO_VAE_PREFIX}decoder.conv_in.conv.weight` and `{VOCODER_PREFIX}conv_pre.weight`)",
                              type="invalid_model_file")
    vae_sd = {_STATS.get(k[len(AUDIO_VAE_PREFIX):], k[len(AUDIO_VAE_PREFIX):]): v.float()
              for k, v in sd.items() if k.startswith(AUDIO_VAE_PREFIX)}
    voc_sd = vocoder_from_release({k[len(VOCODER_PREFIX):]: v.float() for k, v in sd.items()
                                   if k.startswith(VOCODER_PREFIX)})
    vae = _build(diffusers.AutoencoderKLLTX2Audio, vae_sd,
                 audio_vae_config({k: tuple(v.shape) for k, v in vae_sd.items()}), "audio VAE")
    vocoder = _build(LTX2Vocoder, voc_sd, vocoder_config({k: tuple(v.shape) for k, v in voc_sd.items()}), "vocoder")
    return vae, vocoder


def audio_latent_frames(frames: int, frame_rate: float, sample_rate: int, hop_length: int, ratio: int) -> int:
    """Audio latent frames for a clip of ``frames`` at ``frame_rate``: its duration times
    ``sample_rate / hop_length / ratio`` latents a second, rounded (LTX2Pipeline's count)."""
    return round(frames / frame_rate * (sample_rate / hop_length / float(ratio)))


class LTX2AudioVae:
    """The VAE value LTXVAudioVAELoader gives: LTX-2's audio VAE and its vocoder, with the latent
    layout LTXVEmptyLatentAudio needs and decoding to ComfyUI's AUDIO dict."""

    def __init__(self, vae: Any, vocoder: Any, manager: Any = None) -> None:
        self.vae, self.vocoder, self.manager = vae, vocoder, manager

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def latent_mel_bins(self) -> int:
        return int(self.vae.config.mel_bins) // int(self.vae.mel_compression_ratio)

    @property
    def sample_rate(self) -> int:
        """The waveform's rate (the vocoder's output rate)."""
        return int(self.vocoder.config.output_sampling_rate)

    def latent_frames(self, frames: int, frame_rate: float) -> int:
        cfg = self.vae.config
        return audio_latent_frames(frames, frame_rate, int(cfg.sample_rate), int(cfg.mel_hop_length),
                                   int(self.vae.temporal_compression_ratio))

    def _denormalise(self, z: torch.Tensor) -> torch.Tensor:
        """Model-space ``[B,C,L,M]`` → the VAE's raw latent (statistics per channel × mel bin)."""
        n, c, length, mels = z.shape
        packed = z.transpose(1, 2).flatten(2)  # [B, L, C·M], as the statistics are laid out
        stats = self.vae.latents_mean.numel()
        if packed.shape[-1] != stats:
            raise ValidationError(f"LTXVAudioVAEDecode: `samples` has {c}×{mels} channels × mel bins; this audio VAE "
                                  f"takes {self.latent_channels}×{self.latent_mel_bins}")
        raw = packed * self.vae.latents_std.to(packed) + self.vae.latents_mean.to(packed)
        return raw.unflatten(2, (c, mels)).transpose(1, 2)

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> dict[str, Any]:
        """A model-space audio latent ``[B,8,L,16]`` → ``{"waveform": [B,2,samples], "sample_rate"}``."""
        if latent.ndim != 4:
            raise ValidationError(f"LTXVAudioVAEDecode: `samples` must be an audio latent [B,C,L,M], "
                                  f"got shape {tuple(latent.shape)}")
        vae = _prepare(self.vae, self.manager, torch.float32)
        vocoder = _prepare(self.vocoder, self.manager, torch.float32)
        dev = next(vae.parameters()).device
        mel = vae.decode(self._denormalise(latent.to(dev, torch.float32)), return_dict=False)[0]
        waveform = vocoder(mel.to(next(vocoder.parameters()).device)).float()
        return {"waveform": waveform.cpu(), "sample_rate": self.sample_rate}
