"""HunyuanVideo 1.0's text encoders (DualCLIPLoader type ``hunyuan_video``): CLIP-L (``clip_l``)
and the LLaVA-Llama-3 8B language model (``llava_llama3_fp8_scaled``).

:class:`HunyuanVideoClip` is the CLIP value. The prompt is wrapped in the release's video
description template (:data:`LLAMA_TEMPLATE`, after ``<|begin_of_text|>``), encoded by Llama, and
the third-from-last hidden layer kept from the user turn's text through its closing
``<|eot_id|>`` (ComfyUI's crop, :func:`user_span`); CLIP-L encodes the prompt as for SD 1.x and
gives the pooled vector. Imports no node or engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nodeloom.diffusion.lora import LoraPatch
from nodeloom.diffusion.text_encoders import placed_encoder, single_prompt
from nodeloom.errors import require

__all__ = ["LLAMA_TEMPLATE", "HunyuanVideoClip", "user_span"]

LLAMA_TEMPLATE = (
    "<|start_header_id|>system<|end_header_id|>\n\nDescribe the video by detailing the following aspects: "
    "1. The main content and theme of the video.2. The color, shape, size, texture, quantity, text, and spatial "
    "relationships of the objects.3. Actions, events, behaviors temporal relationships, physical movement changes "
    "of the objects.4. background environment, light, style and atmosphere.5. camera angles, movements, and "
    "transitions used in the video:<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>")
_HIDDEN_LAYER = -3


def _find(ids: Sequence[int], part: Sequence[int], start: int = 0) -> int:
    for i in range(start, len(ids) - len(part) + 1):
        if list(ids[i:i + len(part)]) == list(part):
            return i
    return -1


def user_span(ids: Sequence[int], tokenizer: Any) -> tuple[int, int]:
    """``(start, end)`` of the prompt's tokens: after ``<|start_header_id|>user<|end_header_id|>`` and
    the blank line, through the ``<|eot_id|>`` that closes the turn; the whole text without that header."""
    header = [tokenizer.convert_tokens_to_ids("<|start_header_id|>"),
              *tokenizer("user", add_special_tokens=False).input_ids,
              tokenizer.convert_tokens_to_ids("<|end_header_id|>")]
    at = _find(ids, header)
    if at < 0:
        return 0, len(ids)
    start = at + len(header)
    blank = tokenizer("\n\n", add_special_tokens=False).input_ids
    if list(ids[start:start + len(blank)]) == list(blank):
        start += len(blank)
    eot = _find(ids, [tokenizer.convert_tokens_to_ids("<|eot_id|>")], start)
    return start, (eot + 1 if eot >= 0 else len(ids))


@dataclass(frozen=True)
class HunyuanVideoClip:
    """The CLIP value of HunyuanVideo 1.0: CLIP-L (pooled vector) and Llama (token states)."""

    clip_l: Any = field(repr=False)  # a ClipModel holding the CLIP-L encoder
    llama: Any = field(repr=False)
    tokenizer: Any = field(repr=False)
    family: str = "hunyuan_video"
    layer: int | None = None
    loras: tuple[LoraPatch, ...] = ()
    cpu_only: bool = False

    def clone(self, **changes: Any) -> HunyuanVideoClip:
        return dataclasses.replace(self, **changes)

    @property
    def encoders(self) -> tuple[Any, ...]:
        return (*self.clip_l.encoders, self.llama)

    def llama_ids(self, text: str) -> Any:
        """The Llama token ids of the templated prompt, ``<|begin_of_text|>`` first, ``[1, n]``."""
        torch = require("torch", "diffusion")
        ids = list(self.tokenizer(LLAMA_TEMPLATE.format(text), add_special_tokens=False).input_ids)
        if self.tokenizer.bos_token_id is not None:
            ids = [self.tokenizer.bos_token_id, *ids]
        return torch.tensor([ids])

    def encode(self, text: str, manager: Any = None, embeddings: Callable[[str], Any] | None = None,
               texts: Sequence[str] | None = None) -> tuple[Any, Any]:
        """``(Llama states [1, n, 4096], CLIP-L pooled [1, 768])`` on the CPU in float32.

        Raises:
            ValidationError: several prompts given.
        """
        torch = require("torch", "diffusion")
        prompt = single_prompt(text, texts, self.family)
        _, pooled = self.clip_l.encode(prompt, None if self.cpu_only else manager, embeddings=embeddings)
        enc = placed_encoder(self.llama, manager, self.cpu_only)
        dev = next(enc.parameters()).device
        ids = self.llama_ids(prompt)
        with torch.no_grad():
            out = enc(input_ids=ids.to(dev), attention_mask=torch.ones_like(ids).to(dev), output_hidden_states=True)
        start, end = user_span(ids[0].tolist(), self.tokenizer)
        layer = _HIDDEN_LAYER if self.layer is None else self.layer
        return out.hidden_states[layer][:, start:end].float().cpu(), pooled
