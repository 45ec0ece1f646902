"""BakeTextureFromVoxel through the engine: a cube with one UV rectangle per side bakes a field whose
colour is its position to the surface point of known texels (trilinear, exact for a linear field),
metallic / roughness from channels 3 and 4, uncovered texels from the nearest covered one, a
reference mesh moves texels onto its surface, batches read their own voxels, bad inputs are refused,
and the template's UnwrapMesh → BakeTextureFromVoxel → ApplyTextureToMesh → SaveGLB chain runs."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.ops.mesh import Mesh
from nodeloom.ops.mesh_voxel_bake import closest_points, sample_voxels
from tests.nodes.conftest import run_prompt

trimesh = pytest.importorskip("trimesh")
pytest.importorskip("scipy")

#: (normal, a, b) per cube side, a × b = normal so the quads face outwards
_SIDES = [((1, 0, 0), (0, 1, 0), (0, 0, 1)), ((-1, 0, 0), (0, 0, 1), (0, 1, 0)),
          ((0, 1, 0), (0, 0, 1), (1, 0, 0)), ((0, -1, 0), (1, 0, 0), (0, 0, 1)),
          ((0, 0, 1), (1, 0, 0), (0, 1, 0)), ((0, 0, -1), (0, 1, 0), (1, 0, 0))]
_MARGIN = 0.02
_RES = 8  # the voxel grid
_SIZE = 64  # the maps


def _rect(side: int) -> tuple[float, float, float, float]:
    """The UV rectangle (u0, v0, u1, v1) of a side: a 3 × 2 grid of cells, inset by the margin."""
    u0, v0 = (side % 3) / 3, (side // 3) / 2
    return u0 + _MARGIN, v0 + _MARGIN, u0 + 1 / 3 - _MARGIN, v0 + 0.5 - _MARGIN


def _cube(half: float = 0.3) -> Mesh:
    verts, uvs, faces = [], [], []
    for side, (n, a, b) in enumerate(_SIDES):
        n, a, b = map(np.array, (n, a, b))
        u0, v0, u1, v1 = _rect(side)
        for sa, sb in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            verts.append(half * (n + sa * a + sb * b))
            uvs.append((u0 if sa < 0 else u1, v0 if sb < 0 else v1))
        k = 4 * side
        faces += [[k, k + 1, k + 2], [k, k + 2, k + 3]]
    return Mesh(torch.tensor(np.array(verts), dtype=torch.float32)[None], torch.tensor(faces)[None],
                uvs=torch.tensor(uvs, dtype=torch.float32)[None])


def _texel_point(side: int, fu: float, fv: float, half: float = 0.3) -> tuple[int, int, np.ndarray]:
    """The texel near fraction (fu, fv) of a side's rectangle, and the surface point at its centre."""
    u0, v0, u1, v1 = _rect(side)
    col, row = int((u0 + fu * (u1 - u0)) * _SIZE), int((1 - (v0 + fv * (v1 - v0))) * _SIZE)
    u, v = (col + 0.5) / _SIZE, 1 - (row + 0.5) / _SIZE
    n, a, b = map(np.array, _SIDES[side])
    point = half * (n + (2 * (u - u0) / (u1 - u0) - 1) * a + (2 * (v - v0) / (v1 - v0) - 1) * b)
    return row, col, point


def _expected_colour(point: np.ndarray) -> np.ndarray:
    """The colour of the linear field of ``_Field.linear`` at a point: its grid coordinate / 7."""
    return ((point + 0.5) * _RES - 0.5) / (_RES - 1)


class _Field:
    """A sparse voxel field as TRELLIS-style decoders give it."""

    def __init__(self, coords, feats, resolution=_RES):
        self.coords = torch.as_tensor(np.asarray(coords), dtype=torch.int32)
        self.feats = torch.as_tensor(np.asarray(feats), dtype=torch.float32)
        self.resolution = resolution

    @staticmethod
    def linear(batch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Every voxel of the grid, coloured by its index / 7, metallic 0.25, roughness 0.75."""
        index = np.stack(np.meshgrid(*[np.arange(_RES)] * 3, indexing="ij"), -1).reshape(-1, 3)
        feats = np.concatenate([index / (_RES - 1), np.full((len(index), 1), 0.25), np.full((len(index), 1), 0.75),
                                np.ones((len(index), 1))], 1)
        if batch is not None:
            index = np.concatenate([np.full((len(index), 1), batch), index], 1)
        return index, feats


def _bake(engine, mesh, field, key, reference=None, size=_SIZE):
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": f"{key} mesh"}},
              "2": {"class_type": "TestTensor", "inputs": {"key": f"{key} field"}},
              "3": {"class_type": "BakeTextureFromVoxel",
                    "inputs": {"mesh": ["1", 0], "voxel_colors": ["2", 0], "texture_size": size}}}
    tensors = {f"{key} mesh": mesh, f"{key} field": field}
    if reference is not None:
        prompt["4"] = {"class_type": "TestTensor", "inputs": {"key": f"{key} reference"}}
        prompt["3"]["inputs"]["reference_mesh"] = ["4", 0]
        tensors[f"{key} reference"] = reference
    return run_prompt(engine, prompt, tensors, sinks=[["3", 0], ["3", 1], ["3", 2]])


def _maps(result):
    assert result.status == "success", result.errors
    return result.value("3", 0), result.value("3", 1), result.value("3", 2)


def test_declaration_follows_the_doc_and_template(image_engine):
    info = image_engine.object_info()["BakeTextureFromVoxel"]
    assert info["display_name"] == "Bake Texture From Voxel" and info["category"] == "3d"
    required = info["input"]["required"]
    assert list(required) == ["mesh", "voxel_colors", "texture_size"]
    assert required["mesh"][0] == "MESH" and required["voxel_colors"][0] == "VOXEL"
    size = required["texture_size"][1]
    assert (size["default"], size["min"], size["max"], size["display_name"]) == (2048, 64, 8192, "resolution")
    assert info["input"]["optional"]["reference_mesh"][0] == "MESH"
    assert info["output"] == ["IMAGE"] * 3 and info["output_name"] == ["base_color", "metallic", "roughness"]


def test_known_texels_take_the_field_at_their_surface_point(image_engine):
    base, metallic, roughness = _maps(_bake(image_engine, _cube(), _Field(*_Field.linear()), "linear"))
    assert base.shape == metallic.shape == roughness.shape == (1, _SIZE, _SIZE, 3)
    for side in range(6):
        for fu, fv in ((0.5, 0.5), (0.2, 0.8), (0.9, 0.1)):
            row, col, point = _texel_point(side, fu, fv)
            assert base[0, row, col].numpy() == pytest.approx(_expected_colour(point), abs=1e-5), (side, fu, fv)
    assert torch.allclose(metallic, torch.full_like(metallic, 0.25))
    assert torch.allclose(roughness, torch.full_like(roughness, 0.75))
    # the +x side is red = x: its texels all share one red value, the -x side another
    _, _, plus = _texel_point(0, 0.5, 0.5)
    assert float(base[0, _texel_point(0, 0.1, 0.9)[0], _texel_point(0, 0.1, 0.9)[1], 0]) == pytest.approx(
        _expected_colour(plus)[0], abs=1e-5)


def test_uncovered_texels_copy_the_nearest_covered_one(image_engine):
    base, _, _ = _maps(_bake(image_engine, _cube(), _Field(*_Field.linear()), "gaps"))
    # texel (0, 0) lies in the margin; its nearest covered texel is (1, 1) (u >= 0.02, v <= 0.98)
    assert torch.equal(base[0, 0, 0], base[0, 1, 1])
    assert not torch.equal(base[0, 1, 1], base[0, 2, 2])  # the field does vary there
    # the gap between the two top cells takes the side nearer to each texel
    row = _SIZE // 4
    left, right = int((1 / 3 - _MARGIN) * _SIZE) - 1, int((1 / 3 + _MARGIN) * _SIZE) + 1
    gap = int(1 / 3 * _SIZE)
    assert torch.equal(base[0, row, gap - 1], base[0, row, left]) or torch.equal(base[0, row, gap - 1],
                                                                                  base[0, row, left + 1])
    assert torch.equal(base[0, row, gap + 1], base[0, row, right]) or torch.equal(base[0, row, gap + 1],
                                                                                   base[0, row, right - 1])
    assert float(base.min()) > 0.0  # nothing left black


def test_a_reference_mesh_moves_texels_onto_its_surface(image_engine):
    base, _, _ = _maps(_bake(image_engine, _cube(0.3), _Field(*_Field.linear()), "reference", reference=_cube(0.32)))
    for side in range(6):
        for fu, fv in ((0.5, 0.5), (0.2, 0.7)):
            row, col, point = _texel_point(side, fu, fv, 0.3)
            # the reference cube's closest point: straight out along the side's normal, 0.02 further
            expected = _expected_colour(point + np.array(_SIDES[side][0]) * 0.02)
            assert base[0, row, col].numpy() == pytest.approx(expected, abs=1e-5), (side, fu, fv)


def test_batches_read_their_own_voxels_and_empty_items_are_black(image_engine):
    cube = _cube()
    three = Mesh(torch.cat([cube.vertices] * 3), torch.cat([cube.faces] * 3), uvs=torch.cat([cube.uvs] * 3))
    coords0, feats0 = _Field.linear(batch=0)
    coords1 = np.concatenate([np.ones((_RES ** 3, 1), dtype=np.int64), coords0[:, 1:]], 1)
    feats1 = np.tile([[0.2, 0.4, 0.6]], (_RES ** 3, 1))  # colour only: black metallic and roughness
    field = _Field(np.concatenate([coords0, coords1]), np.concatenate([feats0[:, :3], feats1]))
    base, metallic, roughness = _maps(_bake(image_engine, three, field, "batch"))
    assert base.shape == (3, _SIZE, _SIZE, 3)
    row, col, point = _texel_point(2, 0.5, 0.5)
    assert base[0, row, col].numpy() == pytest.approx(_expected_colour(point), abs=1e-5)
    assert torch.allclose(base[1], torch.tensor([0.2, 0.4, 0.6]).expand(_SIZE, _SIZE, 3))
    assert torch.all(base[2] == 0)  # no voxels of batch 2
    assert torch.all(metallic == 0) and torch.all(roughness == 0)  # three channels: no metallic or roughness


def test_sparse_neighbours_renormalise_and_far_points_take_the_nearest_voxel():
    coords = np.array([[3, 3, 3], [4, 3, 3]])
    feats = np.array([[0.0, 1.0], [1.0, 1.0]])
    centre = lambda x: (x + 0.5) / 8 - 0.5  # noqa: E731
    points = np.array([[centre(3.25), centre(3.0), centre(3.4)],   # between the two voxels in x
                       [centre(0.0), centre(0.0), centre(0.0)]])  # far from both
    out = sample_voxels(points, coords, feats, 8)
    assert out[0] == pytest.approx([0.25, 1.0])  # absent neighbours in y and z carry no weight
    assert out[1] == pytest.approx([0.0, 1.0])  # the nearest voxel


def test_closest_points_on_a_box_are_its_clamped_coordinates():
    box = trimesh.creation.box(extents=(0.6, 0.6, 0.6))
    rng = np.random.default_rng(3)
    points = rng.uniform(-0.6, 0.6, (4000, 3))
    points = points[np.abs(points).max(1) > 0.3]  # outside: faces, edges and corners all nearest somewhere
    found = closest_points(points, np.asarray(box.vertices), np.asarray(box.faces))
    assert np.abs(found - np.clip(points, -0.3, 0.3)).max() < 1e-12
    corner = np.sum(np.abs(points) > 0.3, axis=1) == 3
    assert corner.sum() > 100  # corner regions were exercised


def test_bad_inputs_are_refused(image_engine):
    field = _Field(*_Field.linear())
    plain = Mesh(_cube().vertices, _cube().faces)
    result = _bake(image_engine, plain, field, "no uvs")
    assert result.status == "error" and "`mesh` has no UVs" in result.errors[0]["exception_message"]
    result = _bake(image_engine, _cube(), torch.zeros(1, 8, 8, 8), "dense")
    assert result.status == "error" and "`voxel_colors` must be a sparse voxel field" in \
        result.errors[0]["exception_message"]
    two = Mesh(torch.cat([_cube().vertices] * 2), torch.cat([_cube().faces] * 2))
    result = _bake(image_engine, _cube(), field, "refs", reference=Mesh(torch.cat([two.vertices] * 2),
                                                                        torch.cat([two.faces] * 2)))
    assert result.status == "error" and "`reference_mesh` must hold one mesh or one per" in \
        result.errors[0]["exception_message"]
    coords, feats = _Field.linear()
    result = _bake(image_engine, _cube(), _Field(coords + 1, feats), "outside")
    assert result.status == "error" and "`voxel_colors` coordinates must lie in 0..7" in \
        result.errors[0]["exception_message"]
    with pytest.raises(ValidationError) as refused:
        _bake(image_engine, _cube(), field, "small", size=32)
    assert "texture_size" in json.dumps(refused.value.node_errors)


def _template_widgets() -> dict[str, list]:
    spec = importlib.util.find_spec("comfyui_workflow_templates_json")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the official templates are not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "templates" / "3d_pixal3d_trellis2_image_to_model.json"
    found = {}
    for node in json.loads(path.read_text(encoding="utf-8"))["nodes"]:
        if node["type"] in ("UnwrapMesh", "BakeTextureFromVoxel") and node["type"] not in found:
            found[node["type"]] = node["widgets_values"]
    return found


def test_the_templates_voxel_texturing_chain_saves_a_textured_glb(image_engine):
    pytest.importorskip("xatlas")
    widgets = _template_widgets()
    assert widgets == {"UnwrapMesh": ["pec", 2048, 1, 0.0002], "BakeTextureFromVoxel": [2048]}
    sphere = trimesh.creation.icosphere(1, radius=0.3)
    mesh = Mesh(torch.tensor(sphere.vertices, dtype=torch.float32)[None], torch.tensor(sphere.faces)[None])
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "voxel sphere"}},
              "2": {"class_type": "TestTensor", "inputs": {"key": "voxel field"}},
              "196": {"class_type": "UnwrapMesh", "inputs": {"mesh": ["1", 0], "segmenter": "pec", "resolution": 64,
                                                             "padding": 1, "weld_distance": 0.0002}},
              "197": {"class_type": "BakeTextureFromVoxel",
                      "inputs": {"mesh": ["196", 0], "voxel_colors": ["2", 0], "reference_mesh": ["1", 0],
                                 "texture_size": 64}},
              "210": {"class_type": "ApplyTextureToMesh",
                      "inputs": {"mesh": ["196", 0], "base_color": ["197", 0], "metallic": ["197", 1],
                                 "roughness": ["197", 2]}},
              "6": {"class_type": "SaveGLB", "inputs": {"mesh": ["210", 0], "filename_prefix": "3d/voxel"}}}
    result = run_prompt(image_engine, prompt, {"voxel sphere": mesh, "voxel field": _Field(*_Field.linear())},
                        sinks=[["196", 0], ["197", 0]])
    assert result.status == "success", result.errors
    (saved,) = result.outputs["6"]["3d"]
    path = image_engine.services.paths.output_dir / "3d" / saved["filename"]
    back = trimesh.load(io.BytesIO(path.read_bytes()), file_type="glb", force="mesh", process=False)
    material = back.visual.material
    texture = np.asarray(material.baseColorTexture)[..., :3].astype(np.float64) / 255
    assert texture.shape == (64, 64, 3)
    orm = np.asarray(material.metallicRoughnessTexture)
    assert np.all(np.abs(orm[..., 1] - 0.75 * 255) <= 1) and np.all(np.abs(orm[..., 2] - 0.25 * 255) <= 1)
    # each vertex's texel holds the field's colour at that vertex
    unwrapped = result.value("196")
    uv, verts = unwrapped.uvs[0].numpy(), unwrapped.vertices[0].numpy()
    cols = np.clip((uv[:, 0] * 64).astype(int), 0, 63)
    rows = np.clip(((1 - uv[:, 1]) * 64).astype(int), 0, 63)
    baked = result.value("197")[0].numpy()[rows, cols]
    assert np.abs(baked - _expected_colour(verts)).max() < 0.05
    assert np.abs(texture[rows, cols] - baked).max() <= 1 / 255 + 1e-6
