"""The token decoding loop over a causal LM's forward, with a chosen KV cache.

One prefill forward over the prompt, then one forward per new token that feeds only that
token and the cache (or, in mode ``none``, the whole sequence again). Owning the loop is
what lets callers stream each token, stop on strings, interrupt between tokens and time
every step. Must not import the engine.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from nodeloom.errors import ValidationError
from nodeloom.text.kv_cache import CacheSpec, make_cache
from nodeloom.text.sampling import SamplingSettings, choose_token

__all__ = ["DecodeLoop"]


def _cache_kwarg(model: Any) -> str:
    """transformers 5 names the forward's cache argument ``cache``; 4.x ``past_key_values``."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


class DecodeLoop:
    """Iterate over the token ids a model generates after ``input_ids``.

    Args:
        model: a transformers causal LM in eval mode.
        input_ids: ``[1, P]`` prompt ids (P ≥ 1).
        max_new_tokens: the most tokens to produce.
        sampling: how to choose tokens.
        seed: seeds the sampling generator (same seed, same tokens).
        cache: the KV cache mode.
        eos_ids: ids that end generation (the eos token itself is yielded, then the loop ends).

    Attributes:
        cache: the cache object after (or during) the loop; None in mode ``none``.
        step_seconds: wall time of each forward + choice, prefill first.

    Raises:
        ValidationError: empty prompt, bad ``max_new_tokens``, or a sequence longer than the
            model accepts.
    """

    def __init__(
        self,
        model: Any,
        input_ids: torch.Tensor,
        *,
        max_new_tokens: int,
        sampling: SamplingSettings | None = None,
        seed: int = 0,
        cache: CacheSpec | None = None,
        eos_ids: Sequence[int] = (),
    ) -> None:
        if input_ids.dim() != 2 or input_ids.shape[0] != 1 or input_ids.shape[1] < 1:
            raise ValidationError(f"the prompt must encode to ≥ 1 token in a [1, P] tensor, got shape {tuple(input_ids.shape)}")
        if max_new_tokens < 1:
            raise ValidationError(f"`max_new_tokens` must be ≥ 1, got {max_new_tokens}")
        limit = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
        total = input_ids.shape[1] + max_new_tokens
        if limit and total > limit:
            raise ValidationError(
                f"prompt ({input_ids.shape[1]} tokens) + `max_new_tokens` ({max_new_tokens}) = {total} exceeds "
                f"the model's {limit} positions"
            )
        self.model = model
        self.input_ids = input_ids
        self.max_new_tokens = max_new_tokens
        self.sampling = sampling or SamplingSettings()
        self.seed = seed
        self.spec = cache or CacheSpec()
        self.eos_ids = frozenset(int(i) for i in eos_ids)
        self.cache: Any = None
        self.step_seconds: list[float] = []
        self._kwarg = _cache_kwarg(model)

    def _forward(self, ids: torch.Tensor, start: int) -> torch.Tensor:
        positions = torch.arange(start, start + ids.shape[1], device=ids.device).unsqueeze(0)
        kwargs: dict[str, Any] = {"input_ids": ids, "position_ids": positions, "logits_to_keep": 1}
        if self.cache is None:
            kwargs["use_cache"] = False
        else:
            kwargs[self._kwarg] = self.cache
            kwargs["use_cache"] = True
        return self.model(**kwargs).logits[0, -1]

    def __iter__(self) -> Iterator[int]:
        device = next(self.model.parameters()).device
        sequence = self.input_ids.to(device)
        prompt_len = sequence.shape[1]
        self.cache = make_cache(self.model, self.spec, prompt_len + self.max_new_tokens)
        history = sequence[0].tolist()
        generator = torch.Generator().manual_seed(int(self.seed) & 0xFFFF_FFFF_FFFF_FFFF)
        feed, start = sequence, 0
        self.step_seconds = []
        for _ in range(self.max_new_tokens):
            t0 = time.perf_counter()
            with torch.inference_mode():
                logits = self._forward(feed, start)
            token = choose_token(logits, history, self.sampling, generator)
            self.step_seconds.append(time.perf_counter() - t0)
            yield token
            if token in self.eos_ids:
                return
            history.append(token)
            new = torch.tensor([[token]], dtype=sequence.dtype, device=device)
            sequence = torch.cat([sequence, new], dim=1)
            if self.cache is None:
                feed, start = sequence, 0
            else:
                feed, start = new, sequence.shape[1] - 1
