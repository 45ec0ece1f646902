"""BakeNormalMapFromMesh, BakeAmbientOcclusion, ApplyTextureToMesh, PaintMesh and
BakeTextureFromVoxel: bake a high-poly mesh into a UV-unwrapped low-poly's texture maps, attach maps
to a mesh for SaveGLB, colour vertices from a voxel field and bake that field into PBR maps
(ComfyUI's nodes, as its embedded docs and templates declare them; the work is ``ops.mesh_bake``,
``ops.mesh_texture``, ``ops.mesh_paint`` and ``ops.mesh_voxel_bake``)."""

from __future__ import annotations

import logging
from typing import Any, Callable

import torch

from nodeloom.node_api import Boolean, Custom, Float, Image, Int, Node, Output, Schema, ValidationError
from nodeloom.nodes.mesh.mesh_nodes import MESH, _check_mesh, _mesh_in
from nodeloom.ops.mesh import Mesh, mesh_item
from nodeloom.ops.mesh_bake import bake_ambient_occlusion, bake_normal_map
from nodeloom.ops.mesh_paint import paint_mesh
from nodeloom.ops.mesh_texture import apply_textures
from nodeloom.ops.mesh_voxel_bake import bake_voxel_textures

__all__ = ["ApplyTextureToMesh", "BakeAmbientOcclusion", "BakeNormalMapFromMesh", "BakeTextureFromVoxel", "PaintMesh"]

log = logging.getLogger(__name__)


def _low_in() -> Any:
    return _mesh_in("The UV-unwrapped low-poly mesh that receives the bake; it must have UVs (this node never "
                    "unwraps).", "low_poly")


def _high_in() -> Any:
    return _mesh_in("The high-poly mesh whose surface is baked (one item is reused for every low-poly item).",
                    "high_poly")


def _resolution() -> Int:
    return Int("resolution", 1024, min=64, max=8192, step=64, tooltip="Edge length in pixels of the square map.")


def _bake_batch(node: str, low_poly: Any, high_poly: Any, resolution: int, blank: tuple[float, float, float],
                bake: Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor]], torch.Tensor]) -> torch.Tensor:
    """One map per low-poly item: the high-poly's matching item (or its only one); an empty low-poly
    item gets a ``blank`` map with a warning."""
    low, high = _check_mesh(low_poly, "low_poly"), _check_mesh(high_poly, "high_poly")
    if low.uvs is None:
        raise ValidationError("`low_poly` has no UVs: bake onto a UV-unwrapped mesh (run UnwrapMesh on it first)")
    if high.batch_size not in (1, low.batch_size):
        raise ValidationError(f"`high_poly` must hold one mesh or one per `low_poly` item ({low.batch_size}), "
                              f"got {high.batch_size}")
    maps = []
    for b in range(low.batch_size):
        item = mesh_item(low, b)
        source = mesh_item(high, b if high.batch_size > 1 else 0)
        if item["faces"].shape[0] == 0:
            log.warning("%s: low_poly item %d has no faces; its map is left blank", node, b)
            maps.append(torch.tensor(blank).expand(resolution, resolution, 3).clone())
            continue
        if source["faces"].shape[0] == 0:
            raise ValidationError(f"`high_poly` item {b if high.batch_size > 1 else 0} has no faces to bake from")
        maps.append(bake(item, source))
    return torch.stack(maps)


class BakeNormalMapFromMesh(Node):
    """Bake a tangent-space normal map (glTF/OpenGL +Y) of a high-poly mesh onto a low-poly mesh's
    UV layout, for Apply Texture To Mesh's normal_map."""

    SCHEMA = Schema(
        "BakeNormalMapFromMesh", display_name="Bake Normal Map from Mesh", category="3d",
        inputs=[_low_in(), _high_in(), _resolution(),
                Float("cage_distance", 0.05, min=0.001, max=0.5, step=0.001,
                      tooltip="Surface search band, as a fraction of the bounding box diagonal. Raise for missing "
                              "patches under heavy decimation; lower if it grabs across gaps."),
                Boolean("ignore_backfaces", True,
                        tooltip="Skip high-poly surfaces facing away from the texel, so crevices don't grab the "
                                "opposite wall. Disable only if the high-poly winding is inconsistent.")],
        outputs=[Output("IMAGE", "normal_map", tooltip="The tangent-space normal map, one per low-poly item.")],
    )

    @classmethod
    def execute(cls, low_poly: Any, high_poly: Any, resolution: int, cage_distance: float,
                ignore_backfaces: bool) -> tuple[Any]:
        res = int(resolution)
        return (_bake_batch("BakeNormalMapFromMesh", low_poly, high_poly, res, (0.5, 0.5, 1.0),
                            lambda low, high: bake_normal_map(low, high, res, float(cage_distance),
                                                              bool(ignore_backfaces))),)


class BakeAmbientOcclusion(Node):
    """Bake ambient occlusion of a high-poly mesh into a low-poly mesh's UV layout: white where open,
    dark in crevices, for Apply Texture To Mesh's occlusion."""

    SCHEMA = Schema(
        "BakeAmbientOcclusion", display_name="Bake Ambient Occlusion", category="3d",
        inputs=[_low_in(), _high_in(), _resolution(),
                Int("samples", 64, min=4, max=1024, step=4, tooltip="Rays cast from each texel; more rays give less noise but take longer."),
                Float("max_distance", 0.5, min=0.01, max=2.0, step=0.01,
                      tooltip="Ray length, as a fraction of the bounding box diagonal. Smaller = more local "
                              "occlusion."),
                Float("strength", 1.0, min=0.0, max=2.0, step=0.05,
                      tooltip="Scales the occlusion: >1 darkens, <1 lightens."),
                Float("bias", 0.01, min=0.0001, max=0.2, step=0.0005,
                      tooltip="Ray origin lift off the surface, as a fraction of the bounding box diagonal. Raise "
                              "if flat surfaces show dark blotches.")],
        outputs=[Output("IMAGE", "occlusion", tooltip="Grey occlusion maps in [0, 1], one per low-poly item.")],
    )

    @classmethod
    def execute(cls, low_poly: Any, high_poly: Any, resolution: int, samples: int, max_distance: float,
                strength: float, bias: float) -> tuple[Any]:
        res = int(resolution)
        return (_bake_batch("BakeAmbientOcclusion", low_poly, high_poly, res, (1.0, 1.0, 1.0),
                            lambda low, high: bake_ambient_occlusion(low, high, res, int(samples), float(max_distance),
                                                                     float(strength), float(bias))),)


class ApplyTextureToMesh(Node):
    """Attach baked maps to the UV-unwrapped mesh they were baked on, for SaveGLB: the base colour
    as its texture, metallic / roughness / occlusion packed into one glTF ORM map, and a normal map
    (which brings smooth vertex normals)."""

    SCHEMA = Schema(
        "ApplyTextureToMesh", display_name="Apply Texture to Mesh", category="3d",
        inputs=[_mesh_in("The UV-unwrapped mesh the maps were baked on."),
                Image("base_color", tooltip="The base colour texture."),
                Image("metallic", optional=True, tooltip="Metallic map (the ORM's blue channel; 0 without it)."),
                Image("roughness", optional=True, tooltip="Roughness map (the ORM's green channel; 1 without it)."),
                Image("occlusion", optional=True, tooltip="Ambient occlusion map (the ORM's red channel; 1 without "
                                                          "it)."),
                Image("normal_map", optional=True, tooltip="Tangent-space normal map (glTF/OpenGL +Y).")],
        outputs=[Output(MESH, "mesh", tooltip="The mesh with its texture maps, ready for SaveGLB.")],
    )

    @classmethod
    def execute(cls, mesh: Any, base_color: Any, metallic: Any = None, roughness: Any = None, occlusion: Any = None,
                normal_map: Any = None) -> tuple[Mesh]:
        return (apply_textures(_check_mesh(mesh), base_color, metallic, roughness, occlusion, normal_map),)


class PaintMesh(Node):
    """Colour a mesh's vertices from a voxel colour field: each vertex takes the nearest voxel's
    base colour (sRGB in the field, linear in the mesh)."""

    SCHEMA = Schema(
        "PaintMesh", display_name="Paint Mesh", category="3d",
        inputs=[_mesh_in("The mesh to paint."),
                Custom("VOXEL", "voxel_colors", tooltip="A sparse voxel field whose first three channels are the "
                                                        "base colour.")],
        outputs=[Output(MESH, "mesh", tooltip="The mesh with vertex colours.")],
    )

    @classmethod
    def execute(cls, mesh: Any, voxel_colors: Any) -> tuple[Mesh]:
        return (paint_mesh(_check_mesh(mesh), voxel_colors),)


class BakeTextureFromVoxel(Node):
    """Bake a voxel field's base colour, metallic and roughness into PBR texture maps on a mesh's
    existing UV layout (run UnwrapMesh first), for Apply Texture to Mesh."""

    SCHEMA = Schema(
        "BakeTextureFromVoxel", display_name="Bake Texture From Voxel", category="3d",
        inputs=[_mesh_in("The UV-unwrapped mesh to bake onto; it must have UVs (this node never unwraps)."),
                Custom("VOXEL", "voxel_colors",
                       tooltip="A sparse voxel field: base colour (sRGB) in its first three channels, then "
                               "metallic and roughness when it has them."),
                Int("texture_size", 2048, min=64, max=8192, display_name="resolution",
                    tooltip="Edge length in pixels of the square maps."),
                Custom(MESH, "reference_mesh", optional=True,
                       tooltip="Optional dense (pre-decimation) mesh: each texel moves to the closest point of "
                               "its surface before sampling, so coarse meshes do not bake faceted. One item is reused "
                               "for every mesh item.")],
        outputs=[Output("IMAGE", "base_color", tooltip="RGB base colour maps (0..1), one per mesh item."),
                 Output("IMAGE", "metallic", tooltip="Grey metallic maps; black when the field has no metallic "
                                                     "channel."),
                 Output("IMAGE", "roughness", tooltip="Grey roughness maps; black when the field has no roughness "
                                                      "channel.")],
    )

    @classmethod
    def execute(cls, mesh: Any, voxel_colors: Any, texture_size: int,
                reference_mesh: Any = None) -> tuple[Any, Any, Any]:
        reference = None if reference_mesh is None else _check_mesh(reference_mesh, "reference_mesh")
        return bake_voxel_textures(_check_mesh(mesh), voxel_colors, int(texture_size), reference)
