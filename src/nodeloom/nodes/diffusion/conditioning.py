"""Conditioning nodes with ComfyUI's names and rules: CLIPTextEncode (weighted, long prompts, SDXL
dual encoders), CLIPTextEncodeSDXL (a prompt per encoder, size conditioning), ConditioningCombine,
ConditioningAverage, ConditioningConcat, ConditioningZeroOut and ConditioningSetTimestepRange."""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.diffusion.embeddings import embedding_resolver
from nodeloom.diffusion.models import ClipModel
from nodeloom.errors import ValidationError
from nodeloom.node_api import IO, MAX_RESOLUTION, Clip, Conditioning, Float, Int, Node, Output, Schema, String, services
from nodeloom.nodes.diffusion._common import device_guard

__all__ = ["CLIPTextEncode", "CLIPTextEncodeSDXL", "ConditioningAverage", "ConditioningCombine", "ConditioningConcat",
           "ConditioningSetTimestepRange", "ConditioningZeroOut"]


def _encode(clip: ClipModel, text: str, texts: tuple[str, ...] | None = None) -> tuple[Any, Any]:
    """``clip.encode`` under the device lock, with ``embedding:name`` resolved from the engine's
    embeddings folder (no embeddings outside an engine)."""
    with device_guard() as mgr:
        return clip.encode(text, mgr, embeddings=_embeddings(), texts=texts)


def _embeddings() -> Any:
    """The engine's ``embedding:name`` resolver, or None outside an engine."""
    svc = services(required=False)
    if svc is None:
        return None
    return embedding_resolver(svc.paths, allow_pickle=bool(svc.settings.get("allow_unsafe_pickle", False)))


def _conditioning(clip: Any, text: str, texts: tuple[str, ...] | None = None) -> list[Any]:
    """A one-entry CONDITIONING for ``text``: the states and ``pooled_output``, plus the extra tensors
    of CLIP values that give more than a pooled vector through ``encode_conditioning`` (HiDream's
    Llama layers, ``conditioning_llama3``)."""
    if not hasattr(clip, "encode_conditioning"):
        cond, pooled = _encode(clip, text, texts)
        return [[cond, {"pooled_output": pooled}]]
    with device_guard() as mgr:
        cond, extra = clip.encode_conditioning(text, mgr, embeddings=_embeddings(), texts=texts)
    return [[cond, dict(extra)]]


def _extra_values(clip: ClipModel, text: str) -> dict[str, Any]:
    """Values a CLIP adds to its conditioning besides the states (HunyuanVideo 1.5's byT5 glyph
    tokens), from its optional ``extra_conditioning(text, manager)``."""
    extra = getattr(clip, "extra_conditioning", None)
    if extra is None:
        return {}
    with device_guard() as mgr:
        return dict(extra(text, mgr))


class CLIPTextEncode(Node):
    """Turn a text prompt into conditioning with a CLIP text encoder, to steer what the diffusion model generates."""

    SCHEMA = Schema(
        "CLIPTextEncode", display_name="CLIP Text Encode (Prompt)", category="conditioning",
        inputs=[String("text", multiline=True, dynamicPrompts=True,
                       tooltip="The text to be encoded. `(word:1.2)` weights, `(word)` ×1.1, `[word]` ÷1.1,"
                               " `embedding:name` inserts an embedding from models/embeddings."),
                Clip("clip", tooltip="The text encoder (CLIP) that turns the prompt into conditioning.")],
        outputs=[Output(IO.CONDITIONING, "CONDITIONING",
                        tooltip="The encoded prompt, ready to guide sampling.")],
    )

    @classmethod
    def execute(cls, text: str, clip: ClipModel) -> tuple[Any, ...]:
        if clip is None:
            raise ValidationError("`clip` is None: the checkpoint loader produced no text encoder")
        out = _conditioning(clip, text)
        out[0][1].update(_extra_values(clip, text))
        return (out,)


class ConditioningCombine(Node):
    """Combines two conditionings; the sampler averages their guidance."""

    SCHEMA = Schema(
        "ConditioningCombine", display_name="Conditioning (Combine)", category="conditioning",
        inputs=[Conditioning("conditioning_1", tooltip="First conditioning."),
                Conditioning("conditioning_2", tooltip="Second conditioning.")],
        outputs=[Output(IO.CONDITIONING, "CONDITIONING")],
    )

    @classmethod
    def execute(cls, conditioning_1: list[Any], conditioning_2: list[Any]) -> tuple[Any, ...]:
        return (list(conditioning_1) + list(conditioning_2),)


class CLIPTextEncodeSDXL(Node):
    """SDXL prompt with a separate text per encoder (CLIP-G, CLIP-L) and the size conditioning set by hand."""

    SCHEMA = Schema(
        "CLIPTextEncodeSDXL", display_name="CLIPTextEncodeSDXL", category="advanced/conditioning",
        inputs=[
            Clip("clip", tooltip="An SDXL checkpoint's CLIP (two text encoders)."),
            Int("width", 1024, min=0, max=MAX_RESOLUTION, tooltip="Original image width the model is told about."),
            Int("height", 1024, min=0, max=MAX_RESOLUTION, tooltip="Original image height the model is told about."),
            Int("crop_w", 0, min=0, max=MAX_RESOLUTION, tooltip="Crop offset from the left, in pixels."),
            Int("crop_h", 0, min=0, max=MAX_RESOLUTION, tooltip="Crop offset from the top, in pixels."),
            Int("target_width", 1024, min=0, max=MAX_RESOLUTION, tooltip="Target width the model is told about."),
            Int("target_height", 1024, min=0, max=MAX_RESOLUTION, tooltip="Target height the model is told about."),
            String("text_g", multiline=True, dynamicPrompts=True, tooltip="The prompt for CLIP-G (OpenCLIP bigG)."),
            String("text_l", multiline=True, dynamicPrompts=True, tooltip="The prompt for CLIP-L."),
        ],
        outputs=[Output(IO.CONDITIONING, "CONDITIONING")],
    )

    @classmethod
    def execute(cls, clip: ClipModel, width: int, height: int, crop_w: int, crop_h: int, target_width: int,
                target_height: int, text_g: str, text_l: str) -> tuple[Any, ...]:
        if clip is None or len(clip.encoders) != 2:
            raise ValidationError("CLIPTextEncodeSDXL needs an SDXL checkpoint's CLIP (two text encoders)")
        cond, pooled = _encode(clip, text_g, texts=(text_l, text_g))
        extra = {"pooled_output": pooled, "width": width, "height": height, "crop_w": crop_w, "crop_h": crop_h,
                 "target_width": target_width, "target_height": target_height}
        return ([[cond, extra]],)


def _first(conditioning_from: list[Any], node: str) -> tuple[torch.Tensor, dict[str, Any]]:
    """The one entry of ``conditioning_from`` these nodes use (ComfyUI takes the first as well)."""
    if not conditioning_from:
        raise ValidationError(f"{node}: `conditioning_from` is empty")
    return conditioning_from[0][0], conditioning_from[0][1]


class ConditioningAverage(Node):
    """Interpolate each entry of ``conditioning_to`` towards the first entry of ``conditioning_from``."""

    SCHEMA = Schema(
        "ConditioningAverage", display_name="ConditioningAverage", category="conditioning",
        inputs=[Conditioning("conditioning_to", tooltip="The conditioning kept at strength 1."),
                Conditioning("conditioning_from", tooltip="The conditioning mixed in (its first entry)."),
                Float("conditioning_to_strength", 1.0, min=0.0, max=1.0, step=0.01,
                      tooltip="Weight of conditioning_to; the rest goes to conditioning_from.")],
        outputs=[Output(IO.CONDITIONING, "CONDITIONING")],
    )

    @classmethod
    def execute(cls, conditioning_to: list[Any], conditioning_from: list[Any],
                conditioning_to_strength: float) -> tuple[Any, ...]:
        src, src_extra = _first(conditioning_from, "ConditioningAverage")
        pooled_from = src_extra.get("pooled_output")
        w = conditioning_to_strength
        out = []
        for tokens, extra in conditioning_to:
            other = src[:, : tokens.shape[1]]
            if other.shape[1] < tokens.shape[1]:  # shorter prompt: pad with zero tokens
                pad = torch.zeros(1, tokens.shape[1] - other.shape[1], tokens.shape[2], dtype=other.dtype, device=other.device)
                other = torch.cat([other, pad], dim=1)
            merged = dict(extra)
            pooled_to = extra.get("pooled_output", pooled_from)
            if pooled_from is not None and pooled_to is not None:
                merged["pooled_output"] = pooled_to * w + pooled_from * (1.0 - w)
            out.append([tokens * w + other * (1.0 - w), merged])
        return (out,)


class ConditioningConcat(Node):
    """Append the tokens of the first entry of ``conditioning_from`` to each entry of ``conditioning_to``."""

    SCHEMA = Schema(
        "ConditioningConcat", display_name="Conditioning (Concat)", category="conditioning",
        inputs=[Conditioning("conditioning_to", tooltip="The conditioning extended."),
                Conditioning("conditioning_from", tooltip="The conditioning whose tokens are appended (its first entry).")],
        outputs=[Output(IO.CONDITIONING, "CONDITIONING")],
    )

    @classmethod
    def execute(cls, conditioning_to: list[Any], conditioning_from: list[Any]) -> tuple[Any, ...]:
        src, _ = _first(conditioning_from, "ConditioningConcat")
        return ([[torch.cat((tokens, src), 1), dict(extra)] for tokens, extra in conditioning_to],)


class ConditioningZeroOut(Node):
    """The same conditioning with every token and the pooled output set to zero."""

    SCHEMA = Schema(
        "ConditioningZeroOut", display_name="ConditioningZeroOut", category="advanced/conditioning",
        inputs=[Conditioning("conditioning", tooltip="The conditioning to zero.")],
        outputs=[Output(IO.CONDITIONING, "CONDITIONING")],
    )

    @classmethod
    def execute(cls, conditioning: list[Any]) -> tuple[Any, ...]:
        out = []
        for tokens, extra in conditioning:
            zeroed = dict(extra)
            if zeroed.get("pooled_output") is not None:
                zeroed["pooled_output"] = torch.zeros_like(zeroed["pooled_output"])
            out.append([torch.zeros_like(tokens), zeroed])
        return (out,)


class ConditioningSetTimestepRange(Node):
    """Let a conditioning act only between two points of the run (0 = the noisiest step, 1 = the end)."""

    SCHEMA = Schema(
        "ConditioningSetTimestepRange", display_name="ConditioningSetTimestepRange", category="advanced/conditioning",
        inputs=[Conditioning("conditioning", tooltip="The conditioning to limit."),
                Float("start", 0.0, min=0.0, max=1.0, step=0.001, tooltip="Where in the run it starts acting."),
                Float("end", 1.0, min=0.0, max=1.0, step=0.001, tooltip="Where in the run it stops acting.")],
        outputs=[Output(IO.CONDITIONING, "CONDITIONING")],
    )

    @classmethod
    def execute(cls, conditioning: list[Any], start: float, end: float) -> tuple[Any, ...]:
        return ([[tokens, {**extra, "start_percent": start, "end_percent": end}] for tokens, extra in conditioning],)
