"""Meshes from voxel grids (ComfyUI's VoxelToMesh algorithms): "basic" gives every occupied cell's
exposed faces as two triangles each; "surface net" puts one vertex per cell the surface passes
through (the mean of its edge crossings) and joins neighbouring cells into quads.

Owns :func:`voxel_cubes` and :func:`voxel_surface_net`, both on one ``[D, H, W]`` grid, returning
vertices scaled into [-1, 1] by the longest side with (x, y, z) = (w, h, d), and faces. torch only.
"""

from __future__ import annotations

import torch

__all__ = ["voxel_cubes", "voxel_surface_net"]

# the six face directions (d, h, w) and each face's corners, counter-clockwise seen from outside
_DIRECTIONS = torch.tensor([[0, 0, 1], [0, 0, -1], [0, 1, 0], [0, -1, 0], [1, 0, 0], [-1, 0, 0]])
_FACE_CORNERS = torch.tensor([
    [[0, 0, 1], [0, 1, 1], [1, 1, 1], [1, 0, 1]],
    [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]],
    [[0, 1, 0], [1, 1, 0], [1, 1, 1], [0, 1, 1]],
    [[0, 0, 0], [0, 0, 1], [1, 0, 1], [1, 0, 0]],
    [[1, 0, 1], [1, 1, 1], [1, 1, 0], [1, 0, 0]],
    [[0, 1, 0], [0, 1, 1], [0, 0, 1], [0, 0, 0]],
])
# the eight corners of a cell and its twelve edges (corner pairs)
_CORNERS = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 1], [1, 1, 1]])
_EDGES = torch.tensor([[0, 1], [0, 2], [0, 4], [1, 3], [1, 5], [2, 3], [2, 6], [3, 7], [4, 5], [4, 6], [5, 7], [6, 7]])


def _normalise(vertices: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Centre on the grid, scale the longest side to [-1, 1], and order axes as (x, y, z) = (w, h, d)."""
    half = max(shape) / 2
    out = vertices.float() - half
    if half > 0:
        out = out / half
    return out.flip(-1)


def _grid(voxels: torch.Tensor) -> torch.Tensor:
    if voxels.ndim != 3:
        raise ValueError(f"a voxel grid must be shaped [D, H, W], got {tuple(voxels.shape)}")
    return voxels.detach().float().cpu()


def voxel_cubes(voxels: torch.Tensor, threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """The exposed faces of the cells above ``threshold`` (each face its own four vertices).

    Returns:
        vertices ``[N, 3]`` float and faces ``[M, 3]`` long; for an empty grid one vertex and one
        degenerate face, as ComfyUI returns.
    """
    grid = _grid(voxels)
    solid = grid > threshold
    padded = torch.nn.functional.pad(solid, (1, 1, 1, 1, 1, 1))
    cells = solid.nonzero()
    vertices, faces, count = [], [], 0
    for direction, corners in zip(_DIRECTIONS, _FACE_CORNERS):
        neighbour = cells + direction + 1
        exposed = cells[~padded[neighbour[:, 0], neighbour[:, 1], neighbour[:, 2]]]
        if exposed.shape[0] == 0:
            continue
        vertices.append((exposed[:, None, :] + corners[None]).reshape(-1, 3))
        quads = torch.arange(count, count + 4 * exposed.shape[0]).reshape(-1, 4)
        faces += [quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]]
        count += 4 * exposed.shape[0]
    if not vertices:
        return torch.zeros(1, 3), torch.zeros(1, 3, dtype=torch.long)
    return _normalise(torch.cat(vertices), tuple(grid.shape)), torch.cat(faces)


def voxel_surface_net(voxels: torch.Tensor, threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """A surface net: one vertex per cell whose eight corners (grid values, zero outside) lie on both
    sides of ``threshold``, at the mean of the linear crossings on its edges; each active cell whose
    neighbours along two axes and their diagonal are active too closes a quad, wound by the side
    its inside corners lie on.

    Returns:
        vertices ``[N, 3]`` float and faces ``[M, 3]`` long (both empty when nothing crosses).
    """
    grid = _grid(voxels)
    depth, height, width = grid.shape
    padded = torch.nn.functional.pad(grid, (1, 1, 1, 1, 1, 1))
    cells = torch.stack(torch.meshgrid(torch.arange(depth), torch.arange(height), torch.arange(width),
                                       indexing="ij"), dim=-1).reshape(-1, 3)
    pos = cells[:, None, :] + _CORNERS[None]
    values = padded[pos[..., 0], pos[..., 1], pos[..., 2]]
    inside = values > threshold
    active = inside.any(1) & (~inside).any(1)
    if not active.any():
        return torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long)
    cells, values, inside = cells[active], values[active], inside[active]
    a, b = _EDGES[:, 0], _EDGES[:, 1]
    va, vb = values[:, a], values[:, b]
    crossing = inside[:, a] != inside[:, b]
    denom = vb - va
    t = torch.where(denom != 0, (threshold - va) / torch.where(denom != 0, denom, 1.0), torch.full_like(va, 0.5))
    points = _CORNERS[a].float()[None] + t[..., None] * (_CORNERS[b] - _CORNERS[a]).float()[None]
    weights = crossing.float()[..., None]
    vertices = (points * weights).sum(1) / weights.sum(1) + cells.float()
    # inside-minus-outside corner centroid: which way the surface faces
    inside_f = inside.float()[..., None]
    gradient = (_CORNERS[None] * inside_f).sum(1) / inside_f.sum(1) - \
        (_CORNERS[None] * (1 - inside_f)).sum(1) / (1 - inside_f).sum(1)
    index = torch.full((depth + 2, height + 2, width + 2), -1, dtype=torch.long)
    index[cells[:, 0], cells[:, 1], cells[:, 2]] = torch.arange(cells.shape[0])
    faces = []
    axes = torch.eye(3, dtype=torch.long)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        ni, nj, nd = cells + axes[i], cells + axes[j], cells + axes[i] + axes[j]
        v1, v2, v3 = (index[p[:, 0], p[:, 1], p[:, 2]] for p in (ni, nj, nd))
        ok = (v1 >= 0) & (v2 >= 0) & (v3 >= 0)
        v0 = torch.arange(cells.shape[0])[ok]
        v1, v2, v3 = v1[ok], v2[ok], v3[ok]
        facing = gradient[ok] @ torch.linalg.cross(axes[i].float(), axes[j].float()) > 0
        first = torch.where(facing[:, None], torch.stack([v0, v1, v3], 1), torch.stack([v0, v3, v1], 1))
        second = torch.where(facing[:, None], torch.stack([v0, v3, v2], 1), torch.stack([v0, v2, v3], 1))
        faces.append(torch.stack([first, second], 1).reshape(-1, 3))
    return _normalise(vertices, tuple(grid.shape)), torch.cat(faces)
