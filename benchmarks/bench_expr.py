"""ImageExpression's evaluator vs the same hand-written numpy, and vs memory-copy bandwidth.

Two expressions (a compute-bound one with ``** 0.9`` and a memory-bound blend) on float32
[1, H, W, 3] images and a [1, H, W, 1] mask. Rows: a plain ``np.copyto`` of one image (this
machine's copy bandwidth, same run), then per expression the hand-written numpy and the
compiled expression run on torch CPU tensors. GB/s = bytes of inputs read + output written
per second. Goal: the evaluator ≤ 1.5× hand-written numpy.

    PYTHONPATH=src python benchmarks/bench_expr.py [--size 2048]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time  # noqa: E402

from nodeloom.ops.expr import compile_expression  # noqa: E402

#: (expression, the same computation in hand-written numpy)
CASES = [
    ("where(mask > 0.5, a * 1.2, b) ** 0.9", lambda a, b, m: np.where(m > 0.5, a * 1.2, b) ** 0.9),
    ("a * mask + b * (1 - mask)", lambda a, b, m: a * m + b * (1 - m)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="image side")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    shape = (1, args.size, args.size, 3)
    a = rng.random(shape, dtype=np.float32)
    b = rng.random(shape, dtype=np.float32)
    m = rng.random(shape[:3] + (1,), dtype=np.float32)
    env = {"a": torch.from_numpy(a), "b": torch.from_numpy(b), "mask": torch.from_numpy(m)}
    dst = np.empty_like(a)
    t_copy = best_time(lambda: np.copyto(dst, a))
    moved = a.nbytes * 3 + m.nbytes  # read a, b, mask; write the result
    print(f"expressions on float32 {shape} images and a {shape[:3] + (1,)} mask")
    print(f"{'implementation':44} {'time ms':>9} {'vs numpy':>9} {'GB/s':>7}")
    print(f"{'np.copyto one image (copy bandwidth)':44} {t_copy * 1e3:9.2f} {'':9} {2 * a.nbytes / t_copy / 1e9:7.2f}")
    for source, hand in CASES:
        compiled = compile_expression(source, env)
        np.testing.assert_allclose(compiled.run(env).numpy(), hand(a, b, m), rtol=1e-5, atol=1e-6)
        t_hand = best_time(lambda h=hand: h(a, b, m))
        t_ours = best_time(lambda c=compiled: c.run(env))
        t_parse = best_time(lambda s=source: compile_expression(s, env), repeat=20)
        print(f"  `{source}`")
        print(f"{'    hand-written numpy':44} {t_hand * 1e3:9.2f} {1.0:8.2f}x {moved / t_hand / 1e9:7.2f}")
        print(f"{'    nodeloom expr (run)':44} {t_ours * 1e3:9.2f} {t_ours / t_hand:8.2f}x {moved / t_ours / 1e9:7.2f}")
        print(f"{'    nodeloom expr (parse + whitelist check)':44} {t_parse * 1e3:9.3f}")


if __name__ == "__main__":
    main()
