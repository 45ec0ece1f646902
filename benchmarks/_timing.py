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


def best_times_interleaved(fns: dict[str, Callable[[], Any]], repeat: int = 5, warmup: int = 1) -> dict[str, float]:
    """The fastest of ``repeat`` runs of each callable, the callables taking turns.

    On a shared machine the load changes during a run; alternating ours and the anchor
    exposes both to the same load instead of timing one in a quiet moment and the other in
    a busy one.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def load_note() -> str:
    """``load 1.23/1.10/0.98 on N CPUs`` (1, 5 and 15 minute averages), for printing beside timings."""
    import os

    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load unknown"
    return f"load {one:.2f}/{five:.2f}/{fifteen:.2f} on {os.cpu_count()} CPUs"
