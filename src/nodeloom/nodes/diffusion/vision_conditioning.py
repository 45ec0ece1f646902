"""Conditioning nodes that only rearrange the values they are given (no model runs in them):
unCLIPConditioning (a CLIP-vision output attached for unCLIP models), PiDConditioning (a latent
and a degradation level attached for PiD decoding), and Hunyuan3Dv2Conditioning /
Hunyuan3Dv2ConditioningMultiView (CLIP-vision tokens as Hunyuan3D 2's positive conditioning with
a zero negative). Option keys and tensor layouts are ComfyUI's, so models that read them find them.
"""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.diffusion.families.qwen import LATENTS_MEAN as _WAN_MEAN
from nodeloom.diffusion.families.qwen import LATENTS_STD as _WAN_STD
from nodeloom.diffusion.families.sd3 import LATENT_SCALE as _SD3_SCALE
from nodeloom.diffusion.families.sd3 import LATENT_SHIFT as _SD3_SHIFT
from nodeloom.errors import ValidationError
from nodeloom.node_api import IO, Combo, Conditioning, Custom, Float, Latent, Node, Output, Schema

__all__ = ["Hunyuan3Dv2Conditioning", "Hunyuan3Dv2ConditioningMultiView", "PiDConditioning", "unCLIPConditioning"]

CLIP_VISION_OUTPUT = "CLIP_VISION_OUTPUT"
#: Hunyuan3D 2's view slots, in the order their positional codes are numbered
VIEWS = ("front", "left", "back", "right")
#: PiD's latent formats (the first auto-detects Flux.2's 128-channel latent)
PID_FORMATS = ["flux", "sd3", "sdxl", "qwenimage"]
_FLUX_SCALE, _FLUX_SHIFT, _SDXL_SCALE = 0.3611, 0.1159, 0.13025


def _entries(conditioning: Any, name: str) -> list[Any]:
    """``conditioning`` checked to be a CONDITIONING list of ``[tensor, dict]`` pairs."""
    if not isinstance(conditioning, list) or not all(
            isinstance(e, (list, tuple)) and len(e) == 2 and isinstance(e[1], dict) for e in conditioning):
        raise ValidationError(f"`{name}` must be a CONDITIONING (a list of [tensor, options] entries), "
                              f"got {type(conditioning).__name__}")
    return conditioning


def _set(conditioning: list[Any], values: dict[str, Any], append: bool = False) -> list[Any]:
    """A copy of ``conditioning`` with ``values`` in every entry's options (list values extended
    instead of replaced when ``append``); the input entries are left as they were."""
    out = []
    for tokens, options in conditioning:
        options = dict(options)
        for key, value in values.items():
            old = options.get(key)
            options[key] = old + value if append and isinstance(old, list) else value
        out.append([tokens, options])
    return out


def hidden_state(output: Any, name: str) -> torch.Tensor:
    """The ``last_hidden_state`` ``[B, tokens, width]`` of a CLIP_VISION_OUTPUT (attribute or key)."""
    value = getattr(output, "last_hidden_state", None)
    if value is None and isinstance(output, dict):
        value = output.get("last_hidden_state")
    if not isinstance(value, torch.Tensor) or value.ndim != 3:
        raise ValidationError(f"`{name}` must be a CLIP_VISION_OUTPUT (CLIPVisionEncode) holding a "
                              f"last_hidden_state tensor [batch, tokens, width], got {type(output).__name__}")
    return value


class unCLIPConditioning(Node):  # noqa: N801 - ComfyUI's node id
    """Attaches a CLIP-vision image embedding to a conditioning for unCLIP checkpoints (image variations)."""

    SCHEMA = Schema(
        "unCLIPConditioning", category="conditioning",
        inputs=[
            Conditioning("conditioning", tooltip="The conditioning to attach the image embedding to."),
            Custom(CLIP_VISION_OUTPUT, "clip_vision_output", tooltip="CLIPVisionEncode of the image to vary."),
            Float("strength", 1.0, min=-10.0, max=10.0, step=0.01,
                  tooltip="How strongly the image steers an unCLIP model; 0 returns the conditioning unchanged."),
            Float("noise_augmentation", 0.0, min=0.0, max=1.0, step=0.01,
                  tooltip="How much noise an unCLIP model mixes into the embedding (higher: looser variations)."),
        ],
        outputs=[Output(IO.CONDITIONING, "CONDITIONING")],
    )

    @classmethod
    def execute(cls, conditioning: Any, clip_vision_output: Any, strength: float,
                noise_augmentation: float) -> tuple[Any, ...]:
        conditioning = _entries(conditioning, "conditioning")
        if strength == 0:
            return (conditioning,)
        if clip_vision_output is None or not (hasattr(clip_vision_output, "image_embeds")
                                              or isinstance(clip_vision_output, dict)):
            raise ValidationError("`clip_vision_output` must be a CLIP_VISION_OUTPUT (CLIPVisionEncode), "
                                  f"got {type(clip_vision_output).__name__}")
        item = {"clip_vision_output": clip_vision_output, "strength": float(strength),
                "noise_augmentation": float(noise_augmentation)}
        return (_set(conditioning, {"unclip_conditioning": [item]}, append=True),)


def _wan_normalise(samples: torch.Tensor) -> torch.Tensor:
    """``(latent − mean) / std`` per channel with the Wan 2.1 / Qwen-Image VAE statistics."""
    if samples.shape[1] != len(_WAN_MEAN):
        raise ValidationError(f"`latent` must have {len(_WAN_MEAN)} channels for latent_format 'qwenimage', "
                              f"got {samples.shape[1]}")
    shape = (1, -1) + (1,) * (samples.ndim - 2)
    mean = torch.tensor(_WAN_MEAN, dtype=samples.dtype, device=samples.device).reshape(shape)
    std = torch.tensor(_WAN_STD, dtype=samples.dtype, device=samples.device).reshape(shape)
    return (samples - mean) / std


def pid_latent(samples: torch.Tensor, latent_format: str) -> torch.Tensor:
    """A raw VAE latent brought into the chosen format's model space, first frame of a video latent."""
    if latent_format == "flux":
        if samples.shape[1] == 128:  # Flux.2: its latent goes in as it is
            out = samples
        else:
            out = (samples - _FLUX_SHIFT) * _FLUX_SCALE
    elif latent_format == "sd3":
        out = (samples - _SD3_SHIFT) * _SD3_SCALE
    elif latent_format == "sdxl":
        out = samples * _SDXL_SCALE
    elif latent_format == "qwenimage":
        out = _wan_normalise(samples)
    else:
        raise ValidationError(f"`latent_format` must be one of {PID_FORMATS}, got {latent_format!r}")
    return out[:, :, 0] if out.ndim == 5 else out


class PiDConditioning(Node):
    """Attaches a latent and how degraded it is to a conditioning, for PiD pixel-diffusion decoding or upscaling."""

    SCHEMA = Schema(
        "PiDConditioning", display_name="PiD Conditioning", category="model/conditioning",
        inputs=[
            Conditioning("positive", tooltip="The conditioning the latent is attached to."),
            Latent("latent", tooltip="The latent to decode (VAEEncode or a sampler's output)."),
            Combo("latent_format", PID_FORMATS, default="flux",
                  tooltip="Whose latent it is. flux covers Flux.1 (16 channels) and Flux.2 (128 channels, "
                          "told apart by the channel count); pick sd3, sdxl or qwenimage for those models."),
            Float("degrade_sigma", 0.0, min=0.0, max=1.0, step=0.01,
                  tooltip="How degraded the latent is: 0 for a clean one, higher to clean up a noisy or "
                          "damaged latent."),
        ],
        outputs=[Output(IO.CONDITIONING, "CONDITIONING")],
    )

    @classmethod
    def execute(cls, positive: Any, latent: Any, latent_format: str, degrade_sigma: float) -> tuple[Any, ...]:
        positive = _entries(positive, "positive")
        samples = latent.get("samples") if isinstance(latent, dict) else None
        if not isinstance(samples, torch.Tensor) or samples.ndim not in (4, 5):
            raise ValidationError("`latent` must be a LATENT whose samples are [batch, channels, height, width] "
                                  "(or a video latent with frames)")
        values = {"lq_latent": pid_latent(samples, latent_format),
                  "degrade_sigma": torch.tensor([float(degrade_sigma)], dtype=torch.float32)}
        return (_set(positive, values),)


class Hunyuan3Dv2Conditioning(Node):
    """Hunyuan3D 2's conditioning from one image: its CLIP-vision tokens, with an all-zero negative."""

    SCHEMA = Schema(
        "Hunyuan3Dv2Conditioning", category="conditioning/video_models",
        inputs=[Custom(CLIP_VISION_OUTPUT, "clip_vision_output",
                       tooltip="CLIPVisionEncode of the object's image (its last hidden state is used).")],
        outputs=[Output(IO.CONDITIONING, "positive"), Output(IO.CONDITIONING, "negative")],
    )

    @classmethod
    def execute(cls, clip_vision_output: Any) -> tuple[Any, ...]:
        tokens = hidden_state(clip_vision_output, "clip_vision_output")
        return [[tokens, {}]], [[torch.zeros_like(tokens), {}]]


def view_codes(width: int, count: int = len(VIEWS)) -> torch.Tensor:
    """``[count, width]`` sine-cosine codes of the view slots: for slot p, ``sin(p·ω)`` then
    ``cos(p·ω)`` with ``ω_k = 10000^(−2k/width)``, k < width/2 (float32)."""
    if width % 2:
        raise ValidationError(f"the views' token width must be even for their positional codes, got {width}")
    half = width // 2
    freq = 1.0 / 10000 ** (torch.arange(half, dtype=torch.float32) / (width / 2.0))
    angle = torch.arange(count, dtype=torch.float32)[:, None] * freq[None, :]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)


class Hunyuan3Dv2ConditioningMultiView(Node):
    """Hunyuan3D 2's conditioning from up to four views: each view's tokens marked with its slot's code, joined in a row."""

    SCHEMA = Schema(
        "Hunyuan3Dv2ConditioningMultiView", category="conditioning/video_models",
        inputs=[Custom(CLIP_VISION_OUTPUT, view, optional=True,
                       tooltip=f"CLIPVisionEncode of the object seen from the {view} (optional).")
                for view in VIEWS],
        outputs=[Output(IO.CONDITIONING, "positive"), Output(IO.CONDITIONING, "negative")],
    )

    @classmethod
    def execute(cls, front: Any = None, left: Any = None, back: Any = None, right: Any = None) -> tuple[Any, ...]:
        given = [(slot, view, hidden_state(value, view))
                 for slot, (view, value) in enumerate(zip(VIEWS, (front, left, back, right))) if value is not None]
        if not given:
            raise ValidationError("connect at least one view (front, left, back or right)")
        _, first_view, first = given[0]
        for _, view, tokens in given[1:]:
            if tokens.shape[0] != first.shape[0] or tokens.shape[2] != first.shape[2]:
                raise ValidationError(f"`{view}` holds tokens {tuple(tokens.shape)} that cannot join "
                                      f"`{first_view}`'s {tuple(first.shape)}: batch and width must match")
        codes = view_codes(first.shape[2])
        joined = torch.cat([tokens + codes[slot].to(tokens.device).reshape(1, 1, -1)
                            for slot, _, tokens in given], dim=1)
        return [[joined, {}]], [[torch.zeros_like(joined), {}]]

