"""CIEDE2000 on 1 MP: nodeloom.ops.color (exact float64 and fast float32) vs skimage, same run.

Prints one row per implementation: best-of-5 time, speed-up over skimage, the largest
difference from skimage on the 1 MP pairs, and the largest error on the 34 Sharma (2005)
pairs (both argument orders). Goal: ≥ 3× faster at ≤ 1e-4 error on Sharma.

    PYTHONPATH=src python benchmarks/bench_ciede2000.py [--size 1000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time  # noqa: E402

from nodeloom.ops.color import delta_e_2000, rgb_to_lab  # noqa: E402

SHARMA = Path(__file__).resolve().parents[1] / "tests" / "data" / "ciede2000_sharma2005.tsv"


def _sharma() -> np.ndarray:
    rows = [line.split("\t") for line in SHARMA.read_text(encoding="utf-8").splitlines()]
    return np.array([[float(v) for v in r] for r in rows if r[0] and not r[0].startswith(("#", "L1"))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1000, help="image side; size² pixels")
    args = parser.parse_args()
    from skimage.color import deltaE_ciede2000

    rng = np.random.default_rng(0)
    rgb = rng.random((args.size, args.size, 3))
    lab1 = np.asarray(rgb_to_lab(rgb))
    lab2 = lab1 + rng.normal(0.0, 4.0, lab1.shape)
    sharma = _sharma()
    ref = deltaE_ciede2000(lab1, lab2)
    t_sk = best_time(lambda: deltaE_ciede2000(lab1, lab2))
    sk_sharma = max(
        np.abs(deltaE_ciede2000(sharma[:, :3], sharma[:, 3:6]) - sharma[:, 6]).max(),
        np.abs(deltaE_ciede2000(sharma[:, 3:6], sharma[:, :3]) - sharma[:, 6]).max(),
    )
    print(f"CIEDE2000, {args.size * args.size / 1e6:.2f} MP, torch threads={torch.get_num_threads()}")
    print(f"{'implementation':34} {'time ms':>9} {'speed-up':>9} {'max |Δ| vs skimage':>19} {'Sharma max err':>15}")
    print(f"{'skimage.color.deltaE_ciede2000':34} {t_sk * 1e3:9.1f} {1.0:8.2f}x {0.0:19.2e} {sk_sharma:15.2e}")
    for precision in ("exact", "fast"):
        t = best_time(lambda p=precision: delta_e_2000(lab1, lab2, precision=p))
        diff = np.abs(delta_e_2000(lab1, lab2, precision=precision) - ref).max()
        err = max(
            np.abs(delta_e_2000(sharma[:, :3], sharma[:, 3:6], precision=precision) - sharma[:, 6]).max(),
            np.abs(delta_e_2000(sharma[:, 3:6], sharma[:, :3], precision=precision) - sharma[:, 6]).max(),
        )
        name = f"nodeloom delta_e_2000 ({precision})"
        print(f"{name:34} {t * 1e3:9.1f} {t_sk / t:8.2f}x {diff:19.2e} {err:15.2e}")
    if torch.cuda.is_available():
        a, b = torch.from_numpy(lab1).float().cuda(), torch.from_numpy(lab2).float().cuda()

        def gpu() -> None:
            delta_e_2000(a, b)
            torch.cuda.synchronize()

        t = best_time(gpu)
        print(f"{'nodeloom delta_e_2000 (fast, cuda)':34} {t * 1e3:9.1f} {t_sk / t:8.2f}x")


if __name__ == "__main__":
    main()
