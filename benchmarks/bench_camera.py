"""Camera rendering speed: frames/s of ``render_path`` vs a plain ``cv2.warpAffine`` per frame.

Both render the same zoom+pan move over a real photo (scikit-image's astronaut, resized)
at 512×512 and 1920×1080, float32 RGB, cubic interpolation, in the same run. Ours adds
the mip-map antialiasing (shown zooming in, where it costs nothing, and zooming out,
where it samples two pyramid levels) and the perspective (homography) path.

Run: ``PYTHONPATH=src python benchmarks/bench_camera.py [--frames N]``
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
from skimage import data

from nodeloom.ops.camera import frame_matrices, path_from_schedules
from nodeloom.ops.camera_render import render_path


def _still(width: int, height: int) -> np.ndarray:
    img = data.astronaut().astype(np.float32) / 255.0
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_CUBIC)


def _anchor(img: np.ndarray, mats: np.ndarray) -> float:
    """One affine warp per frame, frames kept (as a clip is): the least a renderer must do."""
    h, w = img.shape[:2]
    start = time.perf_counter()
    frames = [cv2.warpAffine(img, m[:2], (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101) for m in mats]
    elapsed = time.perf_counter() - start
    assert len(frames) == len(mats)
    return len(mats) / elapsed


def _ours(img: np.ndarray, schedules: dict[str, str], frames: int, antialias: bool = True) -> float:
    path = path_from_schedules(frames, schedules)
    start = time.perf_counter()
    render_path(img, path, antialias=antialias)
    return frames / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    args = parser.parse_args()
    moves = {
        "zoom in + pan": {"zoom": "0:(1.01)", "translation_x": "0:(1.5)"},
        "zoom out + pan": {"zoom": "0:(0.97)", "translation_x": "0:(1.5)"},
        "3D pan + tilt": {"rotation_3d_y": "0:(0.3)", "rotation_3d_x": "0:(0.2)"},
    }
    print(f"{'size':>10} {'move':>16} {'ours fps':>10} {'warpAffine fps':>15} {'ratio':>6}")
    for width, height in ((512, 512), (1920, 1080)):
        img = _still(width, height)
        for name, sched in moves.items():
            mats = frame_matrices(path_from_schedules(args.frames, sched), width, height)
            anchor = _anchor(img, mats)
            ours = _ours(img, sched, args.frames)
            print(f"{width}x{height:<5} {name:>16} {ours:10.1f} {anchor:15.1f} {ours / anchor:6.2f}")


if __name__ == "__main__":
    main()
