"""Optical flow speed: frames/s of our flow methods vs OpenCV's Farneback, same frames, same run.

Frame pairs are a real photo (scikit-image's astronaut, resized) and the same photo
moved by a subpixel pan, at 512×512 and 1920×1080. Each row also prints the median
endpoint error against the true motion, so speed is read next to accuracy.

Run: ``PYTHONPATH=src python benchmarks/bench_flow.py [--pairs N]``
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
from skimage import data

from nodeloom.ops.flow import compute_flow, to_gray_u8


def _pair(width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    img = cv2.resize(data.astronaut().astype(np.float32) / 255.0, (width, height), interpolation=cv2.INTER_CUBIC)
    shift = np.float32([[1, 0, 2.5], [0, 1, -1.25]])
    moved = cv2.warpAffine(img, shift, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
    return img, moved, np.array([2.5, -1.25], np.float32)


def _median_epe(flow: np.ndarray, truth: np.ndarray) -> float:
    m = flow.shape[0] // 8
    return float(np.median(np.linalg.norm(flow[m:-m, m:-m] - truth, axis=-1)))


def _time(fn, pairs: int) -> tuple[float, np.ndarray]:
    flow = fn()
    start = time.perf_counter()
    for _ in range(pairs):
        flow = fn()
    return pairs / (time.perf_counter() - start), flow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    print(f"{'size':>10} {'method':>11} {'ours fps':>9} {'Farneback fps':>14} {'ratio':>6} {'EPE ours':>9} {'EPE Farneback':>14}")
    for width, height in ((512, 512), (1920, 1080)):
        a, b, truth = _pair(width, height)
        ga, gb = to_gray_u8(a), to_gray_u8(b)
        # the anchor: OpenCV's Farneback called directly with its documented example settings
        anchor_fps, anchor_flow = _time(lambda: cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, 3, 15, 3, 5, 1.2, 0), args.pairs)
        anchor_epe = _median_epe(anchor_flow, truth)
        for method in ("dis_fast", "dis_medium", "dis_fine", "farneback"):
            fps, flow = _time(lambda: compute_flow(a, b, method), args.pairs)
            print(f"{width}x{height:<5} {method:>11} {fps:9.1f} {anchor_fps:14.1f} {fps / anchor_fps:6.2f} "
                  f"{_median_epe(flow, truth):9.3f} {anchor_epe:14.3f}")


if __name__ == "__main__":
    main()
