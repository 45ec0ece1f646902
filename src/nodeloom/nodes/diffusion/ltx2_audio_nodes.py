"""LTX-2's audio nodes with ComfyUI's names and inputs: LTXVAudioVAELoader (the audio VAE and
vocoder out of an LTX-2 checkpoint), LTXVEmptyLatentAudio (the audio latent as long as a clip of
so many frames at a frame rate) and LTXVAudioVAEDecode (an audio latent to ComfyUI's AUDIO dict).
Model code is :mod:`nodeloom.diffusion.ltx2_audio`."""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.diffusion.ltx2_audio import AUDIO_VAE_PREFIX, VOCODER_PREFIX, LTX2AudioVae, load_ltx2_audio
from nodeloom.diffusion.single_file import load_weights
from nodeloom.errors import ValidationError
from nodeloom.node_api import IO, Combo, Float, Int, Latent, Node, Output, Schema, Vae, model_key, services
from nodeloom.nodes.diffusion._common import device_guard, file_list

__all__ = ["LTXVAudioVAEDecode", "LTXVAudioVAELoader", "LTXVEmptyLatentAudio"]


def _audio_vae(value: Any, node: str) -> LTX2AudioVae:
    if not isinstance(value, LTX2AudioVae):
        raise ValidationError(f"{node}: `audio_vae` must be LTX-2's audio VAE (from LTXVAudioVAELoader), "
                              f"got {type(value).__name__}")
    return value


def _load(path: Any) -> tuple[Any, Any]:
    sd = load_weights(path, prefix="")
    return load_ltx2_audio({k: v for k, v in sd.items() if k.startswith((AUDIO_VAE_PREFIX, VOCODER_PREFIX))})


class LTXVAudioVAELoader(Node):
    """Loads LTX-2's audio VAE and vocoder from an LTX-2 checkpoint (the other weights are skipped)."""

    SCHEMA = Schema(
        "LTXVAudioVAELoader", display_name="LTXV Audio VAE Loader", category="audio",
        inputs=[Combo("ckpt_name", file_list("checkpoints"), tooltip="Audio VAE checkpoint to load.")],
        outputs=[Output(IO.VAE, "Audio VAE")],
    )

    @classmethod
    def execute(cls, ckpt_name: str) -> tuple[Any, ...]:
        svc = services()
        path = svc.paths.get_full_path("checkpoints", ckpt_name)
        vae, vocoder = svc.models.load(model_key(path, "ltx2-audio-vae"), lambda: _load(path))
        return (LTX2AudioVae(vae, vocoder, manager=svc.models),)


class LTXVEmptyLatentAudio(Node):
    """An empty (zero) LTX-2 audio latent ``[B, channels, latents, mel bins]`` as long as
    ``frames_number`` video frames at ``frame_rate``."""

    SCHEMA = Schema(
        "LTXVEmptyLatentAudio", display_name="LTXV Empty Latent Audio", category="latent/audio",
        inputs=[Int("frames_number", 97, min=1, max=1000, tooltip="Number of frames."),
                Float("frame_rate", 25.0, min=1.0, max=1000.0, step=0.01, tooltip="Number of frames per second."),
                Int("batch_size", 1, min=1, max=4096, tooltip="How many audio latents to create in the batch."),
                Vae("audio_vae", tooltip="Audio VAE whose settings fix the latent's channels, length and mel bins.")],
        outputs=[Output(IO.LATENT, "Latent")],
    )

    @classmethod
    def execute(cls, frames_number: int, frame_rate: float, batch_size: int, audio_vae: Any) -> tuple[Any, ...]:
        vae = _audio_vae(audio_vae, "LTXVEmptyLatentAudio")
        length = vae.latent_frames(frames_number, frame_rate)
        if length < 1:
            raise ValidationError(f"LTXVEmptyLatentAudio: {frames_number} frames at {frame_rate} fps is shorter than "
                                  "one audio latent; use more frames or a lower `frame_rate`")
        samples = torch.zeros([batch_size, vae.latent_channels, length, vae.latent_mel_bins])
        return ({"samples": samples, "type": "audio"},)


class LTXVAudioVAEDecode(Node):
    """Decodes an LTX-2 audio latent to a waveform (mel spectrogram through the audio VAE, then the vocoder)."""

    SCHEMA = Schema(
        "LTXVAudioVAEDecode", display_name="LTXV Audio VAE Decode", category="audio",
        inputs=[Latent("samples", tooltip="The latent to be decoded."),
                Vae("audio_vae", tooltip="Audio VAE (with vocoder) that turns the latent into a waveform.")],
        outputs=[Output("AUDIO", "Audio")],
    )

    @classmethod
    def execute(cls, samples: dict[str, Any], audio_vae: Any) -> tuple[Any, ...]:
        vae = _audio_vae(audio_vae, "LTXVAudioVAEDecode")
        with device_guard():
            return (vae.decode(samples["samples"]),)
