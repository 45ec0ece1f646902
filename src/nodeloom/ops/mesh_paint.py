"""Vertex colours from a sparse voxel colour field: each vertex takes the base colour of the
nearest voxel, converted from sRGB to linear light.

A sparse field is ``coords`` int [N, 3] (x, y, z) or [N, 4] (batch, x, y, z) with ``feats``
[N, C ≥ 3] (sRGB base colour first, 0..1) on a ``resolution``³ grid spanning [−0.5, 0.5]³ (voxel
centres at (index + 0.5) / resolution − 0.5), the layout TRELLIS-style decoders give. scipy's KD
tree (the ``mesh`` extra) finds the nearest voxel; no nodes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nodeloom.errors import ValidationError, require
from nodeloom.ops.color import srgb_to_linear
from nodeloom.ops.mesh import Mesh, mesh_item, stack_items

__all__ = ["paint_mesh", "voxel_field"]


def _array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().float().cpu().numpy()
    return np.asarray(value)


def voxel_field(voxel: Any, all_channels: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
    """The field's voxel coordinates [N, 3|4], colours [N, 3] (every channel [N, C] with
    ``all_channels``) and grid resolution.

    Raises:
        ValidationError: the value has no ``coords`` / ``feats`` of those shapes or no resolution.
    """
    coords = getattr(voxel, "coords", None)
    feats = next((getattr(voxel, k) for k in ("feats", "colors", "data") if getattr(voxel, k, None) is not None), None)
    if coords is None or feats is None:
        raise ValidationError(f"`voxel_colors` must be a sparse voxel field with `coords` [N, 3|4] and `feats` "
                              f"[N, C >= 3], got {type(voxel).__name__}")
    coords, feats = _array(coords).astype(np.int64), _array(feats).astype(np.float64)
    if coords.ndim != 2 or coords.shape[1] not in (3, 4) or feats.ndim != 2 or feats.shape[0] != coords.shape[0] \
            or (coords.shape[0] and feats.shape[1] < 3):
        raise ValidationError(f"`voxel_colors` must hold `coords` [N, 3|4] and `feats` [N, C >= 3] for the same N, got "
                              f"{coords.shape} and {feats.shape}")
    resolution = getattr(voxel, "resolution", None)
    if not isinstance(resolution, (int, np.integer)) or resolution < 1:
        raise ValidationError(f"`voxel_colors` must name its grid `resolution` (a positive int), got {resolution!r}")
    if all_channels:
        return coords, feats if feats.shape[0] else np.zeros((0, max(feats.shape[1], 3))), int(resolution)
    return coords, feats[:, :3] if feats.shape[0] else np.zeros((0, 3)), int(resolution)


def paint_mesh(mesh: Mesh, voxel: Any) -> Mesh:
    """``mesh`` with per-vertex colours (linear RGB) of the nearest voxel of ``voxel``'s field;
    with a batch column, item b uses the voxels of batch b. An item without voxels is black."""
    coords, colors, resolution = voxel_field(voxel)
    spatial = require("scipy.spatial", "mesh")
    items = []
    for b in range(mesh.batch_size):
        item = mesh_item(mesh, b)
        verts = item["vertices"].detach().double().cpu().numpy()
        chosen = coords[:, 0] == b if coords.shape[1] == 4 else np.ones(coords.shape[0], dtype=bool)
        painted = np.zeros((verts.shape[0], 3))
        if chosen.any() and verts.shape[0]:
            centres = (coords[chosen, -3:] + 0.5) / resolution - 0.5
            _, nearest = spatial.cKDTree(centres).query(verts)
            painted = colors[chosen][nearest]
        linear = srgb_to_linear(torch.from_numpy(np.clip(painted, 0.0, 1.0)))
        items.append({**item, "colors": linear.to(item["vertices"].dtype)})
    return stack_items(items)
