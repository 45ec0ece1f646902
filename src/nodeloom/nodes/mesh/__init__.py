"""The mesh pack: ComfyUI's model-free MESH utilities (save as GLB, info, GLB file value, smooth
normals, merge, rotate, voxels to mesh, QEM decimation, dual-contouring remesh), Preview3D and Load3D with their node ids, inputs and defaults;
the advanced save/preview nodes, UV unwrapping and atlas drawing, normal/occlusion baking, texture
maps, voxel painting and voxel texture baking, splat files and meshes (``uv_nodes``, ``bake_nodes``, ``advanced3d``,
``splat_nodes``). The geometry is
``nodeloom.ops.mesh``; GLB writing needs the ``mesh`` extra (trimesh).
Registers like any third-party pack."""

from nodeloom.node_api import mappings
from nodeloom.nodes.mesh.mesh_nodes import (
    GetMeshInfo,
    MergeMeshes,
    MeshSmoothNormals,
    MeshToFile3D,
    RotateMesh,
    SaveGLB,
)
from nodeloom.nodes.mesh.decimate import DecimateMesh
from nodeloom.nodes.mesh.load3d import Load3D
from nodeloom.nodes.mesh.preview3d import Preview3D
from nodeloom.nodes.mesh.remesh import RemeshMesh
from nodeloom.nodes.mesh.voxel_nodes import VoxelToMesh, VoxelToMeshBasic
from nodeloom.nodes.mesh.advanced3d import Preview3DAdvanced, Save3DAdvanced
from nodeloom.nodes.mesh.uv_nodes import RenderUVAtlas, UnwrapMesh
from nodeloom.nodes.mesh.bake_nodes import ApplyTextureToMesh, BakeAmbientOcclusion, BakeNormalMapFromMesh, PaintMesh
from nodeloom.nodes.mesh.bake_nodes import BakeTextureFromVoxel
from nodeloom.nodes.mesh.splat_nodes import RenderSplat, SplatToFile3D, SplatToMesh

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(
    SaveGLB, GetMeshInfo, MeshToFile3D, MeshSmoothNormals, MergeMeshes, RotateMesh, Preview3D,
    VoxelToMeshBasic, VoxelToMesh, Load3D, DecimateMesh, RemeshMesh,
    Save3DAdvanced, Preview3DAdvanced,
    UnwrapMesh, RenderUVAtlas,
    BakeNormalMapFromMesh, BakeAmbientOcclusion, ApplyTextureToMesh, PaintMesh,
    SplatToFile3D, SplatToMesh, RenderSplat,
    BakeTextureFromVoxel,
)
