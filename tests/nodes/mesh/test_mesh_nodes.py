"""The mesh pack through the engine: declarations, SaveGLB files (mesh batches and 3D file values)
with the prompt inside, info, smooth normals, merge with its growing sockets, rotation modes."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
import torch

from nodeloom.ops.mesh import File3D, Mesh
from tests.nodes.conftest import run_prompt

trimesh = pytest.importorskip("trimesh")


def _mesh(offset: float = 0.0) -> Mesh:
    box = trimesh.creation.box()
    return Mesh(torch.tensor(box.vertices, dtype=torch.float32)[None] + offset, torch.tensor(box.faces)[None])


def _glb_doc(path) -> dict:
    data = path.read_bytes()
    return json.loads(data[20:20 + struct.unpack_from("<I", data, 12)[0]])


def test_declarations_follow_comfyui(image_engine):
    info = image_engine.object_info()
    save = info["SaveGLB"]
    assert save["output_node"] and save["category"] == "3d" and save["display_name"] == "Save 3D Model"
    assert save["input"]["required"]["mesh"][0].split(",")[:2] == ["MESH", "FILE_3D_GLB"]
    assert save["input"]["required"]["filename_prefix"][1]["default"] == "3d/ComfyUI"
    assert save["search_aliases"] == ["export 3d model", "save mesh"] and save["essentials_category"] == "Basics"
    assert "essentials_category" not in info["GetMeshInfo"] and "has_intermediate_output" not in info["GetMeshInfo"]
    assert info["GetMeshInfo"]["output"] == ["MESH", "STRING"] and info["GetMeshInfo"]["output_name"] == ["mesh", "info"]
    assert info["MeshToFile3D"]["output"] == ["FILE_3D_GLB"] and info["MeshToFile3D"]["output_name"] == ["model_3d"]
    assert info["MeshSmoothNormals"]["input"]["required"]["crease_angle"][1]["default"] == 180.0
    assert info["MergeMeshes"]["input"]["required"]["meshes"][0] == "COMFY_AUTOGROW_V3"
    assert info["RotateMesh"]["input"]["required"]["mode"][0] == "COMFY_DYNAMICCOMBO_V3"


def test_save_glb_writes_one_file_per_item_with_the_prompt(image_engine):
    batch = Mesh(torch.cat([_mesh().vertices, _mesh(2.0).vertices]), torch.cat([_mesh().faces] * 2))
    empty = Mesh(torch.zeros(2, 8, 3), torch.zeros(2, 12, 3, dtype=torch.long), vertex_counts=(8, 0),
                 face_counts=(12, 0))
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "two cubes"}},
              "2": {"class_type": "SaveGLB", "inputs": {"mesh": ["1", 0], "filename_prefix": "3d/cube"}},
              "3": {"class_type": "TestTensor", "inputs": {"key": "partly_empty"}},
              "4": {"class_type": "SaveGLB", "inputs": {"mesh": ["3", 0], "filename_prefix": "3d/partly"}}}
    result = run_prompt(image_engine, prompt, {"two cubes": batch, "partly_empty": empty})
    assert result.status == "success", result.errors
    files = result.outputs["2"]["3d"]
    assert [f["filename"] for f in files] == ["cube_00001_.glb", "cube_00002_.glb"]
    assert all(f["subfolder"] == "3d" and f["type"] == "output" for f in files)
    out = image_engine.services.paths.output_dir / "3d"
    second = trimesh.load(out / files[1]["filename"], force="mesh", process=False)
    assert np.allclose(second.vertices, batch.vertices[1].numpy())
    assert json.loads(_glb_doc(out / files[0]["filename"])["asset"]["extras"]["prompt"])["2"]["class_type"] == "SaveGLB"
    assert len(result.outputs["4"]["3d"]) == 1  # the empty item is skipped


def test_mesh_to_file_3d_feeds_save_glb_and_info_reports(image_engine):
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "one cube"}},
              "2": {"class_type": "MeshSmoothNormals", "inputs": {"mesh": ["1", 0], "crease_angle": 30.0}},
              "3": {"class_type": "GetMeshInfo", "inputs": {"mesh": ["2", 0]}},
              "4": {"class_type": "MeshToFile3D", "inputs": {"mesh": ["3", 0]}},
              "5": {"class_type": "SaveGLB", "inputs": {"mesh": ["4", 0], "filename_prefix": "3d/file"}}}
    result = run_prompt(image_engine, prompt, {"one cube": _mesh()}, sinks=[["3", 1], ["4", 0]])
    assert result.status == "success", result.errors
    assert result.value("3", 1) == "vertices: 24\nfaces: 12\nattributes: normals"
    assert result.outputs["3"] == {"text": [result.value("3", 1)]}
    file3d = result.value("4")
    assert isinstance(file3d, File3D) and file3d.format == "glb"
    (saved,) = result.outputs["5"]["3d"]
    path = image_engine.services.paths.output_dir / "3d" / saved["filename"]
    back = trimesh.load(io.BytesIO(path.read_bytes()), file_type="glb", force="mesh", process=False)
    assert back.vertices.shape == (24, 3)
    assert "prompt" in _glb_doc(path)["asset"]["extras"]


def test_merge_and_rotate(image_engine):
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "cube a"}},
              "2": {"class_type": "TestTensor", "inputs": {"key": "cube b"}},
              "3": {"class_type": "MergeMeshes", "inputs": {"meshes.mesh_1": ["1", 0], "meshes.mesh_2": ["2", 0]}},
              "4": {"class_type": "RotateMesh", "inputs": {"mesh": ["3", 0], "mode": "euler_xyz", "mode.angle_x": 0.0,
                                                           "mode.angle_y": 0.0, "mode.angle_z": 90.0}},
              "5": {"class_type": "RotateMesh", "inputs": {"mesh": ["3", 0], "mode": "quaternion", "mode.qw": 0.5,
                                                           "mode.qx": 0.0, "mode.qy": 0.0, "mode.qz": 0.5}},
              "6": {"class_type": "RotateMesh", "inputs": {"mesh": ["3", 0], "mode": "euler_xyz", "mode.angle_x": 0.0,
                                                           "mode.angle_y": 0.0, "mode.angle_z": 0.0}}}
    result = run_prompt(image_engine, prompt, {"cube a": _mesh(), "cube b": _mesh(3.0)}, sinks=[["3", 0], ["4", 0], ["5", 0], ["6", 0]])
    assert result.status == "success", result.errors
    merged, euler, quat, same = (result.value(n) for n in ("3", "4", "5", "6"))
    assert merged.vertices.shape == (1, 16, 3) and int(merged.faces.max()) == 15
    expected = torch.stack([-merged.vertices[..., 1], merged.vertices[..., 0], merged.vertices[..., 2]], dim=-1)
    assert torch.allclose(euler.vertices, expected, atol=1e-5) and torch.allclose(quat.vertices, expected, atol=1e-5)
    assert same is merged  # no rotation: the mesh is passed on as it is


def test_bad_inputs_are_named(image_engine):
    one = {"1": {"class_type": "TestTensor", "inputs": {"key": "cube a"}},
           "3": {"class_type": "MergeMeshes", "inputs": {"meshes.mesh_1": ["1", 0]}},
           "sink": {"class_type": "TestSink", "inputs": {"value": ["3", 0]}}}
    checked = image_engine.validate(one)
    assert not checked.ok and checked.node_errors["3"]["errors"][0]["type"] == "required_input_missing"
    zero = {"1": {"class_type": "TestTensor", "inputs": {"key": "cube a"}},
            "2": {"class_type": "RotateMesh", "inputs": {"mesh": ["1", 0], "mode": "quaternion", "mode.qw": 0.0,
                                                         "mode.qx": 0.0, "mode.qy": 0.0, "mode.qz": 0.0}}}
    result = run_prompt(image_engine, zero, {"cube a": _mesh()}, sinks=[["2", 0]])
    assert result.status == "error" and "has no direction" in result.errors[0]["exception_message"]
    wrong = {"1": {"class_type": "TestTensor", "inputs": {"key": "not a mesh"}},
             "2": {"class_type": "GetMeshInfo", "inputs": {"mesh": ["1", 0]}}}
    result = run_prompt(image_engine, wrong, {"not a mesh": torch.zeros(1, 8, 8, 3)}, sinks=[["2", 1]])
    assert result.status == "error" and "`mesh` must be a MESH value, got Tensor" in result.errors[0]["exception_message"]


def test_preview_3d_shows_paths_and_3d_file_values(image_engine):
    info = image_engine.object_info("Preview3D")["Preview3D"]
    assert info["output_node"] and info["input"]["required"]["model_file"][0].startswith("STRING,FILE_3D_GLB")
    assert list(info["input"]["optional"]) == ["camera_info", "bg_image"]
    prompt = {"1": {"class_type": "Preview3D", "inputs": {"model_file": "3d/cube_00001_.glb"}},
              "2": {"class_type": "TestTensor", "inputs": {"key": "preview cube"}},
              "3": {"class_type": "MeshToFile3D", "inputs": {"mesh": ["2", 0]}},
              "4": {"class_type": "CameraAngle", "inputs": {"horizontal_angle": 90, "vertical_angle": 0, "zoom": 0.0}},
              "5": {"class_type": "TestTensor", "inputs": {"key": "preview background"}},
              "6": {"class_type": "Preview3D", "inputs": {"model_file": ["3", 0], "camera_info": ["4", 0],
                                                          "bg_image": ["5", 0]}}}
    result = run_prompt(image_engine, prompt, {"preview cube": _mesh(), "preview background": torch.ones(1, 8, 8, 3)})
    assert result.status == "success", result.errors
    assert result.outputs["1"] == {"result": ["3d/cube_00001_.glb", None, None]}
    model_file, camera, background = result.outputs["6"]["result"]
    assert model_file.startswith("3d/preview3d_") and model_file.endswith(".glb [temp]")
    temp = image_engine.services.paths.temp_dir
    glb = temp / model_file.removesuffix(" [temp]")
    assert trimesh.load(glb, force="mesh", process=False).vertices.shape == (8, 3)
    assert camera["position"]["x"] == pytest.approx(6.0) and background.startswith("temp/bg_")
    assert (temp / background.removeprefix("temp/")).is_file()


def test_voxels_to_meshes(image_engine):
    from types import SimpleNamespace

    grids = torch.zeros(2, 6, 6, 6)
    grids[0, 1:3, 1:3, 1:3] = 1.0
    grids[1, 2:5, 1:5, 2:4] = 1.0
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "voxels"}},
              "2": {"class_type": "VoxelToMeshBasic", "inputs": {"voxel": ["1", 0], "threshold": 0.6}},
              "3": {"class_type": "VoxelToMesh", "inputs": {"voxel": ["1", 0], "algorithm": "surface net",
                                                            "threshold": 0.6}},
              "4": {"class_type": "GetMeshInfo", "inputs": {"mesh": ["2", 0]}}}
    result = run_prompt(image_engine, prompt, {"voxels": SimpleNamespace(data=grids)}, sinks=[["3", 0], ["4", 1]])
    assert result.status == "success", result.errors
    basic, net = result.value("4", 0), result.value("3")
    assert basic.batch_size == 2 and basic.vertex_counts == (96, 208)  # a 2³ block (24 faces) and a 3×4×2 block (52)
    assert basic.face_counts == (48, 104)
    assert "[1] vertices: 208, faces: 104" in result.value("4", 1)
    assert net.batch_size == 2 and all(n > 0 for n in net.face_counts or (net.faces.shape[1],))
    info = image_engine.object_info("VoxelToMesh")["VoxelToMesh"]
    assert info["input"]["required"]["algorithm"][0] == ["surface net", "basic"]
    assert info["input"]["required"]["threshold"][1]["default"] == 0.6 and info["output"] == ["MESH"]
