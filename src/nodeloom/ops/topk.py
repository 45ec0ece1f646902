"""Exact top-k selection, streaming top-k in O(K) memory, and top-k accuracy.

Ordering rule (shared by every function here, so results are deterministic): items are
ranked by score (descending for ``largest=True``, ascending otherwise); equal scores rank by
position, the earlier item first; NaN ranks after every number in both directions, and
NaNs among themselves by position. numpy only; no nodes.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any

import numpy as np

from nodeloom.errors import ValidationError

__all__ = ["StreamingTopK", "topk", "topk_accuracy"]

_SAMPLE = 65536


def _as_scores(scores: Any, name: str = "scores") -> np.ndarray:
    arr = np.asarray(scores.detach().cpu().numpy() if hasattr(scores, "detach") else scores)
    if arr.ndim != 1:
        raise ValidationError(f"`{name}` must be one-dimensional, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValidationError(f"`{name}` must hold numbers, got dtype {arr.dtype}")
    return arr


def _check_k(k: int) -> None:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 0:
        raise ValidationError(f"`k` must be an integer ≥ 0, got {k!r}")


def _order(values: np.ndarray, index: np.ndarray, largest: bool) -> np.ndarray:
    """Positions of ``values`` sorted by the module's rule (index breaks ties)."""
    if values.dtype.kind in "ub":  # negating unsigned integers would wrap around
        values = values.astype(np.int64)
    key = -values if largest else values
    if np.issubdtype(values.dtype, np.floating):
        nan = np.isnan(values)
        return np.lexsort((index, np.where(nan, 0, key), nan))
    return np.lexsort((index, key))


def _candidates(s: np.ndarray, k: int, largest: bool) -> np.ndarray:
    """Indices of a superset of the k best non-NaN items (at least k when there are k)."""
    n = s.shape[0]
    if n > 4 * _SAMPLE and k < _SAMPLE // 8:
        # A strided sample estimates a threshold that about 4·k items pass; one comparison
        # pass then keeps those. Exactness does not depend on the estimate: too few
        # survivors fall back to a full partition below.
        sample = s[:: n // _SAMPLE]
        want = min(sample.shape[0] - 1, int(4 * k * sample.shape[0] / n) + 8)
        sample = sample[~np.isnan(sample)] if np.issubdtype(s.dtype, np.floating) else sample
        if sample.shape[0] > want:
            if largest:
                t = np.partition(sample, sample.shape[0] - 1 - want)[sample.shape[0] - 1 - want]
                idx = np.flatnonzero(s >= t)
            else:
                t = np.partition(sample, want)[want]
                idx = np.flatnonzero(s <= t)
            if idx.shape[0] >= k:
                return idx
    valid = np.flatnonzero(~np.isnan(s)) if np.issubdtype(s.dtype, np.floating) else np.arange(n)
    if valid.shape[0] <= k:
        return valid
    vals = s[valid]
    kth = np.partition(vals, vals.shape[0] - k if largest else k - 1)[vals.shape[0] - k if largest else k - 1]
    return valid[vals >= kth] if largest else valid[vals <= kth]


def topk(scores: Any, k: int, largest: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The k best items of a 1-D score array, exactly, in rank order.

    A partial selection (sampled threshold + one filtering pass, or ``np.partition``) keeps
    a small candidate set; only that set is sorted. Ties and NaN follow the module rule.

    Args:
        scores: 1-D numpy array, torch tensor or sequence of numbers.
        k: how many to return (fewer when there are fewer items).
        largest: best = highest score (else lowest).

    Returns:
        ``(indices, values)``: int64 positions and their scores, best first.

    Raises:
        ValidationError: ``scores`` is not 1-D numeric, or ``k`` < 0.
    """
    s = _as_scores(scores)
    _check_k(k)
    k = min(int(k), s.shape[0])
    if k == 0:
        return np.empty(0, dtype=np.int64), s[:0].copy()
    cand = _candidates(s, k, largest)
    if cand.shape[0] < k:  # fewer numbers than k: NaNs fill the tail, earliest first
        nan_idx = np.flatnonzero(np.isnan(s))[: k - cand.shape[0]]
        cand = np.concatenate([cand, nan_idx])
    order = _order(s[cand], cand, largest)[:k]
    idx = cand[order].astype(np.int64)
    return idx, s[idx]


class StreamingTopK:
    """Keep the k best of scores that arrive in batches, in O(k) memory.

    A min-heap holds the current k best under the module's ordering; each batch is first
    filtered against the heap's worst entry with one vectorised comparison, so only real
    contenders touch the heap. The result equals :func:`topk` over the concatenation.

    Args:
        k: how many to keep (≥ 0).
        largest: best = highest score (else lowest).

    Example::

        top = StreamingTopK(100)
        for batch in batches:
            top.push(batch_scores, items=batch_ids)
        indices, scores, items = top.result()
    """

    def __init__(self, k: int, largest: bool = True) -> None:
        _check_k(k)
        self.k = int(k)
        self.largest = largest
        self.seen = 0
        self._heap: list[tuple[tuple[int, float, int], int, Any]] = []

    def _key(self, score: float, index: int) -> tuple[int, float, int]:
        # Larger key = better. NaN sorts below every number; later index loses ties.
        if score != score:
            return (0, 0.0, -index)
        return (1, score if self.largest else -score, -index)

    def push(self, scores: Any, items: Iterable[Any] | None = None) -> None:
        """Offer one batch; positions continue from the previous batches.

        Args:
            scores: 1-D scores of this batch.
            items: optional payloads (ids, paths, tensors...), one per score.

        Raises:
            ValidationError: bad scores, or ``items`` of another length.
        """
        s = _as_scores(scores)
        base = self.seen
        self.seen += s.shape[0]
        payload = list(items) if items is not None else None
        if payload is not None and len(payload) != s.shape[0]:
            raise ValidationError(f"`items` has {len(payload)} entries but `scores` has {s.shape[0]}")
        if self.k == 0 or s.shape[0] == 0:
            return
        cand = np.arange(s.shape[0])
        if len(self._heap) == self.k:
            worst = self._heap[0][0]
            if worst[0] == 1:  # a later item must beat the worst score strictly
                w = worst[1] if self.largest else -worst[1]
                cand = np.flatnonzero(s > w) if self.largest else np.flatnonzero(s < w)
            elif np.issubdtype(s.dtype, np.floating):
                cand = np.flatnonzero(~np.isnan(s))
            else:
                cand = np.arange(s.shape[0])
        if cand.shape[0] > self.k:  # only the batch's own k best can enter
            local, _ = topk(s[cand], self.k, self.largest)
            cand = cand[np.sort(local)]
        for i in cand.tolist():
            entry = (self._key(float(s[i]), base + i), base + i, payload[i] if payload is not None else None)
            if len(self._heap) < self.k:
                heapq.heappush(self._heap, entry)
            elif entry[0] > self._heap[0][0]:
                heapq.heapreplace(self._heap, entry)

    def _score(self, key: tuple[int, float, int]) -> float:
        if key[0] == 0:
            return float("nan")
        return key[1] if self.largest else -key[1]

    def result(self) -> tuple[np.ndarray, np.ndarray, list[Any]]:
        """``(indices, scores, items)`` of the k best so far, best first."""
        best = sorted(self._heap, key=lambda e: e[0], reverse=True)
        idx = np.array([e[1] for e in best], dtype=np.int64)
        scores = np.array([self._score(e[0]) for e in best], dtype=np.float64)
        return idx, scores, [e[2] for e in best]

    def __len__(self) -> int:
        return len(self._heap)


def topk_accuracy(scores: Any, labels: Any, k: int = 1) -> float:
    """Share of rows whose true label is among the k best-scored classes.

    Ties rank the lower class index first and NaN ranks last (the module rule), so a row
    of equal scores counts a hit only when its label is among the first k classes.

    Args:
        scores: ``[N, C]`` class scores (higher = more likely).
        labels: ``[N]`` integer labels in ``0..C-1``.
        k: how many top classes count (1 ≤ k).

    Returns:
        Accuracy in 0..1 (0.0 for N = 0).

    Raises:
        ValidationError: bad shapes, labels out of range, or k < 1.
    """
    s = np.asarray(scores.detach().cpu().numpy() if hasattr(scores, "detach") else scores, dtype=np.float64)
    y = np.asarray(labels.detach().cpu().numpy() if hasattr(labels, "detach") else labels)
    if s.ndim != 2:
        raise ValidationError(f"`scores` must be [N, C], got shape {s.shape}")
    if y.shape != (s.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValidationError(f"`labels` must be {s.shape[0]} integers, got shape {y.shape} dtype {y.dtype}")
    _check_k(k)
    if k < 1:
        raise ValidationError(f"`k` must be ≥ 1, got {k}")
    if s.shape[0] == 0:
        return 0.0
    if y.min() < 0 or y.max() >= s.shape[1]:
        raise ValidationError(f"`labels` must lie in 0..{s.shape[1] - 1}, got {y.min()}..{y.max()}")
    rows = np.arange(s.shape[0])
    true = s[rows, y][:, None]
    nan = np.isnan(s)
    true_nan = np.isnan(true)
    cols = np.arange(s.shape[1])[None, :]
    before_tie = (cols < y[:, None])
    beats = np.where(
        true_nan,
        ~nan | (nan & before_tie),
        ~nan & ((s > true) | ((s == true) & before_tie)),
    )
    rank = beats.sum(axis=1)
    return float(np.mean(rank < k))
