"""Baking a sparse voxel attribute field into a mesh's UV layout: base colour, metallic and
roughness maps, each covered texel sampled at its surface point (optionally moved onto a denser
reference surface first), every other texel filled from the nearest covered one.

The field is the one ``ops.mesh_paint.voxel_field`` reads (``coords``, ``feats``, ``resolution``;
voxel centres at (index + 0.5) / resolution − 0.5). Its channels are read in TRELLIS.2's PBR
order: base colour (sRGB, 0..1) in 0–2, metallic in 3, roughness in 4; a field with fewer
channels gives black maps for the missing ones. Sampling is trilinear over the voxels present
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
from nodeloom.ops.mesh_bake import project_texels, surface_texels
from nodeloom.ops.mesh_paint import voxel_field

__all__ = ["bake_voxel_textures", "fill_uncovered", "sample_voxels"]

log = logging.getLogger(__name__)

#: the band (× the mesh's diagonal) in which a texel looks for its reference-mesh point
_REFERENCE_BAND = 0.05
#: channels of the three maps in the field: base colour, metallic, roughness
_LAYOUT = ((0, 3), (3, 4), (4, 5))


def sample_voxels(points: np.ndarray, coords: np.ndarray, feats: np.ndarray, resolution: int) -> np.ndarray:
    """The field's channels at ``points`` [K, 3]: trilinear weights over the eight voxel centres
    around each point, renormalised over the voxels present; a point with none of its eight
    neighbours present takes the nearest voxel's values.

    Args:
        points: positions in the grid's [−0.5, 0.5]³ space.
        coords: voxel indices [N, 3] (x, y, z), N ≥ 1.
        feats: their channels [N, C].
        resolution: the grid's edge length in voxels.

    Returns:
        [K, C] float64 values.
    """
    stride = resolution + 3  # indices −1 .. resolution + 1 get distinct keys

    def key(index: np.ndarray) -> np.ndarray:
        shifted = index + 1
        return (shifted[:, 0] * stride + shifted[:, 1]) * stride + shifted[:, 2]

    present = key(coords)
    order = np.argsort(present, kind="stable")
    present = present[order]
    grid = (points + 0.5) * resolution - 0.5
    base = np.clip(np.floor(grid), -1, resolution).astype(np.int64)
    frac = np.clip(grid - base, 0.0, 1.0)
    total = np.zeros((points.shape[0], feats.shape[1]))
    weight = np.zeros(points.shape[0])
    for corner in itertools.product((0, 1), repeat=3):
        step = np.array(corner)
        w = np.prod(np.where(step, frac, 1.0 - frac), axis=1)
        wanted = key(base + step)
        at = np.minimum(np.searchsorted(present, wanted), present.shape[0] - 1)
        hit = (present[at] == wanted) & (w > 0)
        total[hit] += w[hit, None] * feats[order[at[hit]]]
        weight[hit] += w[hit]
    out = np.empty_like(total)
    found = weight > 1e-9
    out[found] = total[found] / weight[found, None]
    if not found.all():
        centres = (coords + 0.5) / resolution - 0.5
        _, nearest = require("scipy.spatial", "mesh").cKDTree(centres).query(points[~found])
        out[~found] = feats[nearest]
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


def _bake_item(item: dict[str, torch.Tensor], reference: dict[str, torch.Tensor] | None, coords: np.ndarray,
               feats: np.ndarray, resolution: int, size: int) -> np.ndarray:
    """One item's maps as [size, size, 5] (base colour, metallic, roughness)."""
    texels = surface_texels(item, size, "mesh")
    points = texels.points
    if reference is not None and reference["faces"].shape[0]:
        points, _ = project_texels(texels, reference, _REFERENCE_BAND)
    values = np.zeros((texels.rows.shape[0], 5))
    if texels.rows.shape[0]:
        sampled = sample_voxels(points.numpy(), coords, feats, resolution)
        for start, stop in _LAYOUT:
            width = min(stop, sampled.shape[1]) - start
            if width > 0:
                values[:, start:start + width] = sampled[:, start:start + width]
    image = np.zeros((size, size, 5))
    covered = np.zeros((size, size), dtype=bool)
    image[texels.rows, texels.cols] = np.clip(values, 0.0, 1.0)
    covered[texels.rows, texels.cols] = True
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
            item, or the field is malformed.
    """
    if mesh.uvs is None:
        raise ValidationError("`mesh` has no UVs: bake onto a UV-unwrapped mesh (run UnwrapMesh on it first)")
    if reference is not None and reference.batch_size not in (1, mesh.batch_size):
        raise ValidationError(f"`reference_mesh` must hold one mesh or one per `mesh` item ({mesh.batch_size}), "
                              f"got {reference.batch_size}")
    coords, feats, resolution = voxel_field(voxel, all_channels=True)
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
