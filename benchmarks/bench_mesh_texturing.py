"""The mesh pack's texturing work on the CPU: UV unwrapping (xatlas), UV-space rasterising, normal
and occlusion bakes, voxel texture bakes, and splat meshing, on icospheres; the bakes' grouped ray casting against
testing every triangle (the anchor) on the same rays, same run. No ComfyUI anchor: its nodes run
on the GPU. The figures in docs/packs/mesh.md come from this script.

    PYTHONPATH=src python benchmarks/bench_mesh_texturing.py [--repeat 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time  # noqa: E402

from nodeloom.ops.mesh_bake import _cast_brute, bake_ambient_occlusion, bake_normal_map, cast_rays  # noqa: E402
from nodeloom.ops.mesh import Mesh  # noqa: E402
from nodeloom.ops.mesh_uv import rasterize_uv, unwrap_item  # noqa: E402
from nodeloom.ops.mesh_voxel_bake import bake_voxel_textures  # noqa: E402
from nodeloom.ops.splat import SH_C0, Splat  # noqa: E402
from nodeloom.ops.splat_mesh import splat_to_mesh  # noqa: E402


def _sphere(level: int) -> dict[str, torch.Tensor]:
    import trimesh

    tm = trimesh.creation.icosphere(level)
    return {"vertices": torch.tensor(tm.vertices, dtype=torch.float32), "faces": torch.tensor(tm.faces)}


def _ball(n: int) -> Splat:
    gen = torch.Generator().manual_seed(0)
    pos = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=-1) * 0.45 * torch.rand(n, 1, generator=gen)
    return Splat(pos[None], torch.full((1, n, 3), 0.04), torch.tensor([1.0, 0, 0, 0]).expand(1, n, 4),
                 torch.full((1, n), 0.8), torch.full((1, n, 1, 3), 0.2 / SH_C0))


class _Shell:
    """A sparse voxel field: the voxels of a 64³ grid within 3 voxels of a sphere of radius 0.4,
    with six random channels (TRELLIS.2's layout)."""

    def __init__(self, res: int = 64) -> None:
        axis = torch.arange(res)
        index = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
        centres = (index + 0.5) / res - 0.5
        keep = ((centres.norm(dim=-1) - 0.4).abs() < 3 / res)
        self.coords, self.resolution = index[keep], res
        self.feats = torch.rand(int(keep.sum()), 6, generator=torch.Generator().manual_seed(0))


def _voxel_bakes(rep: dict) -> None:
    low = unwrap_item({k: v * 0.4 if k == "vertices" else v for k, v in _sphere(4).items()}, "pec", 1024, 1)
    mesh = Mesh(low["vertices"][None], low["faces"][None], uvs=low["uvs"][None])
    dense = _sphere(5)
    reference = Mesh(dense["vertices"][None] * 0.4, dense["faces"][None])
    field = _Shell()
    for size in (512, 1024, 2048):
        seconds = best_time(lambda: bake_voxel_textures(mesh, field, size), **rep)
        print(f"voxel bake {size}² of {low['faces'].shape[0]} faces, {field.coords.shape[0]} voxels: {seconds:7.2f} s")
    for size in (512, 1024):
        seconds = best_time(lambda: bake_voxel_textures(mesh, field, size, reference), **rep)
        print(f"voxel bake {size}², 20,480-face reference mesh: {seconds:7.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    rep = {"repeat": args.repeat, "warmup": 0}
    for level in (4, 5):
        item = _sphere(level)
        seconds = best_time(lambda: unwrap_item(item, "pec", 2048, 1), **rep)
        print(f"unwrap {item['faces'].shape[0]:6d} faces (xatlas, 2048 plan): {seconds:7.2f} s")
    low = unwrap_item(_sphere(4), "pec", 2048, 1)
    seconds = best_time(lambda: rasterize_uv(low["uvs"].double().numpy(), low["faces"].numpy(), 2048), **rep)
    print(f"rasterise 2048² map of {low['faces'].shape[0]} faces: {seconds:7.2f} s")
    low, high = unwrap_item(_sphere(2), "pec", 256, 1), _sphere(4)
    seconds = best_time(lambda: bake_normal_map(low, high, 256), **rep)
    print(f"normal map 256², 320-face low-poly, 5,120-face high-poly: {seconds:7.2f} s")
    seconds = best_time(lambda: bake_ambient_occlusion(low, high, 128, samples=16), **rep)
    print(f"occlusion 128², 16 samples, same pair: {seconds:7.2f} s")
    tri = high["vertices"].double()[high["faces"]]
    gen = torch.Generator().manual_seed(0)
    points = torch.nn.functional.normalize(torch.randn(20000, 3, generator=gen, dtype=torch.float64), dim=-1)
    origins, directions = points * 1.05, -points
    ours = best_time(lambda: cast_rays(origins, directions, tri, 0.2), **rep)
    anchor = best_time(lambda: _cast_brute(origins, directions, tri, 0.2), **rep)
    print(f"20,000 short rays × 5,120 triangles: grouped {ours:6.2f} s | anchor (every triangle) {anchor:6.2f} s")
    splat = _ball(2000)
    seconds = best_time(lambda: splat_to_mesh(splat, resolution=64, min_component=50), **rep)
    print(f"splat to mesh, 2,000 gaussians, 64-cell grid: {seconds:7.2f} s")
    _voxel_bakes(rep)


if __name__ == "__main__":
    main()
