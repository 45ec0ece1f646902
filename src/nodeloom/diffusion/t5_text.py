"""A CLIP value made of T5-XXL alone (Chroma's ``CLIPLoader`` type ``chroma``).

As ComfyUI encodes these prompts: the T5 tokens end in ``</s>`` and are not padded (a minimum
length of 1), no attention mask, the last hidden states as the conditioning and no pooled output.
T5TokenizerOptions changes ``min_padding`` (pad tokens always appended) and ``min_length``.
Imports no node or engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nodeloom.diffusion.lora import LoraPatch
from nodeloom.diffusion.text_encoders import single_prompt, t5_ids, t5_states

__all__ = ["T5Clip"]


@dataclass(frozen=True)
class T5Clip:
    """T5-XXL as a family's only text encoder (Chroma)."""

    t5: Any = field(repr=False)
    tokenizer: Any = field(repr=False)
    family: str
    min_length: int = 1
    min_padding: int = 0
    layer: int | None = None  # CLIPSetLastLayer's value; T5's last layer is always read
    loras: tuple[LoraPatch, ...] = ()
    cpu_only: bool = False

    def clone(self, **changes: Any) -> T5Clip:
        return dataclasses.replace(self, **changes)

    @property
    def encoders(self) -> tuple[Any, ...]:
        return (self.t5,)

    def t5_ids(self, text: str) -> Any:
        """The prompt's T5 token ids, ``[1, n]``."""
        return t5_ids(self.tokenizer, text, self.min_length, self.min_padding)

    def encode(self, text: str, manager: Any = None, embeddings: Callable[[str], Any] | None = None,
               texts: Sequence[str] | None = None) -> tuple[Any, Any]:
        """``(T5 states [1, n, d], None)`` on the CPU in float32.

        Raises:
            ValidationError: several prompts given (one encoder only).
        """
        prompt = single_prompt(text, texts, self.family)
        return t5_states(self.t5, self.tokenizer, prompt, self.min_length, manager, self.cpu_only, self.min_padding), None
