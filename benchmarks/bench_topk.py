"""Top-k of N = 10⁷ scores, K = 100: nodeloom.ops.topk vs np.argpartition + sort, same run.

Rows: the anchor (argpartition, then argsort of the K winners), ``topk`` (exact, same
order and deterministic ties), and ``StreamingTopK`` fed in batches of 10⁵ (O(K) state).
Goal: ``topk`` ≤ 1.2× the anchor's time.

    PYTHONPATH=src python benchmarks/bench_topk.py [--n 10000000] [--k 100]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time  # noqa: E402

from nodeloom.ops.topk import StreamingTopK, topk  # noqa: E402


def anchor(s: np.ndarray, k: int) -> np.ndarray:
    n = s.shape[0]
    idx = np.argpartition(s, n - k)[n - k :]
    return idx[np.argsort(-s[idx], kind="stable")]


def streaming(s: np.ndarray, k: int, batch: int = 100_000) -> np.ndarray:
    top = StreamingTopK(k)
    for start in range(0, s.shape[0], batch):
        top.push(s[start : start + batch])
    return top.result()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--k", type=int, default=100)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    s = rng.standard_normal(args.n)
    expected = anchor(s, args.k)
    assert np.array_equal(topk(s, args.k)[0], expected), "topk disagrees with the anchor"
    assert np.array_equal(streaming(s, args.k), expected), "streaming disagrees with the anchor"
    t_anchor = best_time(lambda: anchor(s, args.k), repeat=3)
    t_ours = best_time(lambda: topk(s, args.k), repeat=3)
    t_stream = best_time(lambda: streaming(s, args.k), repeat=3)
    print(f"top-k, N={args.n:.0e}, K={args.k}, float64 normal scores (results identical)")
    print(f"{'implementation':36} {'time ms':>9} {'ratio to anchor':>16}")
    print(f"{'np.argpartition + argsort (anchor)':36} {t_anchor * 1e3:9.1f} {1.0:15.2f}x")
    print(f"{'nodeloom topk':36} {t_ours * 1e3:9.1f} {t_ours / t_anchor:15.2f}x")
    print(f"{'nodeloom StreamingTopK (1e5 batches)':36} {t_stream * 1e3:9.1f} {t_stream / t_anchor:15.2f}x")


if __name__ == "__main__":
    main()
