"""Ray casting for bakes: the grouped search finds the same hits as testing every triangle."""

from __future__ import annotations

import pytest
import torch

from nodeloom.ops.mesh_bake import _cast_brute, cast_rays

trimesh = pytest.importorskip("trimesh")


@pytest.mark.parametrize("length", [0.3, 2.5])
def test_grouped_rays_hit_what_brute_force_hits(length):
    sphere = trimesh.creation.icosphere(2)
    triangles = torch.tensor(sphere.vertices[sphere.faces])
    gen = torch.Generator().manual_seed(0)
    origins = torch.randn(2000, 3, generator=gen, dtype=torch.float64) * 0.6
    directions = torch.nn.functional.normalize(torch.randn(2000, 3, generator=gen, dtype=torch.float64), dim=-1)
    grouped = cast_rays(origins, directions, triangles, length)
    brute = _cast_brute(origins, directions, triangles, length)
    assert torch.equal(grouped[1], brute[1]) and 0 < int((brute[1] >= 0).sum()) < 2000
    hit = brute[1] >= 0
    assert torch.allclose(grouped[0][hit], brute[0][hit]) and torch.allclose(grouped[2][hit], brute[2][hit])
    # a hit lies on the sphere's surface (within the facets' sag)
    points = origins[hit] + directions[hit] * brute[0][hit][:, None]
    assert torch.all((points.norm(dim=-1) - 1).abs() < 0.05)
