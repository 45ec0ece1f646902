"""Lumina 2's text encoder: Gemma 2 (2B) from ComfyUI's ``gemma_2_2b_fp16.safetensors``.

:func:`gemma2_config` builds the transformers config from a file's shapes (the release's 256-wide
heads, its attention and final soft-capping, sliding window and query scale); :func:`lumina2_clip`
is the CLIP value: the prompt as written (the templates put the system prompt in front of it
themselves), Gemma's ``<bos>`` first, unpadded, the second-to-last hidden layer, as ComfyUI
encodes it. Imports no node or engine.
"""

from __future__ import annotations

import re
from typing import Any

from nodeloom.errors import require

__all__ = ["gemma2_config", "lumina2_clip"]


def gemma2_config(shapes: dict[str, tuple[int, ...]]) -> Any:
    """A ``Gemma2Config`` from a file's shapes (heads 256 wide, or one head of the q projection's width)."""
    transformers = require("transformers", "diffusion")
    vocab, hidden = shapes["model.embed_tokens.weight"]
    q_out = shapes["model.layers.0.self_attn.q_proj.weight"][0]
    head = 256 if q_out % 256 == 0 else q_out
    layers = len({m.group(1) for k in shapes if (m := re.match(r"model\.layers\.(\d+)\.", k))})
    return transformers.Gemma2Config(
        vocab_size=vocab, hidden_size=hidden, head_dim=head, num_attention_heads=q_out // head,
        num_key_value_heads=shapes["model.layers.0.self_attn.k_proj.weight"][0] // head, num_hidden_layers=layers,
        intermediate_size=shapes["model.layers.0.mlp.gate_proj.weight"][0], query_pre_attn_scalar=head,
        rms_norm_eps=1e-6, rope_theta=10000.0, sliding_window=4096, attn_logit_softcapping=50.0,
        final_logit_softcapping=30.0, max_position_embeddings=8192, tie_word_embeddings=True)


def lumina2_clip(encoder: Any, tokenizer: Any) -> Any:
    """Lumina 2's CLIP value over a loaded Gemma 2 encoder."""
    from nodeloom.diffusion.text_encoders import LlmClip

    return LlmClip(encoder, tokenizer, "lumina2", template="{}", special_tokens=True)
