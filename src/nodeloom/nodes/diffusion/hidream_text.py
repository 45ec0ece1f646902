"""CLIPTextEncodeHiDream: HiDream's prompt node with a separate prompt for each of its four text
encoders (CLIP-L, CLIP-G, T5-XXL, Llama 3.1), as ComfyUI declares it. The encoding is
:mod:`nodeloom.diffusion.hidream_text`."""

from __future__ import annotations

from typing import Any

from nodeloom.errors import ValidationError
from nodeloom.node_api import IO, Clip, Node, Output, Schema, String
from nodeloom.nodes.diffusion.conditioning import _conditioning

__all__ = ["CLIPTextEncodeHiDream"]


def _prompt(name: str, tip: str) -> String:
    return String(name, multiline=True, dynamicPrompts=True, tooltip=tip)


class CLIPTextEncodeHiDream(Node):
    """Encodes a HiDream prompt with a separate text per encoder: CLIP-L and CLIP-G give the pooled vector, T5-XXL and Llama 3.1 the token states."""

    SCHEMA = Schema(
        "CLIPTextEncodeHiDream", display_name="CLIPTextEncodeHiDream", category="advanced/conditioning",
        inputs=[Clip("clip", tooltip="A HiDream CLIP (QuadrupleCLIPLoader, or CLIPLoader/DualCLIPLoader type hidream)."),
                _prompt("clip_l", "The prompt CLIP-L encodes (half of the pooled vector)."),
                _prompt("clip_g", "The prompt CLIP-G encodes (the other half of the pooled vector)."),
                _prompt("t5xxl", "The prompt T5-XXL encodes (its first 128 tokens' states)."),
                _prompt("llama", "The prompt Llama 3.1 encodes (its hidden layers feed the transformer's blocks).")],
        outputs=[Output(IO.CONDITIONING, "CONDITIONING")],
    )

    @classmethod
    def execute(cls, clip: Any, clip_l: str, clip_g: str, t5xxl: str, llama: str) -> tuple[Any, ...]:
        if clip is None or getattr(clip, "family", None) != "hidream":
            raise ValidationError("CLIPTextEncodeHiDream needs a HiDream CLIP (QuadrupleCLIPLoader: clip_l, clip_g,"
                                  f" t5xxl, llama); `clip` is {getattr(clip, 'family', None) or 'None'}")
        return (_conditioning(clip, t5xxl, texts=(clip_l, clip_g, t5xxl, llama)),)
