"""Top-k: exact vs a full sort (ties, NaN), streaming vs batch, accuracy helper."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nodeloom.errors import ValidationError
from nodeloom.ops.topk import StreamingTopK, topk, topk_accuracy


def _full_sort(scores: np.ndarray, k: int, largest: bool) -> np.ndarray:
    """Reference: a full stable sort by the documented rule (NaN last, ties by index)."""
    items = list(enumerate(scores.tolist()))

    def key(item):
        i, v = item
        if v != v:
            return (1, 0.0, i)
        return (0, -v if largest else v, i)

    return np.array([i for i, _ in sorted(items, key=key)[:k]], dtype=np.int64)


_scores = st.lists(
    st.one_of(st.sampled_from([0.0, 1.0, -1.0, 2.5, float("nan")]), st.floats(-10, 10, allow_nan=False)),
    min_size=0,
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(_scores, st.integers(0, 70), st.booleans())
def test_property_topk_equals_full_sort_with_ties_and_nan(values, k, largest):
    s = np.array(values, dtype=np.float64)
    idx, vals = topk(s, k, largest=largest)
    expected = _full_sort(s, k, largest)
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_array_equal(vals, s[expected])


@settings(max_examples=100, deadline=None)
@given(_scores, st.integers(0, 20), st.booleans(), st.integers(1, 9))
def test_property_streaming_equals_batch(values, k, largest, batch):
    s = np.array(values, dtype=np.float64)
    top = StreamingTopK(k, largest=largest)
    for start in range(0, len(s), batch):
        top.push(s[start : start + batch], items=[f"id{i}" for i in range(start, min(start + batch, len(s)))])
    idx, vals, items = top.result()
    ref_idx, ref_vals = topk(s, k, largest=largest)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(vals, ref_vals)
    assert items == [f"id{i}" for i in ref_idx]
    assert len(top) == min(k, len(s))


def test_large_input_uses_sampled_threshold_and_stays_exact():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 1000, 600_000).astype(np.float64)  # heavy ties
    s[rng.integers(0, s.size, 500)] = np.nan
    for largest in (True, False):
        idx, _ = topk(s, 50, largest=largest)
        order = np.lexsort((np.arange(s.size), -s if largest else s, np.isnan(s)))[:50]
        np.testing.assert_array_equal(idx, order)
    # adversarial: sorted input and a constant input
    ramp = np.arange(600_000, dtype=np.float32)
    np.testing.assert_array_equal(topk(ramp, 10)[0], np.arange(599_999, 599_989, -1))
    np.testing.assert_array_equal(topk(np.zeros(600_000), 5)[0], np.arange(5))


def test_topk_accepts_torch_and_ints_and_checks_input():
    idx, vals = topk(torch.tensor([3, 1, 3, 2]), 2)
    assert idx.tolist() == [0, 2] and vals.tolist() == [3, 3]
    assert topk([1.0, float("nan")], 5)[0].tolist() == [0, 1]
    assert topk(np.array([3, 250, 7], dtype=np.uint8), 2)[0].tolist() == [1, 2]
    with pytest.raises(ValidationError, match="`k`"):
        topk([1.0], -1)
    with pytest.raises(ValidationError, match="one-dimensional"):
        topk(np.zeros((2, 2)), 1)
    with pytest.raises(ValidationError, match="`items`"):
        StreamingTopK(2).push([1.0, 2.0], items=["a"])


def test_topk_accuracy_matches_brute_force():
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 4, (200, 6)).astype(np.float64)  # many ties
    scores[rng.random(scores.shape) < 0.05] = np.nan
    labels = rng.integers(0, 6, 200)
    for k in (1, 2, 3, 6):
        hits = [labels[i] in _full_sort(scores[i], k, True) for i in range(200)]
        assert topk_accuracy(scores, labels, k) == pytest.approx(np.mean(hits))
    assert topk_accuracy(np.eye(3), np.array([0, 1, 2])) == 1.0
    with pytest.raises(ValidationError, match="`labels`"):
        topk_accuracy(np.eye(3), np.array([0, 1, 3]))
