"""GIF writing speed: one shared palette quantised first (ours) vs Pillow's per-frame palettes.

Both write the same 48-frame zoom over scikit-image's astronaut at 256² and 512², in the
same run. The anchor hands Pillow RGB frames, so it builds a palette for every frame
(the common way to write a GIF with Pillow).

Run: ``PYTHONPATH=src python benchmarks/bench_gif.py``
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from nodeloom.ops.camera import path_from_schedules
from nodeloom.ops.camera_render import render_path
from nodeloom.ops.video_io import to_uint8, write_animated_image


def main() -> None:
    photo = data.astronaut().astype(np.float32) / 255.0
    print(f"{'size':>8} {'ours fps':>9} {'Pillow fps':>11} {'ratio':>6} {'ours KB':>8} {'Pillow KB':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for side in (256, 512):
            still = photo[:: 512 // side, :: 512 // side]
            frames = render_path(np.ascontiguousarray(still), path_from_schedules(48, {"zoom": "0:(1.01)"}))
            ours_path, anchor_path = Path(tmp, "ours.gif"), Path(tmp, "pillow.gif")
            start = time.perf_counter()
            write_animated_image(frames, ours_path, fps=24, kind="gif")
            ours = len(frames) / (time.perf_counter() - start)
            start = time.perf_counter()
            images = [Image.fromarray(f) for f in to_uint8(frames)]
            images[0].save(anchor_path, save_all=True, append_images=images[1:], duration=42, loop=0)
            anchor = len(frames) / (time.perf_counter() - start)
            print(f"{side}x{side:<4} {ours:9.1f} {anchor:11.1f} {ours / anchor:6.2f} "
                  f"{ours_path.stat().st_size / 1024:8.0f} {anchor_path.stat().st_size / 1024:10.0f}")


if __name__ == "__main__":
    main()
