"""HunyuanVideo 1.5's text encoders (DualCLIPLoader type ``hunyuan_video_15``): Qwen2.5-VL 7B
(``qwen_2.5_vl_7b*.safetensors``) and the byT5-small glyph encoder (``byt5_small_glyphxl*.safetensors``).

:class:`HunyuanVideo15Clip` is the CLIP value. A prompt is wrapped in the video description chat
template the model was trained with (:data:`VIDEO_TEMPLATE`; an empty prompt becomes one space),
encoded by Qwen2.5-VL, and the third-from-last hidden layer kept from the user turn on (ComfyUI's
rule, :func:`nodeloom.diffusion.qwen_text.template_start`). Text in quotes (``"..."``, ``“...”``,
``‘...’``) is also spelled out for byT5 as ``Text "...". `` per quote and encoded byte by byte
(ending in ``</s>``); :meth:`HunyuanVideo15Clip.extra_conditioning` returns those states as the
conditioning's ``conditioning_byt5small``, as ComfyUI's encoder does. Imports no node or engine.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeloom.diffusion.lora import LoraPatch
from nodeloom.diffusion.qwen_text import template_start
from nodeloom.diffusion.text_encoders import placed_encoder, single_prompt
from nodeloom.errors import require

__all__ = ["VIDEO_TEMPLATE", "HunyuanVideo15Clip", "byt5_tokenizer", "glyph_text"]

VIDEO_TEMPLATE = (
    "<|im_start|>system\nYou are a helpful assistant. Describe the video by detailing the following aspects:\n"
    "1. The main content and theme of the video.\n"
    "2. The color, shape, size, texture, quantity, text, and spatial relationships of the objects.\n"
    "3. Actions, events, behaviors temporal relationships, physical movement changes of the objects.\n"
    "4. background environment, light, style and atmosphere.\n"
    "5. camera angles, movements, and transitions used in the video.<|im_end|>\n"
    "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n")
_QUOTES = (r"\"(.*?)\"", r"‘(.*?)’", r"“(.*?)”")
_HIDDEN_LAYER = -3


def glyph_text(prompt: str) -> str:
    """What byT5 reads of a prompt: ``Text "<quoted>". `` for each quoted piece (straight double
    quotes first, then Chinese single, then Chinese double), or ``""`` when nothing is quoted."""
    pieces = [m for pattern in _QUOTES for m in re.findall(pattern, prompt)]
    return "".join(f'Text "{p}". ' for p in pieces)


def byt5_tokenizer(folder: Path | None) -> Any:
    """The byT5 tokenizer: a ``models/tokenizers/byt5`` folder when present (the glyph release's
    extra colour/font tokens), else transformers' vocabulary-free ``ByT5Tokenizer``."""
    transformers = require("transformers", "diffusion")
    if folder is not None and (Path(folder) / "tokenizer_config.json").is_file():
        return transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    return transformers.ByT5Tokenizer()


@dataclass(frozen=True)
class HunyuanVideo15Clip:
    """The CLIP value of HunyuanVideo 1.5: Qwen2.5-VL (prompt) and byT5 (quoted text)."""

    encoder: Any = field(repr=False)
    tokenizer: Any = field(repr=False)
    glyph_encoder: Any = field(repr=False)
    glyph_tokenizer: Any = field(repr=False)
    family: str = "hunyuan_video15"
    layer: int | None = None
    loras: tuple[LoraPatch, ...] = ()
    cpu_only: bool = False

    def clone(self, **changes: Any) -> HunyuanVideo15Clip:
        return dataclasses.replace(self, **changes)

    @property
    def encoders(self) -> tuple[Any, ...]:
        return (self.encoder, self.glyph_encoder)

    def encode(self, text: str, manager: Any = None, embeddings: Callable[[str], Any] | None = None,
               texts: Sequence[str] | None = None) -> tuple[Any, Any]:
        """Encode a prompt with Qwen2.5-VL: ``(states [1, n, dim], None)`` on the CPU in float32.

        Raises:
            ValidationError: several prompts given.
        """
        torch = require("torch", "diffusion")
        prompt = single_prompt(text, texts, self.family) or " "
        enc = placed_encoder(self.encoder, manager, self.cpu_only)
        dev = next(enc.parameters()).device
        ids = self.tokenizer(VIDEO_TEMPLATE.format(prompt), return_tensors="pt", add_special_tokens=False).input_ids
        with torch.no_grad():
            out = enc(input_ids=ids.to(dev), attention_mask=torch.ones_like(ids).to(dev), output_hidden_states=True)
        start = template_start(ids[0].tolist(), self.tokenizer.convert_tokens_to_ids("<|im_start|>"),
                               self.tokenizer("user\n", add_special_tokens=False).input_ids)
        layer = _HIDDEN_LAYER if self.layer is None else self.layer
        return out.hidden_states[layer][:, start:].float().cpu(), None

    def glyph_states(self, text: str, manager: Any = None) -> Any:
        """byT5's last hidden states ``[1, m, 1472]`` for the prompt's quoted text, or None without quotes."""
        torch = require("torch", "diffusion")
        glyph = glyph_text(text)
        if not glyph:
            return None
        enc = placed_encoder(self.glyph_encoder, manager, self.cpu_only)
        dev = next(enc.parameters()).device
        ids = self.glyph_tokenizer(glyph, return_tensors="pt", add_special_tokens=True).input_ids
        with torch.no_grad():
            states = enc(input_ids=ids.to(dev), attention_mask=torch.ones_like(ids).to(dev)).last_hidden_state
        return states.float().cpu()

    def extra_conditioning(self, text: str, manager: Any = None) -> dict[str, Any]:
        """The values a CLIPTextEncode conditioning carries besides the states: the glyph tokens."""
        states = self.glyph_states(text, manager)
        return {} if states is None else {"conditioning_byt5small": states}
