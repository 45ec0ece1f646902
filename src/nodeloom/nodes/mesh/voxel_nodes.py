"""VoxelToMeshBasic and VoxelToMesh: a VOXEL grid batch (``.data`` ``[B, D, H, W]``, as ComfyUI's
3D decoders give it) to a MESH, by exposed cube faces or a surface net (``ops.voxel_mesh``)."""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.node_api import Combo, Custom, Float, Node, Output, Schema, ValidationError
from nodeloom.ops.mesh import Mesh, stack_items
from nodeloom.ops.voxel_mesh import voxel_cubes, voxel_surface_net

__all__ = ["VoxelToMesh", "VoxelToMeshBasic"]

_ALGORITHMS = {"surface net": voxel_surface_net, "basic": voxel_cubes}


def _threshold() -> Float:
    return Float("threshold", 0.6, min=-1.0, max=1.0, step=0.01, tooltip="Grid values above this are inside.")


def _grids(voxel: Any) -> torch.Tensor:
    data = getattr(voxel, "data", voxel)
    if not isinstance(data, torch.Tensor) or data.ndim not in (3, 4):
        shape = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
        raise ValidationError(f"`voxel` must hold a grid batch shaped [B, D, H, W], got {shape}")
    return data if data.ndim == 4 else data[None]


def _mesh(voxel: Any, algorithm: str, threshold: float) -> Mesh:
    build = _ALGORITHMS[algorithm]
    items = []
    for grid in _grids(voxel):
        vertices, faces = build(grid, float(threshold))
        items.append({"vertices": vertices, "faces": faces})
    return stack_items(items)


class VoxelToMeshBasic(Node):
    """Turn voxel grids into meshes of the occupied cells' exposed faces."""

    SCHEMA = Schema(
        "VoxelToMeshBasic", display_name="VoxelToMeshBasic", category="3d",
        inputs=[Custom("VOXEL", "voxel", tooltip="The voxel grids."), _threshold()],
        outputs=[Output("MESH", "MESH", tooltip="One mesh per grid, in [-1, 1].")],
    )

    @classmethod
    def execute(cls, voxel: Any, threshold: float) -> tuple[Any]:
        return (_mesh(voxel, "basic", threshold),)


class VoxelToMesh(Node):
    """Turn voxel grids into meshes: a smooth surface net, or the basic cube faces."""

    SCHEMA = Schema(
        "VoxelToMesh", display_name="VoxelToMesh", category="3d",
        inputs=[Custom("VOXEL", "voxel", tooltip="The voxel grids."),
                Combo("algorithm", list(_ALGORITHMS), tooltip="surface net: one vertex per surface cell, smooth; "
                                                              "basic: the exposed cube faces."),
                _threshold()],
        outputs=[Output("MESH", "MESH", tooltip="One mesh per grid, in [-1, 1].")],
    )

    @classmethod
    def execute(cls, voxel: Any, algorithm: str, threshold: float) -> tuple[Any]:
        return (_mesh(voxel, algorithm, threshold),)
