"""Token choice: greedy, top-k/top-p filtering, repetition penalty, seeding."""

from __future__ import annotations

import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.text.sampling import SamplingSettings, choose_token, penalize_repetition

LOGITS = torch.tensor([1.0, 3.0, 2.0, -1.0, 0.5])


def _draws(settings, seed, n=200):
    gen = torch.Generator().manual_seed(seed)
    return [choose_token(LOGITS, [], settings, gen) for _ in range(n)]


def test_greedy_is_argmax():
    assert choose_token(LOGITS, [], SamplingSettings(), torch.Generator()) == 1


def test_top_k_one_and_tiny_top_p_are_greedy():
    assert set(_draws(SamplingSettings(temperature=1.0, top_k=1), 0)) == {1}
    assert set(_draws(SamplingSettings(temperature=1.0, top_p=0.01), 0)) == {1}


def test_top_k_limits_the_support():
    assert set(_draws(SamplingSettings(temperature=5.0, top_k=3), 1)) == {0, 1, 2}


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.softmax(LOGITS, -1)  # sorted: 1 (.61), 2 (.22), 0 (.08), ...
    p = float(probs[1] + probs[2]) - 1e-3
    assert set(_draws(SamplingSettings(temperature=1.0, top_p=p), 2)) == {1, 2}


def test_same_seed_same_draws():
    settings = SamplingSettings(temperature=1.0)
    assert _draws(settings, 5) == _draws(settings, 5)
    assert _draws(settings, 5) != _draws(settings, 6)


def test_repetition_penalty_scales_seen_tokens():
    out = penalize_repetition(LOGITS, [1, 3, 3], 2.0)
    assert out.tolist() == [1.0, 1.5, 2.0, -2.0, 0.5]
    assert LOGITS.tolist() == [1.0, 3.0, 2.0, -1.0, 0.5]
    assert choose_token(LOGITS, [1], SamplingSettings(repetition_penalty=2.0), torch.Generator()) == 2


def test_settings_validate():
    with pytest.raises(ValidationError, match="`top_p` must be in"):
        SamplingSettings(top_p=0.0)
    with pytest.raises(ValidationError, match="`top_k` must be ≥ 0"):
        SamplingSettings(top_k=-1)
    with pytest.raises(ValidationError, match="`repetition_penalty` must be > 0"):
        SamplingSettings(repetition_penalty=0.0)
