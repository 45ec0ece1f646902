"""Choosing the next token from logits: repetition penalty, temperature, top-k, top-p.

Everything runs on float32 CPU copies of the last logits with a CPU ``torch.Generator``,
so a seed gives the same tokens whichever device the model runs on. Pure torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from nodeloom.errors import ValidationError

__all__ = ["SamplingSettings", "choose_token", "penalize_repetition"]


@dataclass(frozen=True)
class SamplingSettings:
    """How to pick tokens.

    Attributes:
        temperature: 0 means greedy (argmax); higher flattens the distribution.
        top_k: keep the k most likely tokens (0 = all).
        top_p: keep the smallest set whose probability reaches p (1.0 = all).
        repetition_penalty: > 1 discourages tokens already in the sequence (1.0 = off).
    """

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValidationError(f"`temperature` must be ≥ 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValidationError(f"`top_k` must be ≥ 0, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValidationError(f"`top_p` must be in (0, 1], got {self.top_p}")
        if self.repetition_penalty <= 0:
            raise ValidationError(f"`repetition_penalty` must be > 0, got {self.repetition_penalty}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def penalize_repetition(logits: torch.Tensor, history: Sequence[int], penalty: float) -> torch.Tensor:
    """Scale down the logits of tokens seen before (divide positive, multiply negative).

    Args:
        logits: ``[vocab]`` float logits (not modified).
        history: token ids already in the sequence.
        penalty: the factor; 1.0 returns ``logits`` unchanged.

    Returns:
        The penalized logits.
    """
    if penalty == 1.0 or not history:
        return logits
    ids = torch.tensor(sorted(set(history)), dtype=torch.long)
    ids = ids[ids < logits.shape[-1]]
    out = logits.clone()
    seen = out[ids]
    out[ids] = torch.where(seen > 0, seen / penalty, seen * penalty)
    return out


def _filter_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k).values[-1]
    return logits.masked_fill(logits < kth, float("-inf"))


def _filter_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True)
    cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
    # drop a token when the tokens before it already reach p (the top token always stays)
    drop_sorted = (cumulative - torch.softmax(sorted_logits, dim=-1)) >= p
    drop = torch.zeros_like(drop_sorted).scatter(0, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def choose_token(
    logits: torch.Tensor,
    history: Sequence[int],
    settings: SamplingSettings,
    generator: torch.Generator,
) -> int:
    """Pick the next token id.

    Args:
        logits: ``[vocab]`` logits of the last position (any device/dtype).
        history: the ids so far (prompt and generated), for the repetition penalty.
        settings: the sampling settings.
        generator: a CPU generator (seeded by the caller) used when sampling.

    Returns:
        The chosen token id.
    """
    scores = penalize_repetition(logits.detach().float().cpu(), history, settings.repetition_penalty)
    if settings.greedy:
        return int(torch.argmax(scores).item())
    scores = scores / settings.temperature
    scores = _filter_top_p(_filter_top_k(scores, settings.top_k), settings.top_p)
    probs = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator).item())
