"""Tiny random causal language models and tokenizers for tests and benchmarks.

Builds GPT-2, Llama and Mistral (sliding-window) shaped models from configs with random
weights, and a byte-level BPE tokenizer trained on a few in-memory sentences, then saves
both as a transformers folder. Nothing is downloaded. Imports torch, transformers and
tokenizers; must not import the engine.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["CHAT_TEMPLATE", "DEFAULT_CORPUS", "KINDS", "build_tiny_lm", "build_tiny_tokenizer"]

KINDS = ("gpt2", "llama", "mistral")

#: a small corpus the tokenizer learns its merges from
DEFAULT_CORPUS = (
    "a photo of a red fox in a snowy forest at dawn, soft light, detailed fur",
    "a castle on a hill under a stormy sky, dramatic clouds, cinematic lighting",
    "portrait of an old sailor with a white beard, oil painting, warm tones",
    "a futuristic city street at night with neon signs and rain reflections",
    "a bowl of fruit on a wooden table, still life, natural window light",
    "an astronaut floating above the earth, highly detailed, sharp focus",
    "negative: blurry, low quality, watermark, text, deformed hands, extra fingers",
    "The quick brown fox jumps over the lazy dog. Hello world! 0123456789",
)

#: a minimal chat template (system / user / assistant turns with explicit markers)
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

_SPECIALS = ("<|endoftext|>", "<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>")


def build_tiny_tokenizer(corpus: Iterable[str] = DEFAULT_CORPUS, vocab_size: int = 400, chat_template: bool = True) -> Any:
    """Train a byte-level BPE tokenizer on ``corpus`` and wrap it for transformers.

    Args:
        corpus: sentences to learn merges from (any text still encodes: the alphabet is all bytes).
        vocab_size: target vocabulary size (≥ 256 + the special tokens).
        chat_template: attach :data:`CHAT_TEMPLATE` so chat formatting can be tested.

    Returns:
        A ``PreTrainedTokenizerFast`` with ``<|endoftext|>`` as BOS/EOS and ``<|pad|>`` as pad.

    Raises:
        ValueError: ``vocab_size`` is too small for the byte alphabet.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    minimum = 256 + len(_SPECIALS)
    if vocab_size < minimum:
        raise ValueError(f"`vocab_size` must be ≥ {minimum}, got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|pad|>",
        additional_special_tokens=list(_SPECIALS[2:]),
    )
    if chat_template:
        wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def _config(kind: str, vocab_size: int, hidden: int, layers: int, heads: int, kv_heads: int, max_positions: int, sliding_window: int | None, eos: int, pad: int) -> Any:
    from transformers import GPT2Config, LlamaConfig, MistralConfig

    common: dict[str, Any] = {"vocab_size": vocab_size, "bos_token_id": eos, "eos_token_id": eos, "pad_token_id": pad}
    if kind == "gpt2":
        return GPT2Config(n_embd=hidden, n_layer=layers, n_head=heads, n_positions=max_positions, **common)
    shape = dict(
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=False,
        **common,
    )
    if kind == "llama":
        return LlamaConfig(**shape)
    return MistralConfig(sliding_window=sliding_window, **shape)


def build_tiny_lm(
    path: str | os.PathLike[str],
    kind: str = "llama",
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int | None = None,
    max_positions: int = 512,
    sliding_window: int | None = 64,
    vocab_size: int = 400,
    seed: int = 0,
    chat_template: bool = True,
) -> Path:
    """Build a random causal LM of the given shape and save it with its tokenizer.

    Args:
        path: folder to write (``config.json``, weights, tokenizer files).
        kind: ``"gpt2"``, ``"llama"`` or ``"mistral"`` (Mistral uses ``sliding_window``).
        hidden_size / num_layers / num_heads: model shape.
        num_kv_heads: key/value heads (grouped-query attention; Llama/Mistral only);
            defaults to ``num_heads // 2`` when that divides, else ``num_heads``.
        max_positions: longest sequence the model accepts.
        sliding_window: Mistral's attention window (ignored by the other kinds).
        vocab_size: tokenizer target size; the model's vocabulary matches the tokenizer.
        seed: torch seed for the random weights.
        chat_template: give the tokenizer a chat template.

    Returns:
        The folder written.

    Raises:
        ValueError: unknown ``kind`` or inconsistent head counts.
    """
    import torch
    from transformers import AutoModelForCausalLM

    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}, got {kind!r}")
    if hidden_size % num_heads:
        raise ValueError(f"`hidden_size` ({hidden_size}) must be divisible by `num_heads` ({num_heads})")
    if num_kv_heads is None:
        num_kv_heads = num_heads // 2 if num_heads % 2 == 0 else num_heads
    if num_heads % num_kv_heads:
        raise ValueError(f"`num_heads` ({num_heads}) must be divisible by `num_kv_heads` ({num_kv_heads})")
    tokenizer = build_tiny_tokenizer(vocab_size=vocab_size, chat_template=chat_template)
    config = _config(
        kind, len(tokenizer), hidden_size, num_layers, num_heads, num_kv_heads, max_positions, sliding_window,
        tokenizer.eos_token_id, tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        # larger-than-default weights give peaked logits, so greedy choices are far from ties
        for param in model.parameters():
            if param.dim() >= 2:
                param.normal_(0.0, 0.2)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
