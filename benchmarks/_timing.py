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
