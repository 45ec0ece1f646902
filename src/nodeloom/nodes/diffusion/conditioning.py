"""Conditioning nodes: CLIPTextEncode (weighted, long prompts, SDXL dual encoders), ConditioningCombine,
ConditioningAverage, ConditioningConcat and ConditioningZeroOut (ComfyUI's names and rules)."""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.core.context import current_services
from nodeloom.diffusion.embeddings import embedding_resolver
from nodeloom.diffusion.models import ClipModel
from nodeloom.errors import ValidationError
from nodeloom.node_api import IO, Clip, Conditioning, Float, Node, Output, Schema, String
from nodeloom.nodes.diffusion._common import device_guard

__all__ = ["CLIPTextEncode", "ConditioningAverage", "ConditioningCombine", "ConditioningConcat", "ConditioningZeroOut"]


class CLIPTextEncode(Node):
    """Encodes a text prompt using a CLIP model into an embedding that can be used to guide the diffusion model towards generating specific images."""

    SCHEMA = Schema(
        "CLIPTextEncode", display_name="CLIP Text Encode (Prompt)", category="conditioning",
        inputs=[String("text", multiline=True, dynamicPrompts=True,
                       tooltip="The text to be encoded. `(word:1.2)` weights, `(word)` ×1.1, `[word]` ÷1.1,"
                               " `embedding:name` inserts an embedding from models/embeddings."),
                Clip("clip", tooltip="The CLIP model used for encoding the text.")],
        outputs=[Output(IO.CONDITIONING, "CONDITIONING",
                        tooltip="A conditioning containing the embedded text used to guide the diffusion model.")],
    )

    @classmethod
    def execute(cls, text: str, clip: ClipModel) -> tuple[Any, ...]:
        if clip is None:
            raise ValidationError("`clip` is None: the checkpoint loader produced no text encoder")
        svc = current_services(required=False)
        lookup = None
        if svc is not None:
            lookup = embedding_resolver(svc.paths, allow_pickle=bool(svc.settings.get("allow_unsafe_pickle", False)))
        with device_guard() as mgr:
            cond, pooled = clip.encode(text, mgr, embeddings=lookup)
        return ([[cond, {"pooled_output": pooled}]],)


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
