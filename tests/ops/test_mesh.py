"""Mesh values and their operations: counts and reports, rotation, merging, smooth normals with
creases, GLB bytes that read back (trimesh) with the metadata ComfyUI stores."""

import io
import json
import math
import struct

import numpy as np
import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.ops.mesh import (
    Mesh,
    format_count,
    merge_meshes,
    mesh_info,
    rotate_mesh,
    rotation_matrix,
    smooth_normals,
    to_glb,
)

trimesh = pytest.importorskip("trimesh")


def cube() -> Mesh:
    box = trimesh.creation.box()
    return Mesh(torch.tensor(box.vertices, dtype=torch.float32)[None], torch.tensor(box.faces)[None])


def tetra() -> Mesh:
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    f = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    return Mesh(v[None], f[None])


def test_shapes_are_checked():
    with pytest.raises(ValidationError, match=r"`vertices` must be shaped \[B, N, 3\]"):
        Mesh(torch.zeros(4, 3), torch.zeros(1, 2, 3, dtype=torch.long))
    with pytest.raises(ValidationError, match="`normals` must be shaped"):
        Mesh(torch.zeros(1, 4, 3), torch.zeros(1, 2, 3, dtype=torch.long), normals=torch.zeros(1, 5, 3))


def test_info_reports_counts_attributes_and_padded_batches():
    assert format_count(999) == "999" and format_count(12_345) == "12,345 (12.3K)"
    assert format_count(1_234_567) == "1,234,567 (1.23M)"
    assert mesh_info(cube()) == "vertices: 8\nfaces: 12\nattributes: none"
    batch = merge_meshes([cube()])  # one item, no padding
    padded = Mesh(torch.zeros(2, 8, 3), torch.zeros(2, 12, 3, dtype=torch.long), vertex_counts=(8, 4),
                  face_counts=(12, 4), uvs=torch.zeros(2, 8, 2))
    report = mesh_info(padded)
    assert "vertices: 12\nfaces: 16\nbatch: 2 meshes" in report and "[1] vertices: 4, faces: 4" in report
    assert report.endswith("attributes: uvs") and batch.vertex_counts is None
    coloured = Mesh(torch.zeros(1, 3, 3), torch.zeros(1, 1, 3, dtype=torch.long), colors=torch.ones(1, 3, 3))
    assert coloured.vertex_colors is coloured.colors  # ComfyUI's attribute name


def test_rotation_turns_vertices_and_normals():
    r = rotation_matrix("euler_xyz", angles=(0.0, 0.0, 90.0))
    assert np.allclose(r @ [1, 0, 0], [0, 1, 0])
    # X first, then Y: (0, 1, 0) → (0, 0, 1) about X → (1, 0, 0) about Y
    assert np.allclose(rotation_matrix("euler_xyz", angles=(90.0, 90.0, 0.0)) @ [0, 1, 0], [1, 0, 0])
    q = rotation_matrix("quaternion", quaternion=(math.cos(math.pi / 4) * 2, 0.0, 0.0, math.sin(math.pi / 4) * 2))
    assert np.allclose(q, r)  # the quaternion is normalised first
    with pytest.raises(ValidationError, match="has no direction"):
        rotation_matrix("quaternion", quaternion=(0.0, 0.0, 0.0, 0.0))
    mesh = smooth_normals(tetra())
    turned = rotate_mesh(mesh, r)
    assert torch.allclose(turned.vertices[0, 1], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    assert torch.allclose(turned.normals, mesh.normals @ torch.tensor(r, dtype=torch.float32).T, atol=1e-6)
    assert torch.equal(turned.faces, mesh.faces)


def test_merge_offsets_faces_and_fills_missing_attributes():
    a = tetra()
    b = Mesh(cube().vertices + 5, cube().faces, uvs=torch.rand(1, 8, 2))
    merged = merge_meshes([a, b])
    assert merged.vertices.shape == (1, 12, 3) and merged.faces.shape == (1, 16, 3)
    assert int(merged.faces[0, 4:].min()) == 4 and int(merged.faces.max()) == 11
    assert torch.equal(merged.uvs[0, :4], torch.zeros(4, 2)) and torch.equal(merged.uvs[0, 4:], b.uvs[0])
    with pytest.raises(ValidationError, match="at least one"):
        merge_meshes([])


def test_smooth_normals_average_faces_and_split_along_creases():
    smooth = smooth_normals(cube())
    assert smooth.vertices.shape == (1, 8, 3)
    corner = smooth.vertices[0, 0]
    assert torch.allclose(smooth.normals[0, 0], corner / corner.norm(), atol=1e-6)  # a cube corner points outwards
    hard = smooth_normals(cube(), 30.0)
    assert hard.vertices.shape == (1, 24, 3) and hard.faces.shape == (1, 12, 3)  # 3 faces meet at 90° per corner
    face_dirs = torch.linalg.cross(*(hard.vertices[0][hard.faces[0][:, i]] - hard.vertices[0][hard.faces[0][:, 0]]
                                     for i in (1, 2)))
    for face, direction in zip(hard.faces[0], face_dirs):
        assert torch.allclose(hard.normals[0, face], (direction / direction.norm()).expand(3, 3), atol=1e-6)
    assert smooth_normals(cube(), 100.0).vertices.shape == (1, 8, 3)  # 90° edges are below the crease angle


def test_glb_reads_back_with_normals_and_metadata():
    mesh = smooth_normals(tetra())
    data = to_glb(mesh, extras={"prompt": json.dumps({"1": {"class_type": "X"}})})
    assert data[:4] == b"glTF" and struct.unpack_from("<I", data, 8)[0] == len(data)
    back = trimesh.load(io.BytesIO(data), file_type="glb", force="mesh", process=False)
    assert np.allclose(back.vertices, mesh.vertices[0].numpy()) and np.array_equal(back.faces, mesh.faces[0].numpy())
    assert np.allclose(back.vertex_normals, mesh.normals[0].numpy(), atol=1e-6)
    json_len = struct.unpack_from("<I", data, 12)[0]
    doc = json.loads(data[20:20 + json_len])
    assert json.loads(doc["asset"]["extras"]["prompt"]) == {"1": {"class_type": "X"}}
    empty = Mesh(torch.zeros(1, 0, 3), torch.zeros(1, 0, 3, dtype=torch.long))
    with pytest.raises(ValidationError, match="is empty"):
        to_glb(empty)
