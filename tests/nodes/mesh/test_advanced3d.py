"""Save3DAdvanced and Preview3DAdvanced through the engine (declarations as the templates carry
them, files written, placement and camera fallbacks), and textured meshes round-tripping through
GLB (UVs and the base-colour, normal and ORM textures)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from nodeloom.ops.mesh import File3D, Mesh, to_glb
from nodeloom.ops.mesh_texture import apply_textures, fit_uvs, pack_orm
from tests.nodes.conftest import run_prompt

trimesh = pytest.importorskip("trimesh")


def _quad() -> Mesh:
    v = torch.tensor([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=torch.float32)[None]
    f = torch.tensor([[0, 1, 2], [0, 2, 3]])[None]
    uv = torch.tensor([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=torch.float32)[None]
    return Mesh(v, f, uvs=uv)


def _cube_file() -> File3D:
    box = trimesh.creation.box()
    return File3D(to_glb(Mesh(torch.tensor(box.vertices, dtype=torch.float32)[None], torch.tensor(box.faces)[None])))


def test_declarations_follow_the_templates(image_engine):
    info = image_engine.object_info()
    save, preview = info["Save3DAdvanced"], info["Preview3DAdvanced"]
    # the templates' widget values: ['3d/ComfyUI', '', 1024, 1024] and ['', 1024, 1024]
    assert list(save["input"]["required"]) == ["model_3d", "filename_prefix", "viewport_state", "width", "height"]
    assert list(preview["input"]["required"]) == ["model_3d", "viewport_state", "width", "height"]
    assert save["input_order"]["optional"] == ["model_3d_info", "camera_info"]
    assert save["input"]["required"]["filename_prefix"][1]["default"] == "3d/ComfyUI"
    assert save["input"]["required"]["viewport_state"][0] == "LOAD_3D"
    assert save["input"]["required"]["width"][1] == {"default": 1024, "min": 1, "max": 4096, "step": 1,
                                                     "tooltip": "Viewport width to render at, in pixels."}
    for node in (save, preview):
        assert node["output_node"] and node["category"] == "3d"
        assert node["input"]["required"]["model_3d"][0].split(",")[-1] == "FILE_3D"
        assert node["output"] == ["FILE_3D", "LOAD3D_MODEL_INFO", "LOAD3D_CAMERA", "INT", "INT"]
        assert node["output_name"] == ["model_3d", "model_3d_info", "camera_info", "width", "height"]
    assert save["display_name"] == "Save 3D (Advanced)" and preview["display_name"] == "Preview 3D (Advanced)"


def test_save_writes_the_file_and_passes_values_on(image_engine):
    camera = {"position": {"x": 1, "y": 2, "z": 3}, "target": {"x": 0, "y": 0, "z": 0}, "zoom": 1,
              "cameraType": "perspective"}
    state = {"camera_info": camera, "model_3d_info": [{"position": [0, 1, 0]}]}
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "cube file"}},
              "2": {"class_type": "Save3DAdvanced", "inputs": {"model_3d": ["1", 0], "filename_prefix": "3d/adv",
                                                               "viewport_state": "", "width": 640, "height": 480}},
              "3": {"class_type": "TestTensor", "inputs": {"key": "state"}},
              "4": {"class_type": "Preview3DAdvanced", "inputs": {"model_3d": ["2", 0], "viewport_state": ["3", 0],
                                                                  "width": 512, "height": 256}}}
    cube = _cube_file()
    sinks = [["2", i] for i in range(5)] + [["4", i] for i in range(5)]
    result = run_prompt(image_engine, prompt, {"cube file": cube, "state": state}, sinks=sinks)
    assert result.status == "success", result.errors
    assert [result.value("2", i) for i in range(5)] == [cube, [], None, 640, 480]  # '' state: nothing stored
    (saved,) = result.outputs["2"]["3d"]
    assert saved == {"filename": "adv_00001_.glb", "subfolder": "3d", "type": "output"}
    assert result.outputs["2"]["result"] == ["3d/adv_00001_.glb", None, []]
    path = image_engine.services.paths.output_dir / "3d" / "adv_00001_.glb"
    assert trimesh.load(path, force="mesh", process=False).vertices.shape == (8, 3)
    assert [result.value("4", i) for i in range(5)] == [cube, state["model_3d_info"], camera, 512, 256]
    name = result.outputs["4"]["result"][0]
    assert name.startswith("preview3d_advanced_") and name.endswith(".glb [temp]")
    assert (image_engine.services.paths.temp_dir / name.removesuffix(" [temp]")).read_bytes() == cube.data


def test_connected_camera_overrides_the_viewport_state(image_engine):
    own = {"position": {"x": 9, "y": 9, "z": 9}}
    state = {"camera_info": {"position": {"x": 1}}, "model_3d_info": [{"scale": 2}]}
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "cube file"}},
              "2": {"class_type": "TestTensor", "inputs": {"key": "camera"}},
              "3": {"class_type": "TestTensor", "inputs": {"key": "other state"}},
              "4": {"class_type": "Preview3DAdvanced", "inputs": {"model_3d": ["1", 0], "viewport_state": ["3", 0],
                                                                  "camera_info": ["2", 0], "width": 8, "height": 8}}}
    result = run_prompt(image_engine, prompt, {"cube file": _cube_file(), "camera": own, "other state": state},
                        sinks=[["4", 1], ["4", 2]])
    assert result.status == "success", result.errors
    assert result.value("4", 1) == [{"scale": 2}] and result.value("4", 2) == own


def test_a_mesh_is_refused_where_a_3d_file_is_expected(image_engine):
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "quad"}},
              "2": {"class_type": "Save3DAdvanced", "inputs": {"model_3d": ["1", 0], "filename_prefix": "3d/x",
                                                               "viewport_state": "", "width": 8, "height": 8}}}
    result = run_prompt(image_engine, prompt, {"quad": _quad()})
    assert result.status == "error"
    assert "`model_3d` must be a 3D file value" in result.errors[0]["exception_message"]


def _glb_back(mesh: Mesh):
    return trimesh.load(io.BytesIO(to_glb(mesh)), file_type="glb", force="mesh", process=False)


def test_texture_uvs_and_maps_round_trip_through_glb():
    texture = torch.zeros(1, 8, 8, 3)
    texture[:, :4, :, 0] = 1.0  # top half red (v near 1), bottom half blue
    texture[:, 4:, :, 2] = 1.0
    mesh = apply_textures(_quad(), texture, occlusion=torch.full((1, 4, 4, 3), 0.5),
                          metallic=torch.full((1, 2, 2, 1), 1.0), normal_map=torch.full((1, 8, 8, 3), 0.5))
    back = _glb_back(mesh)
    assert np.allclose(back.visual.uv, _quad().uvs[0].numpy())
    material = back.visual.material
    base = np.asarray(material.baseColorTexture)
    assert base.shape == (8, 8, 3) and tuple(base[0, 0]) == (255, 0, 0) and tuple(base[7, 7]) == (0, 0, 255)
    orm = np.asarray(material.metallicRoughnessTexture)
    assert orm.shape == (4, 4, 3) and tuple(orm[1, 1]) == (128, 255, 255)  # R occlusion, G roughness, B metallic
    assert material.occlusionTexture is not None and np.asarray(material.normalTexture).shape == (8, 8, 3)
    assert back.vertex_normals.shape == (4, 3) and np.allclose(back.vertex_normals, [0, 0, 1], atol=1e-5)


def test_texture_survives_batching_and_orm_defaults():
    mesh = apply_textures(_quad(), torch.ones(1, 4, 4, 3), roughness=torch.full((1, 4, 4, 3), 0.25))
    assert mesh.texture.shape == (1, 4, 4, 3) and not mesh.extras["orm_occlusion"]
    orm = mesh.orm_texture[0]
    assert torch.allclose(orm[..., 0], torch.ones(4, 4)) and torch.allclose(orm[..., 1], torch.full((4, 4), 0.25))
    assert torch.allclose(orm[..., 2], torch.zeros(4, 4))
    assert _glb_back(mesh).visual.material.occlusionTexture is None
    assert pack_orm(None, None, None) is None


def test_uvs_outside_the_unit_square_are_fitted():
    uvs = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    assert torch.allclose(fit_uvs(uvs), torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 0.5]]))
    inside = torch.tensor([[0.2, 0.3]])
    assert fit_uvs(inside) is inside


def test_textures_need_uvs_and_images():
    plain = Mesh(_quad().vertices, _quad().faces)
    with pytest.raises(Exception, match="`mesh` has no UVs"):
        apply_textures(plain, torch.ones(1, 4, 4, 3))
    with pytest.raises(Exception, match="`base_color` must be an IMAGE batch"):
        apply_textures(_quad(), torch.ones(4, 4, 3))
    with pytest.raises(Exception, match="`texture` must be an image batch"):
        Mesh(_quad().vertices, _quad().faces, texture=torch.ones(2, 4, 4, 3))


def test_maps_and_the_occlusion_flag_survive_smoothing_with_creases():
    from nodeloom.ops.mesh import smooth_normals

    mesh = apply_textures(_quad(), torch.ones(1, 4, 4, 3), occlusion=torch.full((1, 4, 4, 3), 0.5))
    creased = smooth_normals(mesh, 30.0)
    assert creased.texture is not None and creased.orm_texture is not None and creased.extras["orm_occlusion"]
    assert _glb_back(creased).visual.material.occlusionTexture is not None
