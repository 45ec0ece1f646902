"""CLIPTextEncodeFlux: Flux.1's prompt node with a separate prompt for CLIP-L and for T5-XXL and
the distilled guidance value set in the same step (ComfyUI's declaration)."""

from __future__ import annotations

from typing import Any

from nodeloom.errors import ValidationError
from nodeloom.node_api import IO, Clip, Float, Node, Output, Schema, String
from nodeloom.nodes.diffusion.conditioning import _encode

__all__ = ["CLIPTextEncodeFlux"]


class CLIPTextEncodeFlux(Node):
    """Encodes a Flux prompt: CLIP-L reads `clip_l` (the pooled vector), T5-XXL reads `t5xxl` (the token states), and `guidance` is attached as FluxGuidance would."""

    SCHEMA = Schema(
        "CLIPTextEncodeFlux", display_name="CLIPTextEncodeFlux", category="advanced/conditioning/flux",
        inputs=[Clip("clip", tooltip="A Flux CLIP (DualCLIPLoader type flux: CLIP-L and T5-XXL)."),
                String("clip_l", multiline=True, dynamicPrompts=True,
                       tooltip="The prompt CLIP-L encodes (its pooled vector steers the whole image)."),
                String("t5xxl", multiline=True, dynamicPrompts=True,
                       tooltip="The prompt T5-XXL encodes (its token states carry the details)."),
                Float("guidance", 3.5, min=0.0, max=100.0, step=0.1,
                      tooltip="Flux dev's distilled guidance strength (as FluxGuidance sets it).")],
        outputs=[Output(IO.CONDITIONING, "CONDITIONING")],
    )

    @classmethod
    def execute(cls, clip: Any, clip_l: str, t5xxl: str, guidance: float) -> tuple[Any, ...]:
        if clip is None or getattr(clip, "family", None) != "flux":
            raise ValidationError("CLIPTextEncodeFlux needs a Flux CLIP (DualCLIPLoader with type flux: clip_l + t5xxl);"
                                  f" `clip` is {getattr(clip, 'family', None) or 'None'}")
        cond, pooled = _encode(clip, t5xxl, texts=(clip_l, t5xxl))
        return ([[cond, {"pooled_output": pooled, "guidance": float(guidance)}]],)
