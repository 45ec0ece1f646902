"""``comfy_api.input``, ``comfy_api.input_impl`` and ``comfy_api.util``: ComfyUI's value-type names.

One module behind all three names (and their ``basic_types`` / ``video_types`` submodules, and
``comfy_api.latest._input`` / ``_input_impl`` / ``_util``), as ComfyUI re-exports one set of
classes under each: the IMAGE / MASK / AUDIO / LATENT value types, and nodeloom's own VIDEO
values from :mod:`nodeloom.ops.video_value` under ComfyUI's names (``VideoInput``,
``VideoFromFile``, ``VideoFromComponents``, ``VideoComponents``, ``VideoContainer``,
``VideoCodec``), so a ``VideoFromFile`` a pack builds is the value the built-in video nodes read.
"""

from __future__ import annotations

from typing import Any, TypedDict

import torch

from nodeloom.ops.video_value import (
    VideoCodec,
    VideoComponents,
    VideoContainer,
    VideoFromComponents,
    VideoFromFile,
    VideoInput,
)

__all__ = [
    "AudioInput",
    "ImageInput",
    "LatentInput",
    "MaskInput",
    "VideoCodec",
    "VideoComponents",
    "VideoContainer",
    "VideoFromComponents",
    "VideoFromFile",
    "VideoInput",
]

ImageInput = torch.Tensor
"""An IMAGE: ``float32 [B, H, W, C]`` in 0..1."""

MaskInput = torch.Tensor
"""A MASK: ``float32 [B, H, W]`` in 0..1."""


class AudioInput(TypedDict):
    """An AUDIO value: ``waveform [B, C, T]`` and its ``sample_rate``."""

    waveform: torch.Tensor
    sample_rate: int


class LatentInput(TypedDict, total=False):
    """A LATENT value: ``samples [B, C, H, W]`` and optional ``noise_mask`` / ``batch_index``."""

    samples: torch.Tensor
    noise_mask: Any
    batch_index: list[int]
