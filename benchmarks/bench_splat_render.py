"""RenderSplat's rasteriser on the CPU: one auto-framed colour frame of a sphere of surfels (the
shape a reconstructed object's splat has) at a few sizes and gaussian counts, with the number of
fragments (pixels under the splats' 3σ boxes) each frame composited. No ComfyUI anchor: its
renderer runs on the GPU. The figures in docs/packs/mesh.md come from this script.

    PYTHONPATH=src python benchmarks/bench_splat_render.py [--repeat 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time  # noqa: E402

from nodeloom.ops.splat import SH_C0  # noqa: E402
from nodeloom.ops.splat_render import _project, auto_camera, camera_view, render_gaussians  # noqa: E402


def _shell(n: int) -> dict[str, torch.Tensor]:
    """``n`` flat gaussians tangent to a unit sphere, sized so they overlap about twice."""
    gen = torch.Generator().manual_seed(0)
    normal = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=-1)
    z = torch.tensor([0.0, 0.0, 1.0]).expand(n, 3)
    axis = torch.cross(z, normal, dim=-1)
    half = torch.acos(normal[:, 2].clamp(-1, 1)) / 2
    axis = torch.nn.functional.normalize(axis, dim=-1)
    rot = torch.cat([torch.cos(half)[:, None], axis * torch.sin(half)[:, None]], 1)
    sigma = math.sqrt(2 * 4 * math.pi / n) / 2
    scales = torch.tensor([sigma, sigma, sigma / 20]).expand(n, 3).clone()
    return {"positions": normal, "scales": scales, "rotations": rot, "opacities": torch.full((n,), 0.8),
            "rgb": (0.5 + SH_C0 * torch.randn(n, 3, generator=gen)).clamp(0, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}")
    for n in (10_000, 100_000, 300_000):
        gauss = _shell(n)
        camera = auto_camera(gauss["positions"])
        for size in (256, 512, 1024):
            p = _project(gauss, camera_view(camera, size, size), size, size, 1.0)
            fragments = int((p["bw"] * p["bh"]).sum())
            seconds = best_time(lambda: render_gaussians(gauss, camera, size, size, sharpen=2.0),  # noqa: B023
                                repeat=args.repeat, warmup=0)
            print(f"{n:>7} gaussians {size:>4}²: {seconds:6.2f} s per frame, {fragments / 1e6:6.1f} M fragment "
                  f"candidates, {fragments / seconds / 1e6:5.1f} M/s")


if __name__ == "__main__":
    main()
