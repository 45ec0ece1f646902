"""DecimateMesh through the engine, and the QEM edge collapse on trimesh primitives: face targets,
closed and consistently wound results, shape kept, placement modes and their options, batches,
colours, and the face summary on the node."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.ops.mesh import Mesh
from nodeloom.ops.mesh_decimate import decimate_item, decimate_mesh
from nodeloom.nodes.mesh.decimate import face_summary
from tests.nodes.conftest import run_prompt

trimesh = pytest.importorskip("trimesh")


def _sphere(subdivisions: int = 2):
    return trimesh.creation.icosphere(subdivisions=subdivisions)


def _as_mesh(t) -> Mesh:
    return Mesh(torch.tensor(t.vertices, dtype=torch.float32)[None], torch.tensor(t.faces)[None])


@pytest.mark.parametrize("placement", ["midpoint", "qem"])
def test_sphere_reaches_the_target_closed_and_round(placement):
    sphere = _sphere()
    v, f, _ = decimate_item(sphere.vertices, sphere.faces, 120, placement)
    out = trimesh.Trimesh(v, f, process=False)
    assert 110 <= len(f) <= 120 and out.is_watertight and out.is_winding_consistent
    radii = np.linalg.norm(v, axis=1)
    assert radii.min() > 0.9 and radii.max() < 1.01 and out.volume > 0.85 * sphere.volume
    assert len(np.unique(f)) == len(v)  # no unused vertices


def test_qem_recovers_a_subdivided_box_exactly():
    box = trimesh.creation.box().subdivide().subdivide()
    v, f, _ = decimate_item(box.vertices, box.faces, 12, "qem", clamp_v_to_edge=False)
    assert len(f) == 12 and np.allclose(np.abs(v), 0.5, atol=1e-6)
    assert trimesh.Trimesh(v, f).volume == pytest.approx(1.0, abs=1e-6)


def test_feature_and_line_weights_keep_the_box():
    box = trimesh.creation.box().subdivide().subdivide()
    off_box = lambda v: float(np.abs(np.abs(v).max(axis=1) - 0.5).max())  # noqa: E731 - distance off the surface
    creased, fc, _ = decimate_item(box.vertices, box.faces, 40, "qem", feature_edge_quadric_weight=100.0)
    assert off_box(creased) < 1e-6 and len(fc) <= 40
    lined, fl, _ = decimate_item(box.vertices, box.faces, 40, "qem", line_quadric_weight=1.0,
                                 feature_edge_quadric_weight=10.0, feature_edge_min_dihedral_deg=45.0)
    # line quadrics trade a little plane error for staying near the old edges: close, not exact
    assert off_box(lined) < 0.05 and len(fl) <= 40 and trimesh.Trimesh(lined, fl, process=False).is_watertight
    assert not np.allclose(np.sort(lined, axis=0)[:len(creased)], np.sort(creased, axis=0)[:len(lined)])


def test_unwelded_input_is_welded_and_colours_follow():
    sphere = _sphere(1)
    soup_v = sphere.vertices[sphere.faces].reshape(-1, 3)  # every face with its own corners
    soup_f = np.arange(len(soup_v)).reshape(-1, 3)
    colors = np.repeat([[1.0, 0.0, 0.0]], len(soup_v), axis=0)
    v, f, c = decimate_item(soup_v, soup_f, 40, "midpoint", colors=colors)
    assert trimesh.Trimesh(v, f, process=False).is_watertight and c.shape == (len(v), 3) and np.allclose(c, [1, 0, 0])


def test_batches_targets_and_errors():
    small, big = _sphere(1), _sphere(2)
    batch = Mesh(torch.zeros(2, len(big.vertices), 3), torch.zeros(2, len(big.faces), 3, dtype=torch.long),
                 vertex_counts=(len(small.vertices), len(big.vertices)), face_counts=(len(small.faces), len(big.faces)))
    batch.vertices[0, :len(small.vertices)] = torch.tensor(small.vertices, dtype=torch.float32)
    batch.vertices[1] = torch.tensor(big.vertices, dtype=torch.float32)
    batch.faces[0, :len(small.faces)] = torch.tensor(small.faces)
    batch.faces[1] = torch.tensor(big.faces)
    out = decimate_mesh(batch, 100)
    assert out.counts(0) == (len(small.vertices), 80)  # already under the target: unchanged
    assert out.counts(1)[1] <= 100
    assert decimate_mesh(batch, 0) .counts(1)[1] == len(big.faces)
    with pytest.raises(ValidationError, match="placement_mode"):
        decimate_item(big.vertices, big.faces, 10, "nearest")
    with pytest.raises(ValidationError, match="target_face_count"):
        decimate_mesh(batch, -1)


def test_face_summary():
    assert face_summary(1_230_000, 200_000) == "faces: 1.23M → 200K (-84%)"
    assert face_summary(320, 320) == "faces: 320 → 320 (+0%)"


def test_through_the_engine(image_engine):
    info = image_engine.object_info("DecimateMesh")["DecimateMesh"]
    required = info["input"]["required"]
    assert list(required) == ["mesh", "target_face_count", "placement_mode"]
    assert required["target_face_count"][1]["default"] == 200000 and required["target_face_count"][1]["max"] == 50000000
    modes = required["placement_mode"][1]["options"]
    assert [m["key"] for m in modes] == ["midpoint", "qem"]
    assert modes[1]["inputs"]["optional"]["feature_edge_min_dihedral_deg"][1]["default"] == 30.0
    assert info["output"] == ["MESH"] and info["output_name"] == ["mesh"]
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "sphere"}},
              "2": {"class_type": "DecimateMesh", "inputs": {"mesh": ["1", 0], "target_face_count": 100,
                                                             "placement_mode": "midpoint"}},
              "3": {"class_type": "DecimateMesh", "inputs": {"mesh": ["1", 0], "target_face_count": 100,
                                                             "placement_mode": "qem",
                                                             "placement_mode.line_quadric_weight": 0.5,
                                                             "placement_mode.clamp_v_to_edge": False}}}
    result = run_prompt(image_engine, prompt, {"sphere": _as_mesh(_sphere())}, sinks=[["2", 0], ["3", 0]])
    assert result.status == "success", result.errors
    for node in ("2", "3"):
        mesh = result.value(node)
        assert mesh.counts(0)[1] <= 100
        assert result.outputs[node]["text"][0].startswith("faces: 320 → ")
