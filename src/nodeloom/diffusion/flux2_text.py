"""Flux.2's text encoders and prompts: Mistral Small 3 (Flux.2 dev) and Qwen3 (Flux.2 Klein).

Both families read several hidden layers of a language model and lay them side by side per token
(dev: layers 10, 20, 30 of Mistral; Klein: 9, 18, 27 of Qwen3), over the prompt in the model's
chat format padded to 512 tokens with an attention mask, as the release encodes it. Mistral's
system message is the one diffusers ships with its Flux.2 pipeline (imported, not copied).
:func:`llama_config` builds the Mistral/Llama encoder's config from a file's shapes.
Imports no node or engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nodeloom.diffusion.lora import LoraPatch
from nodeloom.diffusion.state_keys import indexed_count as _count
from nodeloom.errors import require

__all__ = ["KLEIN_TEMPLATE", "StackedLlmClip", "flux2_clip", "llama_config", "mistral_template"]

#: one user turn in Qwen3's chat format with thinking switched off (how Klein's prompts are wrapped)
KLEIN_TEMPLATE = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
#: Mistral's vocabulary size (tells Mistral Small 3 apart from Llama 3 in a text-encoder file)
MISTRAL_VOCAB = 131072


def mistral_template() -> str:
    """Flux.2 dev's prompt format: the release's system message, then the prompt as the user turn."""
    from diffusers.pipelines.flux2.system_messages import SYSTEM_MESSAGE

    return "<s>[SYSTEM_PROMPT]" + SYSTEM_MESSAGE.replace("{", "{{").replace("}", "}}") + "[/SYSTEM_PROMPT][INST]{}[/INST]"


def llama_config(shapes: dict[str, tuple[int, ...]], kind: str) -> Any:
    """A ``MistralConfig`` (``mistral3``) or ``LlamaConfig`` (``llama``) from a file's shapes; both
    releases use 128-wide heads (a narrower q projection means one head of its width)."""
    transformers = require("transformers", "diffusion")
    vocab, hidden = shapes["model.embed_tokens.weight"]
    q_out = shapes["model.layers.0.self_attn.q_proj.weight"][0]
    head = 128 if q_out % 128 == 0 else q_out
    common = dict(vocab_size=vocab, hidden_size=hidden, head_dim=head, num_attention_heads=q_out // head,
                  num_key_value_heads=shapes["model.layers.0.self_attn.k_proj.weight"][0] // head,
                  num_hidden_layers=_count(shapes, r"model\.layers\.(\d+)\."), rms_norm_eps=1e-5,
                  intermediate_size=shapes["model.layers.0.mlp.gate_proj.weight"][0], tie_word_embeddings=False)
    if kind == "mistral3":
        return transformers.MistralConfig(rope_theta=1000000000.0, max_position_embeddings=131072,
                                          sliding_window=None, **common)
    return transformers.LlamaConfig(rope_theta=500000.0, max_position_embeddings=131072, **common)


@dataclass(frozen=True)
class StackedLlmClip:
    """The CLIP value of Flux.2: a language model whose chosen hidden layers are stacked per token.

    ``encode`` returns ``[1, length, len(layers)·hidden]`` and no pooled output.
    """

    encoder: Any = field(repr=False)
    tokenizer: Any = field(repr=False)
    family: str
    template: str
    layers: tuple[int, ...]
    length: int = 512
    layer: int | None = None  # CLIPSetLastLayer's value; these families read fixed layers
    loras: tuple[LoraPatch, ...] = ()
    cpu_only: bool = False

    def clone(self, **changes: Any) -> StackedLlmClip:
        return dataclasses.replace(self, **changes)

    @property
    def encoders(self) -> tuple[Any, ...]:
        return (self.encoder,)

    def tokens(self, prompt: str) -> tuple[Any, Any]:
        """``(input_ids, attention_mask)`` of the formatted prompt, padded/cut to :attr:`length`."""
        out = self.tokenizer(self.template.format(prompt), return_tensors="pt", padding="max_length",
                             truncation=True, max_length=self.length, add_special_tokens=False)
        return out.input_ids, out.attention_mask

    def encode(self, text: str, manager: Any = None, embeddings: Callable[[str], Any] | None = None,
               texts: Sequence[str] | None = None) -> tuple[Any, Any]:
        """Encode a prompt: ``(cond [1, length, n·hidden], None)`` on the CPU in float32.

        Raises:
            ValidationError: several prompts given (one encoder only).
        """
        from nodeloom.diffusion.text_encoders import placed_encoder, single_prompt

        torch = require("torch", "diffusion")
        enc = placed_encoder(self.encoder, manager, self.cpu_only)
        dev = next(enc.parameters()).device
        ids, mask = self.tokens(single_prompt(text, texts, self.family))
        with torch.no_grad():
            out = enc(input_ids=ids.to(dev), attention_mask=mask.to(dev), output_hidden_states=True, use_cache=False)
        states = torch.stack([out.hidden_states[k] for k in self.layers], dim=1)  # [1, n, tokens, hidden]
        return states.permute(0, 2, 1, 3).reshape(1, states.shape[2], -1).float().cpu(), None


def flux2_clip(kind: str, encoder: Any, tokenizer: Any) -> StackedLlmClip:
    """Flux.2's CLIP value for an encoder: ``mistral3`` (dev) or ``qwen3`` (Klein)."""
    if kind == "mistral3":
        return StackedLlmClip(encoder, tokenizer, "flux2", mistral_template(), (10, 20, 30))
    return StackedLlmClip(encoder, tokenizer, "flux2", KLEIN_TEMPLATE, (9, 18, 27))
