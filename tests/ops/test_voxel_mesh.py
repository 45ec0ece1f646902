"""Voxel grids to meshes: the basic cube faces and the surface net are closed, consistently wound
surfaces of the right size, in [-1, 1] with (x, y, z) = (w, h, d)."""

from collections import Counter

import pytest
import torch

from nodeloom.ops.voxel_mesh import voxel_cubes, voxel_surface_net


def _signed_volume(v: torch.Tensor, f: torch.Tensor) -> float:
    a, b, c = v[f[:, 0]].double(), v[f[:, 1]].double(), v[f[:, 2]].double()
    return float((a * torch.linalg.cross(b, c)).sum() / 6)


def _closed(v: torch.Tensor, f: torch.Tensor) -> bool:
    """Every undirected edge (by position) is shared by exactly two triangles, in opposite directions."""
    key = [tuple(round(x, 5) for x in p) for p in v.tolist()]
    directed = Counter((key[a], key[b]) for t in f.tolist() for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0])))
    return all(directed[(b, a)] == n for (a, b), n in directed.items())


def _ball(size: int = 10, radius: float = 3.5) -> torch.Tensor:
    axis = torch.arange(size).float() - (size - 1) / 2
    d, h, w = torch.meshgrid(axis, axis, axis, indexing="ij")
    return (radius - (d * d + h * h + w * w).sqrt()).clamp(-1, 1)  # a signed distance, inside > 0


def test_one_cell_is_a_cube():
    grid = torch.zeros(4, 4, 4)
    grid[1, 2, 3] = 1.0
    v, f = voxel_cubes(grid, 0.5)
    assert v.shape == (24, 3) and f.shape == (12, 3)
    assert _closed(v, f)
    # cell (d=1, h=2, w=3) spans [1, 2] × [2, 3] × [3, 4] → centred on 2 and halved, x is w
    assert torch.allclose(v.min(0).values, torch.tensor([0.5, 0.0, -0.5]))
    assert torch.allclose(v.max(0).values, torch.tensor([1.0, 0.5, 0.0]))
    assert abs(_signed_volume(v, f)) == pytest.approx(1 / 8)


def test_an_empty_grid():
    v, f = voxel_cubes(torch.zeros(3, 3, 3), 0.5)
    assert v.shape == (1, 3) and f.shape == (1, 3)
    v, f = voxel_surface_net(torch.zeros(3, 3, 3), 0.5)
    assert v.shape == (0, 3) and f.shape == (0, 3)


def test_a_ball_as_cubes_and_as_a_surface_net():
    grid = _ball()
    cubes = voxel_cubes(grid, 0.0)
    net = voxel_surface_net(grid, 0.0)
    assert _closed(*cubes) and _closed(*net)
    cells = int((grid > 0).sum())
    scale = (2 / 10) ** 3
    assert abs(_signed_volume(*cubes)) == pytest.approx(cells * scale)
    # the net follows the zero level of the distance: close to the true ball
    net_volume, cube_volume = _signed_volume(*net), _signed_volume(*cubes)
    assert net_volume * cube_volume > 0  # wound the same way round
    ball = 4 / 3 * 3.141592653589793 * 3.5 ** 3 * scale
    assert abs(net_volume) == pytest.approx(ball, rel=0.15)
    assert net[0].abs().max() <= 1.0


def test_the_threshold_decides_what_is_inside():
    grid = _ball()
    small, large = voxel_cubes(grid, 0.9), voxel_cubes(grid, -0.9)
    assert abs(_signed_volume(*small)) < abs(_signed_volume(*large))
    with pytest.raises(ValueError, match=r"shaped \[D, H, W\]"):
        voxel_cubes(torch.zeros(2, 3), 0.5)
