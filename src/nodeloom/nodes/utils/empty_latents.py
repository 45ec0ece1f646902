"""Empty latents of model families whose shape needs no model: Stable Audio's
(``EmptyLatentAudio``), ACE-Step 1.0 and 1.5, YuE2 and MiniMax Music 3 audio, HiDream-O1 and Chroma Radiance (pixel-space
images), Qwen-Image Layered (a stack of layers). Each is a zero tensor of the shape the family's
sampler reads, with ComfyUI's node ids, inputs, defaults and extra LATENT keys.

Imports only ``node_api`` and torch.
"""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.node_api import IO, MAX_RESOLUTION, Float, Int, Node, Output, Schema, ValidationError

__all__ = [
    "EmptyAceStep15LatentAudio",
    "EmptyAceStepLatentAudio",
    "EmptyChromaRadianceLatentImage",
    "EmptyHiDreamO1LatentImage",
    "EmptyLatentAudio",
    "EmptyLatentHunyuan3Dv2",
    "EmptyMiniMaxMusic3LatentAudio",
    "EmptyQwenImageLayeredLatentImage",
    "EmptyTrellis2LatentStructure",
    "EmptyYuE2LatentAudio",
    "audio_latent_length",
]

_BATCH_TIP = "How many latents to make at once."

# Samples per second and samples per latent frame of each audio family's VAE.
_AUDIO_RATES = {"stable_audio": (44100, 2048), "ace_step": (44100, 512 * 8), "ace_step_1.5": (48000, 1920),
                "yue2": (48000, 1920), "minimax_music3": (44100, 512)}
#: MiniMax Music 3 counts its length in 25 Hz acoustic frames (24 kHz audio, hop 960), at most 9000 (360 s);
#: its VAE latent has one frame per 512 samples of 44.1 kHz audio
MINIMAX_MUSIC3_FRAME_RATE = 25
MINIMAX_MUSIC3_MAX_FRAMES = 9000


def audio_latent_length(seconds: float, family: str) -> int:
    """Latent frames for ``seconds`` of audio, counted as ComfyUI counts them per family.

    Stable Audio rounds to an even count, ACE-Step 1.0 truncates, ACE-Step 1.5 and YuE2 round
    (YuE2 to at least one frame). MiniMax Music 3 first rounds to its 25 Hz acoustic frames
    (1..9000), then converts those to 44.1 kHz latent frames, truncating.

    Raises:
        ValidationError: ``seconds`` is not positive, or ``family`` is unknown.
    """
    if family not in _AUDIO_RATES:
        raise ValidationError(f"`family` must be one of {sorted(_AUDIO_RATES)}, got {family!r}")
    if not seconds > 0:
        raise ValidationError(f"`seconds` must be > 0, got {seconds}")
    rate, hop = _AUDIO_RATES[family]
    frames = seconds * rate / hop
    if family == "stable_audio":
        return round(frames / 2) * 2
    if family == "ace_step":
        return int(frames)
    if family == "yue2":
        return max(1, round(frames))
    if family == "minimax_music3":
        acoustic = min(MINIMAX_MUSIC3_MAX_FRAMES, max(1, round(seconds * MINIMAX_MUSIC3_FRAME_RATE)))
        return max(1, int(acoustic * 44100 / 24000 * 960 / 512))
    return round(frames)


def _batch(batch_size: int, limit: int = 4096) -> int:
    if not 1 <= int(batch_size) <= limit:
        raise ValidationError(f"`batch_size` must be in 1..{limit}, got {batch_size}")
    return int(batch_size)


def _size(name: str, value: int, low: int) -> int:
    if int(value) < low:
        raise ValidationError(f"`{name}` must be at least {low} pixels, got {value}")
    return int(value)


class EmptyLatentAudio(Node):
    """An empty Stable Audio latent: 64 channels, one frame per 2048 samples at 44.1 kHz."""

    SCHEMA = Schema(
        "EmptyLatentAudio", display_name="Empty Latent Audio", category="latent/audio",
        inputs=[Float("seconds", 47.6, min=1.0, max=1000.0, step=0.1, tooltip="The duration of the audio in seconds."),
                Int("batch_size", 1, min=1, max=4096, tooltip=_BATCH_TIP)],
        outputs=[Output(IO.LATENT, "LATENT", tooltip="Zeros [batch, 64, length], type audio.")],
    )

    @classmethod
    def execute(cls, seconds: float, batch_size: int = 1) -> tuple[Any, ...]:
        length = audio_latent_length(float(seconds), "stable_audio")
        return ({"samples": torch.zeros([_batch(batch_size), 64, length]), "type": "audio",
                 "downscale_ratio_temporal": 2048},)


class EmptyAceStepLatentAudio(Node):
    """An empty ACE-Step 1.0 latent: [batch, 8, 16, length], one frame per 4096 samples at 44.1 kHz."""

    SCHEMA = Schema(
        "EmptyAceStepLatentAudio", display_name="Empty Ace Step 1.0 Latent Audio", category="latent/audio",
        inputs=[Float("seconds", 120.0, min=1.0, max=1000.0, step=0.1, tooltip="The duration of the audio in seconds."),
                Int("batch_size", 1, min=1, max=4096, tooltip=_BATCH_TIP)],
        outputs=[Output(IO.LATENT, "LATENT", tooltip="Zeros [batch, 8, 16, length], type audio.")],
    )

    @classmethod
    def execute(cls, seconds: float, batch_size: int = 1) -> tuple[Any, ...]:
        length = audio_latent_length(float(seconds), "ace_step")
        return ({"samples": torch.zeros([_batch(batch_size), 8, 16, length]), "type": "audio"},)


class EmptyAceStep15LatentAudio(Node):
    """An empty ACE-Step 1.5 latent: 64 channels, one frame per 1920 samples at 48 kHz."""

    SCHEMA = Schema(
        "EmptyAceStep1.5LatentAudio", display_name="Empty Ace Step 1.5 Latent Audio", category="latent/audio",
        inputs=[Float("seconds", 120.0, min=1.0, max=1000.0, step=0.01, tooltip="The duration of the audio in seconds."),
                Int("batch_size", 1, min=1, max=4096, tooltip=_BATCH_TIP)],
        outputs=[Output(IO.LATENT, "LATENT", tooltip="Zeros [batch, 64, round(seconds·48000/1920)], type audio.")],
    )

    @classmethod
    def execute(cls, seconds: float, batch_size: int = 1) -> tuple[Any, ...]:
        length = audio_latent_length(float(seconds), "ace_step_1.5")
        return ({"samples": torch.zeros([_batch(batch_size), 64, length]), "type": "audio",
                 "downscale_ratio_temporal": 1764},)


class EmptyYuE2LatentAudio(Node):
    """An empty YuE2 latent: 64 channels, 25 frames a second (one per 1920 samples at 48 kHz)."""

    SCHEMA = Schema(
        "EmptyYuE2LatentAudio", display_name="Empty YuE2 Latent Audio", category="model/latent/yue2",
        inputs=[Float("seconds", 120.0, min=0.04, max=1000.0, step=0.04,
                      tooltip="The duration of the audio in seconds; YuE2 Generate Music's `seconds` output fits."),
                Int("batch_size", 1, min=1, max=4096, tooltip=_BATCH_TIP)],
        outputs=[Output(IO.LATENT, "LATENT", tooltip="Zeros [batch, 64, round(seconds·25)], type audio.")],
    )

    @classmethod
    def execute(cls, seconds: float, batch_size: int = 1) -> tuple[Any, ...]:
        length = audio_latent_length(float(seconds), "yue2")
        return ({"samples": torch.zeros([_batch(batch_size), 64, length]), "type": "audio",
                 "downscale_ratio_temporal": 1920},)


class EmptyMiniMaxMusic3LatentAudio(Node):
    """An empty MiniMax Music 3 latent: 128 channels, one frame per 512 samples at 44.1 kHz, for at
    most 360 seconds (9000 acoustic frames at 25 Hz)."""

    SCHEMA = Schema(
        "EmptyMiniMaxMusic3LatentAudio", display_name="Empty MiniMax Music3 Latent Audio",
        category="model/latent/minimax music",
        description="An empty MiniMax Music 3 audio latent as long as the requested duration.",
        inputs=[Float("seconds", 120.0, min=0.04, max=MINIMAX_MUSIC3_MAX_FRAMES / MINIMAX_MUSIC3_FRAME_RATE,
                      step=0.04, tooltip="The duration of the audio in seconds (at most 360); MiniMax Music3 Text"
                                         " Encode's `seconds` output fits."),
                Int("batch_size", 1, min=1, max=4096, tooltip=_BATCH_TIP)],
        outputs=[Output(IO.LATENT, "LATENT", tooltip="Zeros [batch, 128, length], type audio.")],
    )

    @classmethod
    def execute(cls, seconds: float, batch_size: int = 1) -> tuple[Any, ...]:
        length = audio_latent_length(float(seconds), "minimax_music3")
        return ({"samples": torch.zeros([_batch(batch_size), 128, length]), "type": "audio",
                 "downscale_ratio_temporal": 512},)


class EmptyHiDreamO1LatentImage(Node):
    """Empty pixel-space latent for HiDream-O1-Image (3 channels at full resolution). The model was
    trained at about 4 megapixels (2048x2048, 2304x1728, 2560x1440, ...); smaller sizes lose quality."""

    SCHEMA = Schema(
        "EmptyHiDreamO1LatentImage", display_name="Empty HiDream-O1 Latent Image", category="model/latent/hidream",
        inputs=[Int("width", 2048, min=64, max=4096, step=32, tooltip="The width in pixels (a multiple of 32)."),
                Int("height", 2048, min=64, max=4096, step=32, tooltip="The height in pixels (a multiple of 32)."),
                Int("batch_size", 1, min=1, max=64, tooltip=_BATCH_TIP)],
        outputs=[Output(IO.LATENT, "LATENT", tooltip="Zeros [batch, 3, height, width].")],
    )

    @classmethod
    def execute(cls, width: int, height: int, batch_size: int = 1) -> tuple[Any, ...]:
        w, h = _size("width", width, 64), _size("height", height, 64)
        return ({"samples": torch.zeros([_batch(batch_size, 64), 3, h, w])},)


class EmptyChromaRadianceLatentImage(Node):
    """Empty pixel-space latent for Chroma Radiance (3 channels at full resolution)."""

    SCHEMA = Schema(
        "EmptyChromaRadianceLatentImage", display_name="EmptyChromaRadianceLatentImage",
        category="latent/chroma_radiance",
        inputs=[Int("width", 1024, min=16, max=MAX_RESOLUTION, step=16, tooltip="The width in pixels."),
                Int("height", 1024, min=16, max=MAX_RESOLUTION, step=16, tooltip="The height in pixels."),
                Int("batch_size", 1, min=1, max=4096, tooltip=_BATCH_TIP)],
        outputs=[Output(IO.LATENT, "LATENT", tooltip="Zeros [batch, 3, height, width].")],
    )

    @classmethod
    def execute(cls, width: int, height: int, batch_size: int = 1) -> tuple[Any, ...]:
        w, h = _size("width", width, 16), _size("height", height, 16)
        return ({"samples": torch.zeros([_batch(batch_size), 3, h, w])},)


class EmptyQwenImageLayeredLatentImage(Node):
    """Empty Qwen-Image-Layered latent: the complete picture plus ``layers`` layers, stacked on the
    time axis ([batch, 16, layers + 1, height/8, width/8]); split it with LatentCutToBatch (dim t)."""

    SCHEMA = Schema(
        "EmptyQwenImageLayeredLatentImage", display_name="Empty Qwen Image Layered Latent", category="model/latent/qwen",
        inputs=[Int("width", 640, min=16, max=MAX_RESOLUTION, step=16, tooltip="The width in pixels (divisible by 16)."),
                Int("height", 640, min=16, max=MAX_RESOLUTION, step=16, tooltip="The height in pixels (divisible by 16)."),
                Int("layers", 3, min=0, max=MAX_RESOLUTION, step=1,
                    tooltip="Layers to separate the picture into; one more sheet holds the complete picture."),
                Int("batch_size", 1, min=1, max=4096, tooltip=_BATCH_TIP)],
        outputs=[Output(IO.LATENT, "LATENT", tooltip="Zeros [batch, 16, layers + 1, height/8, width/8].")],
    )

    @classmethod
    def execute(cls, width: int, height: int, layers: int, batch_size: int = 1) -> tuple[Any, ...]:
        w, h = _size("width", width, 16), _size("height", height, 16)
        if int(layers) < 0:
            raise ValidationError(f"`layers` must be ≥ 0, got {layers}")
        return ({"samples": torch.zeros([_batch(batch_size), 16, int(layers) + 1, h // 8, w // 8])},)


class EmptyLatentHunyuan3Dv2(Node):
    """An empty Hunyuan3D 2 shape latent: ``resolution`` tokens of 64 channels, type hunyuan3dv2."""

    SCHEMA = Schema(
        "EmptyLatentHunyuan3Dv2", category="latent/3d",
        inputs=[Int("resolution", 3072, min=1, max=8192, tooltip="The number of latent tokens (the templates use "
                                                                   "3072, or 4096 for Hunyuan3D 2.1)."),
                Int("batch_size", 1, min=1, max=4096, tooltip=_BATCH_TIP)],
        outputs=[Output(IO.LATENT, "LATENT", tooltip="Zeros [batch, 64, resolution], type hunyuan3dv2.")],
    )

    @classmethod
    def execute(cls, resolution: int, batch_size: int = 1) -> tuple[Any, ...]:
        if not 1 <= int(resolution) <= 8192:
            raise ValidationError(f"`resolution` must be in 1..8192, got {resolution}")
        return ({"samples": torch.zeros([_batch(batch_size), 64, int(resolution)]), "type": "hunyuan3dv2"},)


class EmptyTrellis2LatentStructure(Node):
    """An empty TRELLIS.2 sparse-structure latent: a 16³ grid of 32 channels, type trellis2."""

    SCHEMA = Schema(
        "EmptyTrellis2LatentStructure", category="latent/3d",
        inputs=[Int("batch_size", 1, min=1, max=4096, tooltip=_BATCH_TIP)],
        outputs=[Output(IO.LATENT, "LATENT", tooltip="Zeros [batch, 32, 16, 16, 16], type trellis2.")],
    )

    @classmethod
    def execute(cls, batch_size: int = 1) -> tuple[Any, ...]:
        return ({"samples": torch.zeros([_batch(batch_size), 32, 16, 16, 16]), "type": "trellis2"},)
