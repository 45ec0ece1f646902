"""Wan's text encoder: UMT5-XXL from ComfyUI's ``umt5_xxl_*`` files (CLIPLoader type ``wan``).

:func:`is_umt5` tells a UMT5 file from a T5 one (UMT5 has a relative-position table in every
layer, T5 only in the first); :func:`load_umt5` builds a transformers ``UMT5EncoderModel`` with
its config read from shapes. :class:`Umt5Clip` encodes a prompt as ComfyUI and diffusers' Wan
pipelines do: the tokens (ending in ``</s>``) padded with the pad token to 512, encoded with the
attention mask, and the states past the real tokens set to zero.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nodeloom.diffusion.flow import accelerator_dtype
from nodeloom.diffusion.text_encoders import LlmClip
from nodeloom.errors import ValidationError, require

__all__ = ["Umt5Clip", "is_umt5", "load_umt5"]

_BIAS = "encoder.block.{}.layer.0.SelfAttention.relative_attention_bias.weight"


def is_umt5(shapes: dict[str, tuple[int, ...]]) -> bool:
    """True for a UMT5 encoder file (per-layer relative attention tables)."""
    return _BIAS.format(0) in shapes and _BIAS.format(1) in shapes


def _config(shapes: dict[str, tuple[int, ...]]) -> Any:
    transformers = require("transformers", "diffusion")
    vocab, d_model = shapes["shared.weight"]
    buckets, heads = shapes[_BIAS.format(0)]
    layers = {int(m.group(1)) for k in shapes if (m := re.match(r"encoder\.block\.(\d+)\.", k))}
    return transformers.UMT5Config(
        vocab_size=vocab, d_model=d_model, num_heads=heads, relative_attention_num_buckets=buckets,
        d_kv=shapes["encoder.block.0.layer.0.SelfAttention.q.weight"][0] // heads,
        d_ff=shapes["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"][0], num_layers=max(layers) + 1,
        feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6, is_encoder_decoder=False, use_cache=False,
        tie_word_embeddings=False, pad_token_id=0, eos_token_id=1)


def load_umt5(sd: dict[str, Any], name: str) -> Any:
    """A ``UMT5EncoderModel`` (eval mode, float32) from a UMT5 file's weights.

    Raises:
        ValidationError: the weights do not fit (a name and an example key say which).
    """
    transformers = require("transformers", "diffusion")
    model = transformers.UMT5EncoderModel(_config({k: tuple(v.shape) for k, v in sd.items()}))
    weights = dict(sd)
    weights.setdefault("encoder.embed_tokens.weight", sd["shared.weight"])
    missing, _ = model.load_state_dict(weights, strict=False)
    if missing:
        raise ValidationError(f"`{name}` lacks {len(missing)} weights of a UMT5 encoder, e.g. `{missing[0]}`",
                              type="invalid_model_file", extra_info={"name": name})
    return model.eval()


@dataclass(frozen=True)
class Umt5Clip(LlmClip):
    """The CLIP value of Wan: UMT5-XXL token states, 512 long, zero past the prompt's tokens."""

    family: str = "wan"
    min_length: int = 512

    def encode(self, text: str, manager: Any = None, embeddings: Callable[[str], Any] | None = None,
               texts: Sequence[str] | None = None) -> tuple[Any, Any]:
        """``(states [1, max(512, n), d_model], None)`` on the CPU in float32.

        Raises:
            ValidationError: several prompts given (Wan has one encoder).
        """
        torch = require("torch", "diffusion")
        if texts is not None and len(texts) != 1:
            raise ValidationError(f"{len(texts)} prompts for 1 text encoder (wan)")
        prompt = texts[0] if texts is not None else text
        if self.cpu_only or manager is None:
            enc = self.encoder.to("cpu", torch.float32) if self.cpu_only else self.encoder
        else:
            enc = manager.prepare(self.encoder, dtype=accelerator_dtype(manager))
        ids = list(self.tokenizer(prompt, add_special_tokens=True).input_ids)
        real = len(ids)
        ids += [self.tokenizer.pad_token_id or 0] * max(0, self.min_length - real)
        mask = torch.zeros(1, len(ids), dtype=torch.long)
        mask[:, :real] = 1
        dev = next(enc.parameters()).device
        with torch.no_grad():
            states = enc(input_ids=torch.tensor([ids], device=dev), attention_mask=mask.to(dev)).last_hidden_state
        states = states.float().cpu()
        states[:, real:] = 0.0
        return states, None
