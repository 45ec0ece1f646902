"""Prompt weighting syntax and 77-token chunking for CLIP text encoders.

Syntax (ComfyUI's, plus A1111's brackets): ``(words:1.3)`` sets a weight, ``(words)`` multiplies
the surrounding weight by 1.1, ``[words]`` divides it by 1.1, nesting composes, ``\\(`` and
``\\)`` are literal brackets, ``embedding:name`` inserts a textual-inversion embedding's
vectors. Long prompts are cut into chunks of 75 tokens (never splitting a word when it fits in
one chunk), each wrapped in start/end tokens and padded to 77.
:func:`apply_weights` is ComfyUI's rule: a token's embedding moves away from the empty prompt's
embedding at the same position by its weight. Pure Python + torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Union

import torch

__all__ = ["CHUNK", "EMBEDDING_PREFIX", "Token", "apply_weights", "parse_weights", "tokenize_weighted"]

CHUNK = 75
EMBEDDING_PREFIX = "embedding:"
#: a token id, or an embedding vector ``[dim]`` standing in for one token
Token = Union[int, torch.Tensor]
_TRAILING = ",.;:!?"
_EMPHASIS = 1.1
_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)\s*$")


def _matching(text: str, start: int, open_ch: str, close_ch: str) -> int:
    depth = 0
    i = start
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == open_ch:
            depth += 1
        elif ch == close_ch:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def parse_weights(text: str, weight: float = 1.0) -> list[tuple[str, float]]:
    """Split a prompt into ``(text, weight)`` segments.

    Args:
        text: the prompt.
        weight: the weight of the surrounding context.

    Returns:
        Segments in order, brackets and weights removed, escapes resolved.
    """
    out: list[tuple[str, float]] = []
    buf: list[str] = []

    def flush() -> None:
        if buf:
            out.append(("".join(buf), weight))
            buf.clear()

    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            buf.append(text[i + 1])
            i += 2
            continue
        if ch in "([":
            close = _matching(text, i, ch, ")" if ch == "(" else "]")
            if close > 0:
                flush()
                inner = text[i + 1 : close]
                if ch == "[":
                    out += parse_weights(inner, weight / _EMPHASIS)
                else:
                    head, colon, tail = inner.rpartition(":")
                    if colon and _NUMBER.match(tail):
                        out += parse_weights(head, float(tail))
                    else:
                        out += parse_weights(inner, weight * _EMPHASIS)
                i = close + 1
                continue
        buf.append(ch)
        i += 1
    flush()
    return [(t, w) for t, w in out if t]


def _word_tokens(tokenizer: Any, word: str, embedding: Callable[[str], torch.Tensor] | None) -> list[Token]:
    if embedding is not None and word.startswith(EMBEDDING_PREFIX):
        name = word[len(EMBEDDING_PREFIX):]
        stripped = name.rstrip(_TRAILING)
        vectors = embedding(stripped)
        rest = name[len(stripped):]
        tail = tokenizer(rest, add_special_tokens=False).input_ids if rest else []
        return list(vectors.unbind(0)) + list(tail)
    return list(tokenizer(word, add_special_tokens=False).input_ids)


def tokenize_weighted(tokenizer: Any, text: str, *, pad_id: int, bos_id: int, eos_id: int,
                      embedding: Callable[[str], torch.Tensor] | None = None) -> list[list[tuple[Token, float]]]:
    """Tokenize a weighted prompt into 77-token chunks of ``(token, weight)``.

    Args:
        tokenizer: a CLIP tokenizer (``tokenizer(text, add_special_tokens=False).input_ids``).
        text: the prompt.
        pad_id / bos_id / eos_id: special token ids (SD 1.x pads with the end token, OpenCLIP-G with 0).
        embedding: resolves ``embedding:name`` to vectors ``[n, dim]`` (None: the words stay text).

    Returns:
        At least one chunk; each holds exactly ``CHUNK + 2`` pairs. A token is an id, or a vector
        from an embedding.
    """
    words: list[list[tuple[Token, float]]] = []
    for segment, weight in parse_weights(text):
        for word in segment.split():
            ids = _word_tokens(tokenizer, word, embedding)
            if ids:
                words.append([(t, weight) for t in ids])
    chunks: list[list[tuple[Token, float]]] = [[]]
    for word in words:
        if len(chunks[-1]) + len(word) > CHUNK and len(word) <= CHUNK and chunks[-1]:
            chunks.append([])
        for tok in word:
            if len(chunks[-1]) == CHUNK:
                chunks.append([])
            chunks[-1].append(tok)
    out = []
    for body in chunks:
        chunk = [(bos_id, 1.0)] + body + [(eos_id, 1.0)]
        chunk += [(pad_id, 1.0)] * (CHUNK + 2 - len(chunk))
        out.append(chunk)
    return out


def apply_weights(z: torch.Tensor, z_empty: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """ComfyUI's weighting: ``z_empty + (z - z_empty) * w`` per token position.

    Args:
        z: embeddings ``[chunks, 77, dim]``.
        z_empty: the empty prompt's embeddings ``[1, 77, dim]``.
        weights: ``[chunks, 77]``.
    """
    w = weights.to(z.dtype).to(z.device)[..., None]
    return z_empty + (z - z_empty) * w
