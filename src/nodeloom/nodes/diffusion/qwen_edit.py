"""Qwen-Image-Edit's prompt nodes with ComfyUI's names and inputs: TextEncodeQwenImageEdit (one
image: its vision tokens in the prompt and, with a VAE, its latent as the reference) and
TextEncodeQwenImageEditPlus (up to three images, "Picture N:" each, for the 2509/2511 models).

As ComfyUI does, images are scaled with area averaging to about 1024² pixels for the reference
latents (Plus: sides rounded to multiples of 8) and to about 384² for the vision encoder (Plus;
the single-image node gives the encoder the 1024² image). Encoding is
:class:`nodeloom.diffusion.qwen_text.QwenImageClip`."""

from __future__ import annotations

import hashlib
import math
import threading
import weakref
from collections import OrderedDict
from typing import Any

import torch

from nodeloom.diffusion.qwen_text import EDIT_PLUS_TEMPLATE, IMAGE_PROMPT
from nodeloom.errors import ValidationError
from nodeloom.node_api import IO, Clip, Image, Node, Output, Schema, String, Vae
from nodeloom.nodes.diffusion._common import device_guard
from nodeloom.ops.resample import upscale

__all__ = ["TextEncodeQwenImageEdit", "TextEncodeQwenImageEditPlus", "scale_to_area"]


def scale_to_area(image: torch.Tensor, area: int, multiple: int = 1) -> torch.Tensor:
    """IMAGE ``[B,H,W,C]`` area-resized to about ``area`` pixels, keeping its aspect ratio (sides
    rounded to ``multiple``; ComfyUI's rounding for each node)."""
    h, w = image.shape[1], image.shape[2]
    scale = math.sqrt(area / (w * h))
    if multiple > 1:
        width, height = round(w * scale / multiple) * multiple, round(h * scale / multiple) * multiple
    else:
        width, height = round(w * scale), round(h * scale)
    return upscale(image.movedim(-1, 1), width, height, "area", "disabled").movedim(1, -1)


def _check_clip(clip: Any, node: str) -> None:
    if clip is None or getattr(clip, "family", None) != "qwen_image":
        raise ValidationError(f"{node} needs a Qwen-Image CLIP (CLIPLoader type qwen_image on a qwen_2.5_vl file),"
                              f" got {getattr(clip, 'family', None) or 'none'}")


def _encode(clip: Any, prompt: str, images: list[torch.Tensor], template: str | None,
            refs: list[torch.Tensor]) -> list[Any]:
    with device_guard() as mgr:
        cond, _ = clip.encode(prompt, mgr, images=[im[0, ..., :3] for im in images], template=template)
    extra: dict[str, Any] = {"pooled_output": None}
    if refs:
        extra["reference_latents"] = refs
    return [[cond, extra]]


_REFS: OrderedDict[tuple[Any, ...], tuple[Any, torch.Tensor]] = OrderedDict()
_REFS_LOCK = threading.Lock()


def _reference(vae: Any, image: torch.Tensor) -> torch.Tensor:
    """The image's reference latent. The templates encode the same image for the positive and the
    negative prompt; the last few encodings are kept (keyed by the VAE and the pixels' digest)."""
    pixels = image[..., :3].contiguous().float()
    key = (id(vae.vae), tuple(pixels.shape), hashlib.blake2b(pixels.numpy().tobytes(), digest_size=16).digest())
    with _REFS_LOCK:
        held = _REFS.get(key)
        if held is not None and held[0]() is vae.vae:  # the same VAE, not one that reused its id
            _REFS.move_to_end(key)
            return held[1]
    with device_guard() as mgr:
        latent = vae.encode(pixels, mgr)
    with _REFS_LOCK:
        _REFS[key] = (weakref.ref(vae.vae), latent)
        while len(_REFS) > 6:
            _REFS.popitem(last=False)
    return latent


_PROMPT_TIP = "The instruction: what to change in the image(s)."
_VAE_TIP = "The VAE that encodes the image(s) as reference latents; without it the model sees them only through the text encoder."


class TextEncodeQwenImageEdit(Node):
    """Encodes an edit instruction with the image it applies to for Qwen-Image-Edit: the image's vision tokens join the prompt and, given a VAE, its latent becomes the reference the model edits."""

    SCHEMA = Schema(
        "TextEncodeQwenImageEdit", display_name="TextEncodeQwenImageEdit", category="advanced/conditioning",
        inputs=[Clip("clip", tooltip="A Qwen-Image text encoder (CLIPLoader type qwen_image)."),
                String("prompt", multiline=True, dynamicPrompts=True, tooltip=_PROMPT_TIP),
                Vae("vae", optional=True, tooltip=_VAE_TIP),
                Image("image", optional=True, tooltip="The image to edit (scaled to about 1024² pixels).")],
        outputs=[Output(IO.CONDITIONING, "CONDITIONING")],
    )

    @classmethod
    def execute(cls, clip: Any, prompt: str, vae: Any = None, image: torch.Tensor | None = None) -> tuple[Any, ...]:
        _check_clip(clip, "TextEncodeQwenImageEdit")
        if image is None:
            return (_encode(clip, prompt, [], None, []),)
        scaled = scale_to_area(image, 1024 * 1024)
        refs = [_reference(vae, scaled)] if vae is not None else []
        return (_encode(clip, prompt, [scaled], None, refs),)


class TextEncodeQwenImageEditPlus(Node):
    """Encodes an edit instruction with up to three images for Qwen-Image-Edit 2509/2511: each image is named "Picture N" in the prompt with its vision tokens and, given a VAE, becomes a reference latent."""

    SCHEMA = Schema(
        "TextEncodeQwenImageEditPlus", display_name="TextEncodeQwenImageEditPlus", category="advanced/conditioning",
        inputs=[Clip("clip", tooltip="A Qwen-Image text encoder (CLIPLoader type qwen_image)."),
                String("prompt", multiline=True, dynamicPrompts=True, tooltip=_PROMPT_TIP),
                Vae("vae", optional=True, tooltip=_VAE_TIP),
                *[Image(f"image{i}", optional=True, tooltip=f"Picture {i} (optional).") for i in (1, 2, 3)]],
        outputs=[Output(IO.CONDITIONING, "CONDITIONING")],
    )

    @classmethod
    def execute(cls, clip: Any, prompt: str, vae: Any = None, image1: torch.Tensor | None = None,
                image2: torch.Tensor | None = None, image3: torch.Tensor | None = None) -> tuple[Any, ...]:
        _check_clip(clip, "TextEncodeQwenImageEditPlus")
        vision, refs, names = [], [], ""
        for i, image in enumerate((image1, image2, image3)):
            if image is None:
                continue
            vision.append(scale_to_area(image, 384 * 384))
            if vae is not None:
                refs.append(_reference(vae, scale_to_area(image, 1024 * 1024, multiple=8)))
            names += IMAGE_PROMPT.format(i + 1)
        return (_encode(clip, names + prompt, vision, EDIT_PLUS_TEMPLATE, refs),)
