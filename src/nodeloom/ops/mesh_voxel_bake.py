"""Baking a sparse voxel attribute field into a mesh's UV layout: base colour, metallic and
roughness maps, each covered texel sampled at its surface point (optionally moved to the closest
point of a denser reference surface first), every other texel filled from the nearest covered one.

The field is the one ``ops.mesh_paint.voxel_field`` reads (``coords``, ``feats``, ``resolution``;
voxel centres at (index + 0.5) / resolution − 0.5). Its channels are read in TRELLIS.2's PBR
order (as ComfyUI's texture decoder gives them): base colour (sRGB, 0..1) in 0–2, metallic in 3,
roughness in 4 (alpha, 5, is not baked); a field with fewer channels gives black maps for the
missing ones. Sampling is trilinear over the voxels present
(absent neighbours carry no weight), the nearest voxel where none of the eight is present.
numpy, torch and scipy (the ``mesh`` extra); no nodes.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import numpy as np
import torch

from nodeloom.errors import ValidationError, require
from nodeloom.ops.mesh import Mesh, mesh_item
from nodeloom.ops.mesh_paint import voxel_field
from nodeloom.ops.mesh_texture import fit_uvs
from nodeloom.ops.mesh_uv import rasterize_uv

__all__ = ["bake_voxel_textures", "closest_points", "fill_uncovered", "sample_voxels"]

log = logging.getLogger(__name__)

#: reference triangles (those with the nearest centroids) searched for each texel's closest point
_CANDIDATES = 8
#: channels of the three maps in the field: base colour, metallic, roughness
_LAYOUT = ((0, 3), (3, 4), (4, 5))
#: points sampled per vectorised step (keeps the [chunk, C] planes in cache)
_CHUNK = 1 << 16


def sample_voxels(points: np.ndarray, coords: np.ndarray, feats: np.ndarray, resolution: int) -> np.ndarray:
    """The field's channels at ``points`` [K, 3]: trilinear weights over the eight voxel centres
    around each point, renormalised over the voxels present; a point with none of its eight
    neighbours present takes the nearest voxel's values.

    Args:
        points: positions in the grid's [−0.5, 0.5]³ space.
        coords: voxel indices [N, 3] (x, y, z) in 0..resolution − 1, N ≥ 1.
        feats: their channels [N, C].
        resolution: the grid's edge length in voxels.

    Returns:
        [K, C] float64 values.
    """
    stride = resolution + 3  # indices −1 .. resolution + 1 get distinct keys
    present = ((coords[:, 0] + 1) * stride + coords[:, 1] + 1) * stride + coords[:, 2] + 1
    order = np.argsort(present, kind="stable")
    present = present[order]
    table = feats[order]
    out = np.empty((points.shape[0], feats.shape[1]))
    missing = []
    for lo in range(0, points.shape[0], _CHUNK):
        grid = (points[lo:lo + _CHUNK] + 0.5) * resolution - 0.5
        base = np.clip(np.floor(grid), -1, resolution).astype(np.int64)
        frac = np.clip(grid - base, 0.0, 1.0)
        base_key = ((base[:, 0] + 1) * stride + base[:, 1] + 1) * stride + base[:, 2] + 1
        sides = (1.0 - frac, frac)
        total = np.zeros((grid.shape[0], feats.shape[1]))
        weight = np.zeros(grid.shape[0])
        for dx, dy, dz in itertools.product((0, 1), repeat=3):
            wanted = base_key + (dx * stride + dy) * stride + dz
            at = np.minimum(np.searchsorted(present, wanted), present.shape[0] - 1)
            w = sides[dx][:, 0] * sides[dy][:, 1] * sides[dz][:, 2]
            w = np.where(present[at] == wanted, w, 0.0)
            total += w[:, None] * table[at]
            weight += w
        found = weight > 1e-9
        out[lo:lo + _CHUNK] = total / np.where(found, weight, 1.0)[:, None]
        missing.append(np.flatnonzero(~found) + lo)
    far = np.concatenate(missing) if missing else np.zeros(0, dtype=np.int64)
    if far.size:
        centres = (coords + 0.5) / resolution - 0.5
        _, nearest = require("scipy.spatial", "mesh").cKDTree(centres).query(points[far])
        out[far] = feats[nearest]
    return out


def fill_uncovered(image: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """``image`` [H, W, C] with every texel outside ``covered`` [H, W] set to its nearest covered
    texel's value (Euclidean distance; all zeros when nothing is covered)."""
    if covered.all():
        return image
    if not covered.any():
        return np.zeros_like(image)
    ndimage = require("scipy.ndimage", "mesh")
    rows, cols = ndimage.distance_transform_edt(~covered, return_distances=False, return_indices=True)
    return image[rows, cols]


def _closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The closest point to each ``p`` on the triangle (a, b, c) of its row (all [M, 3]): the
    triangle's Voronoi regions — three corners, three edges, the inside — tested in turn."""
    ab, ac = b - a, c - a
    ap, bp, cp = p - a, p - b, p - c
    d1, d2 = (ab * ap).sum(1), (ac * ap).sum(1)
    d3, d4 = (ab * bp).sum(1), (ac * bp).sum(1)
    d5, d6 = (ab * cp).sum(1), (ac * cp).sum(1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        return (num / np.where(np.abs(den) > 1e-30, den, 1.0))[:, None]

    total = va + vb + vc
    inside = a + ab * ratio(vb, total) + ac * ratio(vc, total)
    edge_ab = a + ab * ratio(d1, d1 - d3)
    edge_ac = a + ac * ratio(d2, d2 - d6)
    edge_bc = b + (c - b) * ratio(d4 - d3, (d4 - d3) + (d5 - d6))
    regions = [((d1 <= 0) & (d2 <= 0), a), ((d3 >= 0) & (d4 <= d3), b), ((vc <= 0) & (d1 >= 0) & (d3 <= 0), edge_ab),
               ((d6 >= 0) & (d5 <= d6), c), ((vb <= 0) & (d2 >= 0) & (d6 <= 0), edge_ac),
               ((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), edge_bc)]
    out = inside
    for test, point in reversed(regions):  # the first region that holds wins
        out = np.where(test[:, None], point, out)
    return out


def closest_points(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Each point [K, 3] moved to the closest point of the triangle mesh (vertices [V, 3], faces
    [F, 3], F ≥ 1), searched among the triangles with the ``_CANDIDATES`` nearest centroids (exact
    for meshes of even triangle sizes, which dense reconstructions are)."""
    triangles = vertices[faces]
    k = min(_CANDIDATES, faces.shape[0])
    tree = require("scipy.spatial", "mesh").cKDTree(triangles.mean(1))
    out = np.empty_like(points)
    for lo in range(0, points.shape[0], _CHUNK // 4):
        chunk = points[lo:lo + _CHUNK // 4]
        _, near = tree.query(chunk, k=k, workers=-1)
        near = near.reshape(chunk.shape[0], k)
        tri = triangles[near.reshape(-1)]
        p = np.repeat(chunk, k, axis=0)
        best = _closest_on_triangles(p, tri[:, 0], tri[:, 1], tri[:, 2]).reshape(chunk.shape[0], k, 3)
        pick = ((best - chunk[:, None]) ** 2).sum(-1).argmin(1)
        out[lo:lo + _CHUNK // 4] = best[np.arange(chunk.shape[0]), pick]
    return out


def _texel_points(item: dict[str, torch.Tensor], size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The covered texels' rows, columns and surface points (UVs fitted into [0, 1] first)."""
    verts = item["vertices"].detach().double().cpu().numpy()
    faces = item["faces"].detach().cpu().long().numpy()
    uvs = fit_uvs(item["uvs"].detach().double().cpu(), "mesh").numpy()
    face_index, bary = rasterize_uv(uvs, faces, size)
    rows, cols = np.nonzero(face_index >= 0)
    corner = faces[face_index[rows, cols]]
    w = bary[rows, cols]
    points = verts[corner[:, 0]] * w[:, :1] + verts[corner[:, 1]] * w[:, 1:2] + verts[corner[:, 2]] * w[:, 2:]
    return rows, cols, points


def _bake_item(item: dict[str, torch.Tensor], reference: dict[str, torch.Tensor] | None, coords: np.ndarray,
               feats: np.ndarray, resolution: int, size: int) -> np.ndarray:
    """One item's maps as [size, size, 5] (base colour, metallic, roughness)."""
    rows, cols, points = _texel_points(item, size)
    if reference is not None and reference["faces"].shape[0] and rows.shape[0]:
        points = closest_points(points, reference["vertices"].detach().double().cpu().numpy(),
                                reference["faces"].detach().cpu().long().numpy())
    values = np.zeros((rows.shape[0], 5))
    if rows.shape[0]:
        sampled = sample_voxels(points, coords, feats, resolution)
        for start, stop in _LAYOUT:
            width = min(stop, sampled.shape[1]) - start
            if width > 0:
                values[:, start:start + width] = sampled[:, start:start + width]
    image = np.zeros((size, size, 5))
    covered = np.zeros((size, size), dtype=bool)
    image[rows, cols] = np.clip(values, 0.0, 1.0)
    covered[rows, cols] = True
    return fill_uncovered(image, covered)


def bake_voxel_textures(mesh: Mesh, voxel: Any, size: int,
                        reference: Mesh | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Base colour, metallic and roughness maps ([B, size, size, 3] each, the grey maps with three
    equal channels) of ``voxel``'s field on ``mesh``'s UV layout, one per mesh item.

    With a batch column in the field's coordinates item b reads batch b's voxels, else every item
    reads them all. ``reference`` (one mesh, or one per item) is the dense surface each texel's
    point is projected onto before sampling. An item with no faces or no voxels gets black maps
    (with a warning).

    Raises:
        ValidationError: ``mesh`` has no UVs, ``reference`` holds neither one mesh nor one per
            item, or the field is malformed or has voxels outside its grid.
    """
    if mesh.uvs is None:
        raise ValidationError("`mesh` has no UVs: bake onto a UV-unwrapped mesh (run UnwrapMesh on it first)")
    if reference is not None and reference.batch_size not in (1, mesh.batch_size):
        raise ValidationError(f"`reference_mesh` must hold one mesh or one per `mesh` item ({mesh.batch_size}), "
                              f"got {reference.batch_size}")
    coords, feats, resolution = voxel_field(voxel, all_channels=True)
    spatial = coords[:, -3:]
    if spatial.size and (spatial.min() < 0 or spatial.max() >= resolution):
        raise ValidationError(f"`voxel_colors` coordinates must lie in 0..{resolution - 1} (its `resolution` is "
                              f"{resolution}), got {int(spatial.min())}..{int(spatial.max())}")
    maps = []
    for b in range(mesh.batch_size):
        item = mesh_item(mesh, b)
        chosen = coords[:, 0] == b if coords.shape[1] == 4 else np.ones(coords.shape[0], dtype=bool)
        if item["faces"].shape[0] == 0 or not chosen.any():
            log.warning("BakeTextureFromVoxel: item %d has no %s; its maps are black", b,
                        "faces" if item["faces"].shape[0] == 0 else "voxels")
            maps.append(np.zeros((size, size, 5)))
            continue
        ref = None if reference is None else mesh_item(reference, b if reference.batch_size > 1 else 0)
        maps.append(_bake_item(item, ref, coords[chosen, -3:], feats[chosen], resolution, size))
    stacked = torch.from_numpy(np.stack(maps)).float()
    grey = [stacked[..., c:c + 1].expand(-1, -1, -1, 3).contiguous() for c in (3, 4)]
    return stacked[..., :3].contiguous(), grey[0], grey[1]
