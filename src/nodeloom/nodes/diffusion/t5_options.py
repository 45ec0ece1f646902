"""T5TokenizerOptions: ComfyUI's node that changes how T5 prompts are padded (Chroma's template)."""

from __future__ import annotations

import dataclasses
from typing import Any

from nodeloom.node_api import IO, Clip, Int, Node, Output, Schema

__all__ = ["T5TokenizerOptions"]


class T5TokenizerOptions(Node):
    """Sets how a CLIP's T5 prompts are padded: `min_padding` pad tokens always follow the prompt, then it is padded up to `min_length` tokens. A CLIP without T5 passes through unchanged."""

    SCHEMA = Schema(
        "T5TokenizerOptions", display_name="T5TokenizerOptions", category="_for_testing/conditioning",
        experimental=True,
        inputs=[Clip("clip", tooltip="The CLIP whose T5 tokenizer is set (others pass through)."),
                Int("min_padding", 0, min=0, max=10000, step=1,
                    tooltip="Pad tokens always appended after the prompt's end token."),
                Int("min_length", 0, min=0, max=10000, step=1,
                    tooltip="Pad the prompt to at least this many tokens (0: no minimum).")],
        outputs=[Output(IO.CLIP, "CLIP")],
    )

    @classmethod
    def execute(cls, clip: Any, min_padding: int, min_length: int) -> tuple[Any, ...]:
        target = getattr(clip, "__wrapped__", clip)  # a patched CLIP (CLIPAttentionMultiply) clones its own
        if not dataclasses.is_dataclass(target):
            return (clip,)
        names = {f.name for f in dataclasses.fields(target)}
        if "t5" not in names:
            return (clip,)
        changes = {k: int(v) for k, v in (("min_padding", min_padding), ("min_length", min_length)) if k in names}
        return (clip.clone(**changes),)
