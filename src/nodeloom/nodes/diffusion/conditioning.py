"""Conditioning nodes: CLIPTextEncode (weighted, long prompts, SDXL dual encoders) and ConditioningCombine."""

from __future__ import annotations

from typing import Any

from nodeloom.core.context import current_services
from nodeloom.diffusion.embeddings import embedding_resolver
from nodeloom.diffusion.models import ClipModel
from nodeloom.errors import ValidationError
from nodeloom.node_api import IO, Clip, Conditioning, Node, Output, Schema, String
from nodeloom.nodes.diffusion._common import device_guard

__all__ = ["CLIPTextEncode", "ConditioningCombine"]


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
