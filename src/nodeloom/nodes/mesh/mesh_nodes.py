"""ComfyUI's model-free MESH nodes: SaveGLB, GetMeshInfo, MeshToFile3D, MeshSmoothNormals,
MergeMeshes and RotateMesh (ids, inputs and defaults as ComfyUI's; geometry in ``ops.mesh``)."""

from __future__ import annotations

import json
import logging
from typing import Any

from nodeloom.node_api import Custom, Float, Hidden, Node, NodeOutput, Output, Schema, String, ValidationError, services
from nodeloom.nodes.utils.logic import autogrow, group_values
from nodeloom.ops.mesh import (
    File3D,
    Mesh,
    merge_meshes,
    mesh_info,
    rotate_mesh,
    rotation_matrix,
    smooth_normals,
    to_glb,
    with_glb_extras,
)

__all__ = ["GetMeshInfo", "MergeMeshes", "MeshSmoothNormals", "MeshToFile3D", "RotateMesh", "SaveGLB"]

log = logging.getLogger(__name__)

MESH = "MESH"
FILE_3D_GLB = "FILE_3D_GLB"
#: what SaveGLB accepts: a MESH or any 3D file value (ComfyUI's list)
FILE_3D_TYPES = ("FILE_3D_GLB", "FILE_3D_GLTF", "FILE_3D_OBJ", "FILE_3D_FBX", "FILE_3D_STL", "FILE_3D_USDZ",
                 "FILE_3D_PLY", "FILE_3D_SPLAT", "FILE_3D_SPZ", "FILE_3D_KSPLAT", "FILE_3D_SPLAT_ANY",
                 "FILE_3D_POINT_CLOUD_ANY", "FILE_3D")
_CATEGORY = "3d"


def _mesh_in(tip: str, name: str = "mesh") -> Custom:
    return Custom(MESH, name, tooltip=tip)


def _check_mesh(value: Any, name: str = "mesh") -> Mesh:
    if not isinstance(value, Mesh):
        raise ValidationError(f"`{name}` must be a MESH value, got {type(value).__name__}")
    return value


class SaveGLB(Node):
    """Save meshes (one .glb per batch item) or a 3D file (in its own format) to the output folder."""

    SCHEMA = Schema(
        "SaveGLB", display_name="Save 3D Model", category=_CATEGORY, output_node=True,
        search_aliases=["export 3d model", "save mesh"], essentials_category="Basics",
        inputs=[Custom(",".join((MESH, *FILE_3D_TYPES)), "mesh", tooltip="Mesh or 3D file to save"),
                String("filename_prefix", "3d/ComfyUI", tooltip="The prefix for the file to save; may contain a "
                                                               "subfolder.")],
        outputs=[], hidden={"prompt": Hidden.prompt, "extra_pnginfo": Hidden.extra_pnginfo},
    )

    @classmethod
    def execute(cls, mesh: Any, filename_prefix: str = "3d/ComfyUI", prompt: Any = None,
                extra_pnginfo: Any = None) -> NodeOutput:
        extras: dict[str, Any] = {}
        if prompt is not None:
            extras["prompt"] = json.dumps(prompt)
        for key, value in (extra_pnginfo or {}).items():
            extras[key] = json.dumps(value)
        if isinstance(mesh, File3D):
            blobs = [(with_glb_extras(mesh.data, extras) if mesh.format in ("", "glb") else mesh.data, mesh.format or "glb")]
        else:
            mesh = _check_mesh(mesh)
            blobs = []
            for index in range(mesh.batch_size):
                nv, nf = mesh.counts(index)
                if nv == 0 or nf == 0:
                    log.warning("SaveGLB: mesh item %d is empty (%d vertices, %d faces); skipped", index, nv, nf)
                    continue
                blobs.append((to_glb(mesh, index, extras), "glb"))
        folder, name, counter, subfolder = services().paths.get_save_path(filename_prefix, kind="output",
                                                                          count=max(len(blobs), 1))
        results = []
        for data, ext in blobs:
            target = folder / f"{name}_{counter:05}_.{ext}"
            target.write_bytes(data)
            results.append({"filename": target.name, "subfolder": subfolder, "type": "output"})
            counter += 1
        return NodeOutput(ui={"3d": results})


class GetMeshInfo(Node):
    """Report a mesh's vertex and face counts and the attributes it carries; the mesh passes through."""

    SCHEMA = Schema(
        "GetMeshInfo", display_name="Get Mesh Info", category=_CATEGORY,
        inputs=[_mesh_in("The mesh to inspect; it passes through unchanged.")],
        outputs=[Output(MESH, "mesh", tooltip="The input mesh, unchanged."),
                 Output("STRING", "info", tooltip="Vertex and face counts (per item for a batch) and attributes.")],
    )

    @classmethod
    def execute(cls, mesh: Any) -> NodeOutput:
        info = mesh_info(_check_mesh(mesh))
        return NodeOutput(mesh, info, ui={"text": [info]})


class MeshToFile3D(Node):
    """Serialise a mesh (its first batch item) into a GLB file value for Save / Preview 3D nodes."""

    SCHEMA = Schema(
        "MeshToFile3D", display_name="Create 3D File (from Mesh)", category=_CATEGORY,
        search_aliases=["mesh to glb", "mesh to file", "export mesh"],
        inputs=[_mesh_in("The mesh to write as GLB; only the first item of a batch is used.")],
        outputs=[Output(FILE_3D_GLB, "model_3d", tooltip="The mesh as a GLB (glTF binary) file.")],
    )

    @classmethod
    def execute(cls, mesh: Any) -> tuple[Any]:
        mesh = _check_mesh(mesh)
        if mesh.batch_size > 1:
            log.warning("MeshToFile3D: the mesh batch holds %d items; only the first is written", mesh.batch_size)
        nv, nf = mesh.counts(0)
        if nv == 0 or nf == 0:
            raise ValidationError(f"`mesh` is empty ({nv} vertices, {nf} faces); a 3D file needs at least one face")
        return (File3D(to_glb(mesh, 0), "glb"),)


class MeshSmoothNormals(Node):
    """Attach smooth per-vertex normals; below 180°, edges sharper than `crease_angle` stay hard."""

    SCHEMA = Schema(
        "MeshSmoothNormals", display_name="Smooth Mesh Normals", category=_CATEGORY,
        inputs=[_mesh_in("The input mesh to process."),
                Float("crease_angle", 180.0, min=0.0, max=180.0, step=1.0,
                      tooltip="Angle in degrees between neighbouring faces above which an edge is kept hard by "
                              "splitting its vertices. 180 smooths everything; smaller values keep sharp edges "
                              "(around 30-60 suits hard-surface models).")],
        outputs=[Output(MESH, "mesh", tooltip="The mesh with smooth normals (split along hard edges).")],
    )

    @classmethod
    def execute(cls, mesh: Any, crease_angle: float) -> tuple[Any]:
        return (smooth_normals(_check_mesh(mesh), float(crease_angle)),)


class MergeMeshes(Node):
    """Join meshes into one (their first batch items): vertices, faces, UVs and colours stacked."""

    SCHEMA = Schema(
        "MergeMeshes", display_name="Merge Meshes", category=_CATEGORY,
        inputs=[Custom("COMFY_AUTOGROW_V3", "meshes", tooltip="Meshes to merge; a new socket appears for each one "
                                                              "connected.",
                       **autogrow(MESH, names=[f"mesh_{i}" for i in range(1, 51)], min_count=2))],
        outputs=[Output(MESH, "mesh", tooltip="All parts in one mesh.")],
    )

    @classmethod
    def execute(cls, **inputs: Any) -> tuple[Any]:
        parts = group_values(inputs, "meshes")
        return (merge_meshes([_check_mesh(m, f"meshes.{k}") for k, m in parts.items()]),)


_EULER = {f"angle_{a}": ["FLOAT", {"default": 0.0, "min": -360.0, "max": 360.0, "step": 0.1,
                                   "tooltip": f"Degrees to turn about the world {a.upper()} axis."}] for a in "xyz"}
_QUAT = {f"q{c}": ["FLOAT", {"default": 1.0 if c == "w" else 0.0, "min": -1.0, "max": 1.0, "step": 0.001,
                             "tooltip": f"The {c} part of the rotation quaternion, given as (w, x, y, z)."}] for c in "wxyz"}


class RotateMesh(Node):
    """Rotate a mesh about the world axes (Euler X, then Y, then Z in degrees, or a quaternion);
    normals turn with it."""

    SCHEMA = Schema(
        "RotateMesh", display_name="Rotate Mesh", category=_CATEGORY,
        inputs=[_mesh_in("The 3D mesh to rotate."),
                Custom("COMFY_DYNAMICCOMBO_V3", "mode", tooltip="euler_xyz: X then Y then Z angles about the world "
                                                                "axes; quaternion: (w, x, y, z), normalised.",
                       options=[{"key": "euler_xyz", "inputs": {"required": _EULER}},
                                {"key": "quaternion", "inputs": {"required": _QUAT}}])],
        outputs=[Output(MESH, "mesh", tooltip="The rotated mesh.")],
    )

    @classmethod
    def execute(cls, mesh: Any, mode: str, **options: Any) -> tuple[Any]:
        mesh = _check_mesh(mesh)
        opts = {k.split(".", 1)[1]: float(v) for k, v in options.items() if k.startswith("mode.")}
        if mode == "euler_xyz":
            angles = tuple(opts.get(f"angle_{a}", 0.0) for a in "xyz")
            if not any(angles):
                return (mesh,)
            matrix = rotation_matrix(mode, angles=angles)  # type: ignore[arg-type]
        else:
            quat = tuple(opts.get(f"q{c}", 1.0 if c == "w" else 0.0) for c in "wxyz")
            if quat == (1.0, 0.0, 0.0, 0.0):
                return (mesh,)
            matrix = rotation_matrix(mode, quaternion=quat)  # type: ignore[arg-type]
        return (rotate_mesh(mesh, matrix),)
