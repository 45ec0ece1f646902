"""UnwrapMesh and RenderUVAtlas on a cube and a sphere: UVs in [0, 1] without overlapping charts,
every face drawn in the atlas, seams duplicated, colours kept, welding, and refused inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nodeloom.ops.mesh import Mesh
from nodeloom.ops.mesh_uv import BACKGROUND, chart_labels, dilate, rasterize_uv, uv_coverage, weld
from tests.nodes.conftest import run_prompt

trimesh = pytest.importorskip("trimesh")
pytest.importorskip("xatlas")


def _mesh(tm, colors: bool = False) -> Mesh:
    v = torch.tensor(tm.vertices, dtype=torch.float32)[None]
    c = torch.rand(1, v.shape[1], 3, generator=torch.Generator().manual_seed(0)) if colors else None
    return Mesh(v, torch.tensor(tm.faces)[None], colors=c)


def _unwrap(engine, key: str, mesh: Mesh, **widgets):
    inputs = {"segmenter": "pec", "resolution": 256, "padding": 2, "weld_distance": 0.0, **widgets}
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": key}},
              "2": {"class_type": "UnwrapMesh", "inputs": {"mesh": ["1", 0], **inputs}},
              "3": {"class_type": "RenderUVAtlas", "inputs": {"mesh": ["2", 0], "resolution": 128}}}
    result = run_prompt(engine, prompt, {key: mesh}, sinks=[["2", 0], ["3", 0]])
    assert result.status == "success", result.errors
    return result.value("2"), result.value("3")


def test_declarations_follow_the_templates(image_engine):
    info = image_engine.object_info()
    unwrap = info["UnwrapMesh"]["input"]["required"]
    # the template's widget values: ['pec', 2048, 1, 0.0002]
    assert list(unwrap) == ["mesh", "segmenter", "resolution", "padding", "weld_distance"]
    assert unwrap["segmenter"][0] == ["pec", "adaptive"] and unwrap["segmenter"][1]["default"] == "pec"
    assert {k: unwrap["resolution"][1][k] for k in ("default", "min", "max", "step")} == {
        "default": 1024, "min": 0, "max": 8192, "step": 256}
    assert unwrap["weld_distance"][1]["step"] == 0.0001 and unwrap["padding"][1]["max"] == 16
    atlas = info["RenderUVAtlas"]
    assert {k: atlas["input"]["required"]["resolution"][1][k] for k in ("default", "min", "max", "step")} == {
        "default": 1024, "min": 64, "max": 4096, "step": 64}
    assert atlas["output"] == ["IMAGE"] and atlas["display_name"] == "Render UV Atlas"
    assert info["UnwrapMesh"]["display_name"] == "Unwrap Mesh UVs" and info["UnwrapMesh"]["category"] == "3d"


@pytest.mark.parametrize("shape", ["cube", "sphere"])
def test_unwrap_packs_charts_in_the_unit_square_without_overlap(image_engine, shape):
    tm = trimesh.creation.box() if shape == "cube" else trimesh.creation.icosphere(2)
    mesh, image = _unwrap(image_engine, f"unwrap {shape}", _mesh(tm, colors=True))
    uvs, faces, verts = mesh.uvs[0].double().numpy(), mesh.faces[0].numpy(), mesh.vertices[0].numpy()
    assert uvs.min() >= 0.0 and uvs.max() <= 1.0
    assert verts.shape[0] >= tm.vertices.shape[0] and faces.shape[0] == tm.faces.shape[0]
    # same surface: every output vertex sits on an input vertex, and colours followed their vertex
    d = np.linalg.norm(verts[:, None] - tm.vertices[None], axis=-1)
    assert np.allclose(d.min(1), 0.0, atol=1e-6)
    assert mesh.colors is not None and mesh.colors.shape[1] == verts.shape[0]
    coverage = uv_coverage(uvs, faces, 256)
    assert coverage.max() == 1  # no texel centre lies inside two faces
    face_index, _ = rasterize_uv(uvs, faces, 256)
    assert set(np.unique(face_index[face_index >= 0])) == set(range(faces.shape[0]))
    # every face has a non-degenerate UV triangle with the 3D triangle's orientation kept consistent
    a, b, c = (uvs[faces[:, k]] for k in range(3))
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    assert np.all(np.abs(area) > 1e-8)
    assert image.shape == (1, 128, 128, 3)


def test_atlas_render_colours_each_chart_and_outlines_borders(image_engine):
    mesh, image = _unwrap(image_engine, "atlas cube", _mesh(trimesh.creation.box()))
    uvs, faces = mesh.uvs[0].double().numpy(), mesh.faces[0].numpy()
    labels = chart_labels(faces, uvs.shape[0])
    assert labels.max() + 1 >= 6  # a cube's six sides cannot share a flat chart
    pixels = image[0].numpy()
    face_index, _ = rasterize_uv(uvs, faces, 128)
    colours = {}
    for f in range(faces.shape[0]):
        texels = pixels[face_index == f]
        assert texels.shape[0] > 0  # every face is drawn
        inner = texels[texels.sum(-1) > 0]  # texels not on a black border
        colours.setdefault(labels[f], set()).update(map(tuple, np.round(inner, 4)))
    firsts = [sorted(c)[0] for c in colours.values()]
    assert len(set(firsts)) == len(colours)  # one distinct colour per chart
    background = pixels[face_index < 0]
    assert np.mean(np.all(np.isclose(background, BACKGROUND), axis=-1)) > 0.5  # dark grey outside the charts
    assert (pixels.sum(-1) == 0).any()  # borders in black


def test_weld_merges_a_split_cube_before_unwrapping(image_engine):
    box = trimesh.creation.box()
    split = Mesh(torch.tensor(box.vertices[box.faces].reshape(-1, 3), dtype=torch.float32)[None],
                 torch.arange(36).reshape(1, 12, 3))
    first, faces, kept = weld(split.vertices[0].double().numpy(), split.faces[0].numpy(), 1e-6)
    assert first.shape == (8,) and faces.shape == (12, 3) and kept.shape == (12,)
    mesh, _ = _unwrap(image_engine, "split cube", split, weld_distance=0.001)
    assert mesh.vertices.shape[1] < 36  # welded: charts span several faces


def test_degenerate_faces_are_dropped_and_batches_unwrap_per_item(image_engine):
    box = trimesh.creation.box()
    faces = np.concatenate([box.faces, [[0, 0, 1]]])
    items = Mesh(torch.tensor(np.stack([box.vertices, box.vertices * 2]), dtype=torch.float32),
                 torch.tensor(np.stack([faces, faces])))
    mesh, _ = _unwrap(image_engine, "batch of cubes", items)
    assert mesh.batch_size == 2 and mesh.counts(0)[1] == 12 and mesh.counts(1)[1] == 12


def test_dilate_grows_filled_texels():
    values = np.zeros((5, 5, 1))
    filled = np.zeros((5, 5), dtype=bool)
    values[2, 2], filled[2, 2] = 1.0, True
    out = dilate(values, filled, 1)
    assert out[1:4, 1:4].min() == 1.0 and out[0, 0, 0] == 0.0


def test_bad_inputs_are_refused(image_engine):
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "no uvs"}},
              "2": {"class_type": "RenderUVAtlas", "inputs": {"mesh": ["1", 0], "resolution": 64}}}
    result = run_prompt(image_engine, prompt, {"no uvs": _mesh(trimesh.creation.box())}, sinks=[["2", 0]])
    assert result.status == "error"
    assert "`mesh` has no UVs to render. Run UnwrapMesh first." in result.errors[0]["exception_message"]
    bad = {"1": {"class_type": "TestTensor", "inputs": {"key": "no uvs"}},
           "2": {"class_type": "UnwrapMesh", "inputs": {"mesh": ["1", 0], "segmenter": "lscm", "resolution": 256,
                                                        "padding": 1, "weld_distance": 0.0}},
           "sink": {"class_type": "TestSink", "inputs": {"value": ["2", 0]}}}
    checked = image_engine.validate(bad)
    assert not checked.ok and "segmenter" in str(checked.node_errors["2"])
