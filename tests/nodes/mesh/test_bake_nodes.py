"""BakeNormalMapFromMesh, BakeAmbientOcclusion and ApplyTextureToMesh through the engine: a flat
plane's normal map is (0.5, 0.5, 1), tilted normals land on the right channels, a concave corner
is darker than an open face, an unwrapped sphere bakes, textured meshes save to GLB, bad inputs."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from nodeloom.ops.mesh import Mesh
from tests.nodes.conftest import run_prompt

trimesh = pytest.importorskip("trimesh")

_PLANE_V = [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]]


def _plane(normals=None) -> Mesh:
    v = torch.tensor(_PLANE_V, dtype=torch.float32)[None]
    n = None if normals is None else torch.tensor([normals] * 4, dtype=torch.float32)[None]
    return Mesh(v, torch.tensor([[0, 1, 2], [0, 2, 3]])[None], normals=n, uvs=v[..., :2].clone())


def _corner() -> Mesh:
    """A floor (z = 0, facing +z) meeting a wall (x = 0, facing +x): a concave edge along y; the
    floor's UVs fill the left of the map, the wall's the right."""
    v = torch.tensor([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1]],
                     dtype=torch.float32)[None]
    uv = torch.tensor([[0, 0], [0.45, 0], [0.45, 1], [0, 1], [0.55, 0], [0.55, 1], [1, 1], [1, 0]])[None]
    return Mesh(v, torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])[None], uvs=uv)


def _run(engine, node: str, low: Mesh, high: Mesh, key: str, **widgets):
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": f"{key} low"}},
              "2": {"class_type": "TestTensor", "inputs": {"key": f"{key} high"}},
              "3": {"class_type": node, "inputs": {"low_poly": ["1", 0], "high_poly": ["2", 0], **widgets}}}
    return run_prompt(engine, prompt, {f"{key} low": low, f"{key} high": high}, sinks=[["3", 0]])


def _normal_map(engine, low, high, key, resolution=64, **extra):
    result = _run(engine, "BakeNormalMapFromMesh", low, high, key, resolution=resolution,
                  cage_distance=extra.get("cage_distance", 0.05), ignore_backfaces=True)
    assert result.status == "success", result.errors
    return result.value("3")


def test_declarations_follow_the_templates(image_engine):
    info = image_engine.object_info()
    normal = info["BakeNormalMapFromMesh"]["input"]["required"]
    assert list(normal) == ["low_poly", "high_poly", "resolution", "cage_distance", "ignore_backfaces"]
    assert normal["resolution"][1]["min"] == 64 and normal["resolution"][1]["max"] == 8192
    assert normal["cage_distance"][1]["default"] == 0.05 and normal["ignore_backfaces"][1]["default"] is True
    ao = info["BakeAmbientOcclusion"]["input"]["required"]
    # the template's widget values: [1024, 64, 0.71, 1, 0.01]
    assert list(ao) == ["low_poly", "high_poly", "resolution", "samples", "max_distance", "strength", "bias"]
    assert [ao[k][1]["default"] for k in list(ao)[2:]] == [1024, 64, 0.5, 1.0, 0.01]
    assert ao["samples"][1]["step"] == 4 and ao["bias"][1]["min"] == 0.0001
    apply = info["ApplyTextureToMesh"]
    assert list(apply["input"]["required"]) == ["mesh", "base_color"]
    assert list(apply["input"]["optional"]) == ["metallic", "roughness", "occlusion", "normal_map"]
    assert info["BakeNormalMapFromMesh"]["output_name"] == ["normal_map"]
    assert info["BakeAmbientOcclusion"]["output_name"] == ["occlusion"] and apply["output"] == ["MESH"]


def test_a_flat_plane_bakes_a_flat_normal_map(image_engine):
    image = _normal_map(image_engine, _plane(), _plane(), "flat")
    assert image.shape == (1, 64, 64, 3)
    assert torch.allclose(image[0], torch.tensor([0.5, 0.5, 1.0]).expand(64, 64, 3), atol=1e-5)


@pytest.mark.parametrize(("normal", "channel"), [((math.sin(0.3), 0, math.cos(0.3)), 0),
                                                 ((0, math.sin(0.3), math.cos(0.3)), 1)])
def test_tilted_high_poly_normals_land_on_their_tangent_axis(image_engine, normal, channel):
    image = _normal_map(image_engine, _plane(), _plane(normal), f"tilt {channel}", resolution=64)
    texel = image[0, 32, 32]
    assert texel[channel] == pytest.approx(0.5 + 0.5 * math.sin(0.3), abs=1e-4)  # +u is red, +v green (+Y)
    assert texel[1 - channel] == pytest.approx(0.5, abs=1e-4)
    assert texel[2] == pytest.approx(0.5 + 0.5 * math.cos(0.3), abs=1e-4)


def test_a_concave_corner_is_darker_than_an_open_face(image_engine):
    result = _run(image_engine, "BakeAmbientOcclusion", _corner(), _corner(), "corner", resolution=64, samples=32,
                  max_distance=0.5, strength=1.0, bias=0.01)
    assert result.status == "success", result.errors
    ao = result.value("3")[0]
    assert ao.shape == (64, 64, 3) and torch.allclose(ao[..., 0], ao[..., 2])
    row = ao[32, :, 0]  # floor: column 0 at the corner (x = 0) ... column 28 at x = 1
    assert row[0] < 0.65 and row[26] > 0.95 and row[1] < row[12] < row[26]
    assert row[36] < 0.65  # the wall's texels at the corner are dark too


def test_an_unwrapped_sphere_bakes_against_a_finer_sphere(image_engine):
    pytest.importorskip("xatlas")
    low = trimesh.creation.icosphere(1)
    high = trimesh.creation.icosphere(2)
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "sphere low"}},
              "2": {"class_type": "UnwrapMesh", "inputs": {"mesh": ["1", 0], "segmenter": "pec", "resolution": 64,
                                                           "padding": 1, "weld_distance": 0.0}},
              "3": {"class_type": "TestTensor", "inputs": {"key": "sphere high"}},
              "4": {"class_type": "BakeNormalMapFromMesh", "inputs": {"low_poly": ["2", 0], "high_poly": ["3", 0],
                                                                      "resolution": 64, "cage_distance": 0.05,
                                                                      "ignore_backfaces": True}},
              "5": {"class_type": "BakeAmbientOcclusion", "inputs": {"low_poly": ["2", 0], "high_poly": ["3", 0],
                                                                     "resolution": 64, "samples": 4,
                                                                     "max_distance": 0.5, "strength": 1.0,
                                                                     "bias": 0.01}}}
    tensors = {"sphere low": Mesh(torch.tensor(low.vertices, dtype=torch.float32)[None], torch.tensor(low.faces)[None]),
               "sphere high": Mesh(torch.tensor(high.vertices, dtype=torch.float32)[None],
                                   torch.tensor(high.faces)[None])}
    result = run_prompt(image_engine, prompt, tensors, sinks=[["4", 0], ["5", 0]])
    assert result.status == "success", result.errors
    normal, ao = result.value("4")[0], result.value("5")[0]
    decoded = normal * 2 - 1
    assert torch.allclose(decoded.norm(dim=-1), torch.ones(64, 64), atol=1e-4)  # unit normals everywhere
    assert decoded[..., 2].mean() > 0.95 and decoded[..., 2].min() > 0.7  # close to the low-poly normal
    assert float((decoded[..., 2] < 0.999).float().mean()) > 0.2  # but the finer sphere's curvature shows
    assert ao.min() > 0.99  # a convex sphere occludes nothing


def test_apply_texture_round_trips_through_save_glb(image_engine):
    base = torch.zeros(1, 16, 16, 3)
    base[..., 1] = 1.0
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "textured plane"}},
              "2": {"class_type": "BakeAmbientOcclusion", "inputs": {"low_poly": ["1", 0], "high_poly": ["1", 0],
                                                                     "resolution": 64, "samples": 4,
                                                                     "max_distance": 0.5, "strength": 1.0,
                                                                     "bias": 0.01}},
              "3": {"class_type": "BakeNormalMapFromMesh", "inputs": {"low_poly": ["1", 0], "high_poly": ["1", 0],
                                                                      "resolution": 64, "cage_distance": 0.05,
                                                                      "ignore_backfaces": True}},
              "4": {"class_type": "TestTensor", "inputs": {"key": "green"}},
              "5": {"class_type": "ApplyTextureToMesh", "inputs": {"mesh": ["1", 0], "base_color": ["4", 0],
                                                                   "occlusion": ["2", 0], "normal_map": ["3", 0]}},
              "6": {"class_type": "SaveGLB", "inputs": {"mesh": ["5", 0], "filename_prefix": "3d/textured"}}}
    result = run_prompt(image_engine, prompt, {"textured plane": _plane(), "green": base})
    assert result.status == "success", result.errors
    (saved,) = result.outputs["6"]["3d"]
    path = image_engine.services.paths.output_dir / "3d" / saved["filename"]
    back = trimesh.load(io.BytesIO(path.read_bytes()), file_type="glb", force="mesh", process=False)
    assert np.allclose(back.visual.uv, _plane().uvs[0].numpy())
    material = back.visual.material
    assert np.all(np.asarray(material.baseColorTexture)[..., :3] == [0, 255, 0])
    assert np.asarray(material.normalTexture).shape == (64, 64, 3)
    orm = np.asarray(material.metallicRoughnessTexture)
    assert orm.shape == (64, 64, 3) and np.all(orm[..., 0] == 255)  # an open plane: no occlusion
    assert material.occlusionTexture is not None


def test_bad_inputs_are_refused(image_engine):
    plain = Mesh(_plane().vertices, _plane().faces)
    result = _run(image_engine, "BakeAmbientOcclusion", plain, _plane(), "no uvs", resolution=64, samples=4,
                  max_distance=0.5, strength=1.0, bias=0.01)
    assert result.status == "error" and "`low_poly` has no UVs" in result.errors[0]["exception_message"]
    two = Mesh(torch.cat([_plane().vertices] * 3), torch.cat([_plane().faces] * 3))
    batch = Mesh(torch.cat([_plane().vertices] * 2), torch.cat([_plane().faces] * 2), uvs=torch.cat([_plane().uvs] * 2))
    result = _run(image_engine, "BakeNormalMapFromMesh", batch, two, "batches", resolution=64, cage_distance=0.05,
                  ignore_backfaces=True)
    assert result.status == "error" and "`high_poly` must hold one mesh or one per" in result.errors[0]["exception_message"]
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "plain plane"}},
              "2": {"class_type": "TestTensor", "inputs": {"key": "white"}},
              "3": {"class_type": "ApplyTextureToMesh", "inputs": {"mesh": ["1", 0], "base_color": ["2", 0]}}}
    result = run_prompt(image_engine, prompt, {"plain plane": plain, "white": torch.ones(1, 4, 4, 3)}, sinks=[["3", 0]])
    assert result.status == "error" and "`mesh` has no UVs" in result.errors[0]["exception_message"]


class _Field:
    """A sparse voxel colour field as TRELLIS-style decoders give it."""

    def __init__(self, coords, feats, resolution):
        self.coords, self.feats, self.resolution = torch.tensor(coords), torch.tensor(feats), resolution


def test_paint_mesh_takes_the_nearest_voxel_colour_in_linear_light(image_engine):
    box = trimesh.creation.box(extents=(0.8, 0.8, 0.8))  # vertices at ±0.4
    cubes = Mesh(torch.tensor(np.stack([box.vertices] * 2), dtype=torch.float32), torch.tensor(np.stack([box.faces] * 2)))
    # a 4³ grid: batch 0 is red on the -x side and sRGB grey 0.5 on the +x side; batch 1 has no voxels
    coords = [[0, x, y, z] for x in range(4) for y in range(4) for z in range(4)]
    feats = [[1.0, 0.0, 0.0, 0.3] if c[1] < 2 else [0.5, 0.5, 0.5, 0.3] for c in coords]
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "two boxes"}},
              "2": {"class_type": "TestTensor", "inputs": {"key": "field"}},
              "3": {"class_type": "PaintMesh", "inputs": {"mesh": ["1", 0], "voxel_colors": ["2", 0]}}}
    result = run_prompt(image_engine, prompt, {"two boxes": cubes, "field": _Field(coords, feats, 4)}, sinks=[["3", 0]])
    assert result.status == "success", result.errors
    painted = result.value("3")
    colors, verts = painted.colors[0], painted.vertices[0]
    left = verts[:, 0] < 0
    assert torch.allclose(colors[left], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(colors[~left], torch.full((int((~left).sum()), 3), 0.21404), atol=1e-4)  # sRGB 0.5
    assert torch.all(painted.colors[1] == 0)  # no voxels for batch 1: black
    bad = {"1": {"class_type": "TestTensor", "inputs": {"key": "two boxes"}},
           "2": {"class_type": "TestTensor", "inputs": {"key": "dense grid"}},
           "3": {"class_type": "PaintMesh", "inputs": {"mesh": ["1", 0], "voxel_colors": ["2", 0]}}}
    result = run_prompt(image_engine, bad, {"two boxes": cubes, "dense grid": torch.zeros(1, 4, 4, 4)},
                        sinks=[["3", 0]])
    assert result.status == "error" and "`voxel_colors` must be a sparse voxel field" in result.errors[0]["exception_message"]
