"""``comfy.clip_vision``: CLIP-vision loading and preprocessing for packs, on nodeloom's encoders.

``load(path)`` returns the same ``CLIP_VISION`` value as the ``CLIPVisionLoader`` node
(:class:`nodeloom.diffusion.clip_vision.ClipVisionModel`: ``encode_image(image, crop)`` giving
``Output`` with ``last_hidden_state``, ``penultimate_hidden_states``, ``image_embeds``...), placed
by the running engine's model manager. ``clip_preprocess`` is nodeloom's resize/crop/normalise.
Building a model from a bare state dict (``load_clipvision_from_sd``) is refused: nodeloom reads
the layout off a file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from nodeloom.core.context import current_services
from nodeloom.diffusion.clip_vision import ClipVisionModel, ClipVisionOutput, load_clip_vision

__all__ = ["ClipVisionModel", "Output", "clip_preprocess", "load", "load_clipvision_from_sd"]

Output = ClipVisionOutput

_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def load(ckpt_path: str | os.PathLike[str]) -> ClipVisionModel:
    """The CLIP-vision model in a file (OpenAI/OpenCLIP/transformers layouts, SigLIP, DINOv2)."""
    services = current_services(required=False)
    return load_clip_vision(os.fspath(ckpt_path), manager=getattr(services, "models", None))


def clip_preprocess(image: torch.Tensor, size: int = 224, mean: Sequence[float] = _CLIP_MEAN,
                    std: Sequence[float] = _CLIP_STD, crop: bool = True) -> torch.Tensor:
    """IMAGE ``[B,H,W,C]`` in 0..1 → normalised ``[B,3,size,size]`` pixels (centre crop, or squash)."""
    from nodeloom.ops.clip_preprocess import clip_preprocess as preprocess

    return preprocess(image, size, mean, std, crop=crop)


def load_clipvision_from_sd(sd: dict[str, Any], prefix: str = "", convert_keys: bool = False) -> Any:
    """Refused: nodeloom builds CLIP-vision models from files.

    Raises:
        NotImplementedError: always, naming the file-based call.
    """
    raise NotImplementedError("`comfy.clip_vision.load_clipvision_from_sd`: nodeloom builds CLIP-vision models from "
                              "files; save the tensors as safetensors and call `comfy.clip_vision.load(path)`")
