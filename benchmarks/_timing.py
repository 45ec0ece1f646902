"""Timing helper shared by the benchmark scripts: best-of-N wall time of a callable."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best_time(fn: Callable[[], Any], repeat: int = 5, warmup: int = 1) -> float:
    """The fastest of ``repeat`` runs of ``fn`` in seconds, after ``warmup`` untimed runs."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def print_overhead(ours: list[float], anchor: list[float], ours_label: str, anchor_label: str) -> None:
    """Best and median of alternating runs, ours vs the anchor, with the overhead in percent."""
    import statistics

    for label, pick in (("best", min), ("median", statistics.median)):
        o, a = pick(ours), pick(anchor)
        print(f"{label:6s} ours ({ours_label}): {o * 1000:.1f} ms | anchor ({anchor_label}):"
              f" {a * 1000:.1f} ms | overhead {100 * (o - a) / a:+.1f} % (goal <= 5 %)")
