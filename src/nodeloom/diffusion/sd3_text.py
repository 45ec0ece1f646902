"""SD3/SD3.5's text encoding (TripleCLIPLoader, DualCLIPLoader type sd3, the all-in-one checkpoint):
CLIP-L and CLIP-G hidden states (penultimate layer, no final norm) concatenated on the feature axis
and zero-padded to T5's width, followed on the token axis by T5-XXL's states (at least 77 tokens,
no attention mask); the pooled output is CLIP-L's (unprojected) and CLIP-G's (projected) pooled
vectors concatenated — as ComfyUI encodes SD3 prompts. Imports no node, engine or adapter."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nodeloom.diffusion.lora import LoraPatch
from nodeloom.diffusion.models import ClipModel
from nodeloom.diffusion.text_encoders import t5_states
from nodeloom.errors import ValidationError, require

__all__ = ["Sd3Clip", "sd3_roles"]


def sd3_roles(kinds: Sequence[str], widths: Sequence[int], names: Sequence[str]) -> dict[str, int]:
    """Which given file is CLIP-L, CLIP-G and T5 (``{role: index}``): of two CLIP encoders the
    narrower is CLIP-L (768 against 1280 in the releases), whatever order they were given in.

    Raises:
        ValidationError: not two CLIP encoders and at most one T5 (naming the files and what they are).
    """
    clips = [i for i, k in enumerate(kinds) if k in ("clip_l", "clip_g")]
    t5 = [i for i, k in enumerate(kinds) if k == "t5"]
    if len(clips) != 2 or len(t5) > 1 or len(clips) + len(t5) != len(kinds):
        given = ", ".join(f"`{n}` ({k})" for n, k in zip(names, kinds))
        raise ValidationError(f"SD3 text encoding needs clip_l + clip_g, optionally + t5xxl; got {given}",
                              type="unsupported_text_encoder", extra_info={"names": list(names)})
    low, high = sorted(clips, key=lambda i: widths[i])
    roles = {"clip_l": low, "clip_g": high}
    if t5:
        roles["t5"] = t5[0]
    return roles


@dataclass(frozen=True)
class Sd3Clip:
    """The CLIP value of SD3/SD3.5: CLIP-L + CLIP-G (a two-encoder :class:`ClipModel`) and T5 (optional)."""

    clip: ClipModel = field(repr=False)
    t5: Any = field(repr=False)
    tokenizer: Any = field(repr=False)
    width: int  # the model's context width the CLIP states are padded to (T5's, 4096 in the releases)
    family: str = "sd3"
    min_length: int = 77
    layer: int | None = None
    loras: tuple[LoraPatch, ...] = ()
    cpu_only: bool = False

    def clone(self, **changes: Any) -> Sd3Clip:
        return dataclasses.replace(self, **changes)

    @property
    def encoders(self) -> tuple[Any, ...]:
        return (*self.clip.encoders, *((self.t5,) if self.t5 is not None else ()))

    def encode(self, text: str, manager: Any = None, embeddings: Callable[[str], Any] | None = None,
               texts: Sequence[str] | None = None) -> tuple[Any, Any]:
        """``(cond [1, 77·k + n_t5, width], pooled [1, L + G])`` on the CPU in float32.

        ``texts``: one prompt per encoder (CLIP-L's, CLIP-G's, T5's).
        """
        torch = require("torch", "diffusion")
        if texts is not None and len(texts) != len(self.encoders):
            raise ValidationError(f"{len(texts)} prompts for {len(self.encoders)} SD3 text encoders")
        prompts = list(texts) if texts is not None else [text] * len(self.encoders)
        clip = self.clip.clone(layer=self.layer, loras=self.loras)
        lg, pooled = clip.encode(prompts[0], None if self.cpu_only else manager, embeddings=embeddings,
                                 texts=prompts[:2])
        if lg.shape[-1] > self.width:
            raise ValidationError(f"the CLIP-L + CLIP-G states are {lg.shape[-1]} wide, more than the model's"
                                  f" {self.width}; the encoders do not belong together")
        out = torch.nn.functional.pad(lg, (0, self.width - lg.shape[-1]))
        if self.t5 is not None:
            out = torch.cat([out, t5_states(self.t5, self.tokenizer, prompts[2], self.min_length, manager,
                                            self.cpu_only)], dim=1)
        return out, pooled
