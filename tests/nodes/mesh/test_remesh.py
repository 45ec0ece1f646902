"""RemeshMesh: its declaration against ComfyUI's embedded docs and the templates' widget values,
and the narrow-band dual contouring on meshes built here (a sphere, a cube, overlapping and
edge-touching boxes, an open cup): closed output, distance to the surface, density, sharp corners,
the solid mode's lid, component filters, clean-up passes, colours, batches and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nodeloom.core.workflow_ui import to_api
from nodeloom.errors import ValidationError
from nodeloom.ops.mesh import Mesh
from nodeloom.ops.mesh_remesh import _inside_mesh, remesh_item, remesh_mesh
from tests.nodes.conftest import run_prompt

trimesh = pytest.importorskip("trimesh")
pytest.importorskip("scipy")


def _sphere(subdivisions: int = 4):
    s = trimesh.creation.icosphere(subdivisions=subdivisions)
    return s.vertices, s.faces


def _box(offset=(0.0, 0.0, 0.0)):
    b = trimesh.creation.box()
    return b.vertices + np.asarray(offset), b.faces


def _join(*parts):
    vs, fs, n = [], [], 0
    for v, f in parts:
        vs.append(v)
        fs.append(f + n)
        n += len(v)
    return np.concatenate(vs), np.concatenate(fs)


def _cup():
    """An open cylinder with a bottom (radius 0.5, height 1), a single sheet without thickness."""
    c = trimesh.creation.cylinder(radius=0.5, height=1.0, sections=48)
    top = (c.face_normals[:, 2] > 0.9) & (c.triangles_center[:, 2] > 0.49)
    return c.vertices, c.faces[~top]


def _edge_use(f):
    e = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    return np.unique(e, axis=0, return_counts=True)[1]


def _closed(v, f) -> bool:
    """Every edge shared by exactly two faces, consistently wound, positive volume."""
    m = trimesh.Trimesh(v, f, process=False)
    return bool((_edge_use(f) == 2).all() and m.is_winding_consistent and m.volume > 0)


def _laplacian(v, f) -> float:
    """Mean distance of a vertex from the mean of its neighbours."""
    e = np.unique(np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1), axis=0)
    total, count = np.zeros_like(v), np.zeros(len(v))
    for a, b in ((0, 1), (1, 0)):
        np.add.at(total, e[:, a], v[e[:, b]])
        np.add.at(count, e[:, a], 1)
    return float(np.linalg.norm(total / count[:, None] - v, axis=1).mean())


def _components(v, f) -> int:
    return len(trimesh.Trimesh(v, f, process=False).split(only_watertight=False))


# ------------------------------------------------------------------ declaration


def test_declaration_matches_the_embedded_doc(image_engine):
    info = image_engine.object_info("RemeshMesh")["RemeshMesh"]
    assert info["display_name"] == "Remesh Mesh (Narrow-Band DC)" and info["category"] == "3d"
    req = info["input"]["required"]
    assert list(req) == ["mesh", "resolution", "sign_mode", "band", "project_back", "fix_poles", "smooth_iters",
                         "drop_small_components", "precluster_max_verts"]
    assert req["mesh"][0] == "MESH"
    expect = {"resolution": ("INT", 512, 32, 2048, False), "band": ("FLOAT", 1.0, 0.5, 4.0, True),
              "project_back": ("FLOAT", 0.0, 0.0, 1.0, True), "smooth_iters": ("INT", 0, 0, 20, False),
              "drop_small_components": ("FLOAT", 0.01, 0.0, 0.5, True),
              "precluster_max_verts": ("INT", 20000000, 0, 100000000, True)}
    for name, (kind, default, lo, hi, advanced) in expect.items():
        opts = req[name][1]
        assert (req[name][0], opts["default"], opts["min"], opts["max"]) == (kind, default, lo, hi), name
        assert bool(opts.get("advanced")) == advanced, name
    assert req["fix_poles"][0] == "BOOLEAN" and req["fix_poles"][1]["default"] is False and req["fix_poles"][1]["advanced"]
    assert req["sign_mode"][0] == "COMFY_DYNAMICCOMBO_V3"
    modes = {m["key"]: m["inputs"]["optional"] for m in req["sign_mode"][1]["options"]}
    assert list(modes) == ["udf", "sdf", "solid"]
    assert list(modes["udf"]) == ["qef", "drop_inverted_components", "drop_enclosed_components"]
    assert all(spec[0] == "BOOLEAN" and spec[1]["default"] is False and spec[1]["advanced"] for spec in modes["udf"].values())
    assert list(modes["sdf"]) == ["qef", "manifold"]
    assert modes["sdf"]["qef"][1]["default"] is True and modes["sdf"]["manifold"][1]["default"] is False
    assert not modes["sdf"]["qef"][1].get("advanced") and not modes["sdf"]["manifold"][1].get("advanced")
    assert list(modes["solid"]) == ["fill", "qef"]
    fill = modes["solid"]["fill"][1]
    assert (modes["solid"]["fill"][0], fill["default"], fill["min"], fill["max"]) == ("FLOAT", 20.0, 0.0, 1000.0)
    assert not fill.get("advanced") and modes["solid"]["qef"][1]["default"] is False and modes["solid"]["qef"][1]["advanced"]
    assert info["output"] == ["MESH"] and info["output_name"] == ["mesh"]


def _template_node():
    """The RemeshMesh node of an official template (the widget values in input order), or a copy
    of the values they carry when the templates package is absent."""
    try:
        import comfyui_workflow_templates_json as pkg
    except ImportError:
        return [768, "solid", 20, False, 1, 0, False, 20, 0.01, 20000000]
    path = Path(pkg.__file__).parent / "templates" / "3d_pixal3d_multi_views.json"
    if not path.exists():
        return [768, "solid", 20, False, 1, 0, False, 20, 0.01, 20000000]
    wf = json.loads(path.read_text(encoding="utf-8"))
    nodes = wf.get("nodes", []) + [n for s in wf.get("definitions", {}).get("subgraphs", []) for n in s.get("nodes", [])]
    return next(n["widgets_values"] for n in nodes if n.get("type") == "RemeshMesh")


def test_template_widgets_convert_and_run(image_engine):
    widgets = list(_template_node())
    assert widgets[:2] == [768, "solid"]
    widgets[0] = 32  # the templates' 768 is far too slow for a test; everything else as they set it
    ui = {"last_node_id": 2, "last_link_id": 1, "links": [[1, 1, 0, 2, 0, "MESH"]], "nodes": [
        {"id": 1, "type": "TestTensor", "mode": 0, "inputs": [], "widgets_values": ["cup"],
         "outputs": [{"name": "value", "type": "*", "links": [1]}]},
        {"id": 2, "type": "RemeshMesh", "mode": 0, "widgets_values": widgets,
         "inputs": [{"name": "mesh", "type": "MESH", "link": 1}], "outputs": [{"name": "mesh", "type": "MESH", "links": []}]},
    ]}
    prompt = to_api(ui, lambda t: image_engine.registry.get(t).INPUT_TYPES() if image_engine.registry.get(t) else None)
    assert prompt["2"]["inputs"] == {"mesh": ["1", 0], "resolution": 32, "sign_mode": "solid", "sign_mode.fill": 20,
                                     "sign_mode.qef": False, "band": 1, "project_back": 0, "fix_poles": False,
                                     "smooth_iters": 20, "drop_small_components": 0.01,
                                     "precluster_max_verts": 20000000}
    v, f = _sphere(3)
    mesh = Mesh(torch.tensor(v, dtype=torch.float32)[None], torch.tensor(f)[None])
    result = run_prompt(image_engine, prompt, {"cup": mesh}, sinks=[["2", 0]])
    assert result.status == "success", result.errors
    out = result.value("2")
    ov, of = out.vertices[0].double().numpy(), out.faces[0].numpy()
    assert _closed(ov, of) and _components(ov, of) == 1
    r = np.linalg.norm(ov, axis=1)
    assert 0.98 < r.min() and r.max() < 1.1  # smoothed, about half a voxel (0.031) out
    assert result.outputs["2"]["text"][0].startswith("faces: 1.28K → ")


# ------------------------------------------------------------------ the three modes


@pytest.mark.parametrize("mode", ["sdf", "solid"])
def test_closed_and_near_the_surface(mode):
    v, f = _sphere()
    h = 2.0 / 32
    ov, of, _ = remesh_item(v, f, 32, mode)
    assert _closed(ov, of) and _components(ov, of) == 1
    r = np.linalg.norm(ov, axis=1) - 1.0
    if mode == "sdf":
        assert np.abs(r).max() < 0.25 * h
    else:  # the solid's surface sits about half a voxel out
        assert r.min() > -0.05 * h and r.max() < 1.5 * h and 0.3 * h < r.mean() < 1.0 * h
    snapped, sf, _ = remesh_item(v, f, 32, mode, project_back=1.0)
    assert np.abs(np.linalg.norm(snapped, axis=1) - 1.0).max() < 0.01 and _closed(snapped, sf)


def test_udf_is_a_shell_band_voxels_out_and_its_inner_part_can_go():
    v, f = _sphere(3)
    h = 2.0 / 32
    ov, of, _ = remesh_item(v, f, 32, "udf", band=1.5)
    assert (_edge_use(of) == 2).all() and _components(ov, of) == 2
    r = np.linalg.norm(ov, axis=1)
    outer, inner = r[r > 1], r[r < 1]
    assert np.abs(outer - (1 + 1.5 * h)).max() < 0.3 * h and np.abs(inner - (1 - 1.5 * h)).max() < 0.3 * h
    for options in ({"drop_inverted_components": True}, {"drop_enclosed_components": True},
                    {"drop_enclosed_components": True, "qef": True}):
        kept, kf, _ = remesh_item(v, f, 32, "udf", band=1.5, **options)
        assert _components(kept, kf) == 1 and np.linalg.norm(kept, axis=1).min() > 1.0, options
        assert _closed(kept, kf)


def test_messy_winding_udf_and_solid_still_give_one_closed_surface():
    v, f = _sphere(3)
    f = f.copy()
    f[::2] = f[::2, ::-1]  # every other face flipped: no consistent winding
    f = np.concatenate([f, f[:100]])  # and some faces twice
    shell, sf, _ = remesh_item(v, f, 32, "udf", drop_inverted_components=True)
    assert _closed(shell, sf) and _components(shell, sf) == 1
    assert np.linalg.norm(shell, axis=1).min() > 1.0
    solid, of, _ = remesh_item(v, f, 32, "solid")
    assert _closed(solid, of) and _components(solid, of) == 1
    assert np.abs(np.linalg.norm(solid, axis=1) - 1.0).max() < 2.0 / 32 * 1.5
    v, f = _sphere(3)
    soup_v = v[f].reshape(-1, 3)  # every face with its own corners (as UV seams leave a mesh)
    soup, sf, _ = remesh_item(soup_v, np.arange(len(soup_v)).reshape(-1, 3), 32, "sdf")
    assert _closed(soup, sf) and np.abs(np.linalg.norm(soup, axis=1) - 1.0).max() < 0.02


def test_face_count_grows_with_resolution():
    v, f = _sphere()
    counts = [len(remesh_item(v, f, res, "sdf")[1]) for res in (32, 64)]
    assert 3.5 < counts[1] / counts[0] < 4.5


def test_qef_recovers_the_cube_corners():
    v, f = _box()
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])

    def corner_error(out):
        return np.linalg.norm(out[:, None] - corners[None], axis=2).min(axis=0).max()

    sharp, sf, _ = remesh_item(v, f, 32, "sdf")  # qef on by default in sdf
    blunt, _, _ = remesh_item(v, f, 32, "sdf", qef=False)
    assert corner_error(sharp) < 1e-6 and _closed(sharp, sf)
    assert np.abs(np.abs(sharp).max(axis=1) - 0.5).max() < 1e-6  # every vertex on the cube
    assert corner_error(blunt) > 0.01
    assert trimesh.Trimesh(sharp, sf).volume == pytest.approx(1.0, abs=1e-6)


def test_manifold_splits_cells_where_two_boxes_touch_along_an_edge():
    v, f = _join(_box(), _box((1.0, 1.0, 0.0)))
    _, plain_f, _ = remesh_item(v, f, 33, "sdf")
    mv, mf, _ = remesh_item(v, f, 33, "sdf", manifold=True)
    assert (_edge_use(plain_f) > 2).any()  # one vertex per cell: the shared edge is non-manifold
    assert (_edge_use(mf) == 2).all() and len(mf) == len(plain_f) and len(mv) > len(np.unique(plain_f))


def test_solid_merges_overlapping_boxes():
    v, f = _join(_box(), _box((0.5, 0.5, 0.3)))  # two closed boxes intersecting each other
    ov, of, _ = remesh_item(v, f, 32, "solid")
    assert _closed(ov, of) and _components(ov, of) == 1
    union = 2.0 - 0.5 * 0.5 * 0.7
    assert union < trimesh.Trimesh(ov, of).volume < union * 1.15
    inside = _inside_mesh(np.array([[0.0, 0.0, 0.0], [0.3, 0.3, 0.2], [0.5, 0.5, 0.3], [2.0, 0.0, 0.0]]), ov, of)
    assert inside.tolist() == [True, True, True, False]  # no inner walls left where they overlap


def test_solid_puts_a_lid_on_the_cup_at_low_fill_only():
    v, f = _cup()
    probes = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.3]])  # inside the cup's hollow
    for fill, lidded in ((0.0, True), (2.0, True), (20.0, False), (1000.0, False)):
        ov, of, _ = remesh_item(v, f, 32, "solid", fill=fill)
        assert _closed(ov, of) and _components(ov, of) == 1, fill
        assert _inside_mesh(probes, ov, of).tolist() == [lidded, lidded], fill
        volume = trimesh.Trimesh(ov, of).volume
        assert (volume > 0.7) if lidded else (volume < 0.35), fill  # the full cylinder is 0.785


# ------------------------------------------------------------------ filters, clean-up, colours


def test_small_components_are_dropped():
    big, small = _sphere(3), _sphere(1)
    v, f = _join(big, (small[0] * 0.1 + [3.0, 0.0, 0.0], small[1]))
    kept, kf, _ = remesh_item(v, f, 48, "sdf")
    assert _components(kept, kf) == 1 and kept[:, 0].max() < 1.1
    both, bf, _ = remesh_item(v, f, 48, "sdf", drop_small_components=0.0)
    assert _components(both, bf) == 2 and both[:, 0].max() > 2.9


def test_smoothing_poles_and_preclustering():
    v, f = _sphere()
    rough, rf, _ = remesh_item(v, f, 32, "sdf", qef=False)
    smooth, sf, _ = remesh_item(v, f, 32, "sdf", qef=False, smooth_iters=5)
    assert len(sf) == len(rf) and _closed(smooth, sf)
    assert _laplacian(smooth, sf) < 0.7 * _laplacian(rough, rf)  # the dual contouring's ripples evened out
    assert np.abs(np.linalg.norm(smooth, axis=1) - 1).max() < 0.02  # without shrinking (Taubin)
    ref_v, ref_f, _ = remesh_item(v, f, 40, "sdf")
    ov, of, _ = remesh_item(v, f, 40, "sdf", fix_poles=True)
    poles = (np.bincount(ref_f.reshape(-1)) == 3).sum()
    assert poles > 0 and (np.bincount(of.reshape(-1), minlength=len(ov)) != 3).all()
    assert len(of) == len(ref_f) - 2 * poles and len(ov) == len(ref_v) - poles and _closed(ov, of)
    coarse, cf, _ = remesh_item(v, f, 32, "sdf", precluster_max_verts=200)
    r = np.linalg.norm(coarse, axis=1)
    assert _closed(coarse, cf) and 0.85 < r.min() and r.max() < 1.02 and r.std() > np.linalg.norm(rough, axis=1).std()


def test_vertex_colours_come_from_the_nearest_surface_point():
    v, f = _sphere(3)
    colors = np.where(v[:, 2:3] > 0, [[1.0, 0.0, 0.0, 1.0]], [[0.0, 0.0, 1.0, 0.5]])
    ov, of, oc = remesh_item(v, f, 32, "solid", fill=0.0, colors=colors)
    assert oc.shape == (len(ov), 4)
    top, bottom = ov[:, 2] > 0.2, ov[:, 2] < -0.2
    assert np.allclose(oc[top], [1, 0, 0, 1]) and np.allclose(oc[bottom], [0, 0, 1, 0.5])
    assert remesh_item(v, f, 32, "udf")[2] is None


def test_batches_through_remesh_mesh():
    (sv, sf), (bv, bf) = _sphere(1), _box()
    batch = Mesh(torch.zeros(2, len(sv), 3), torch.zeros(2, len(sf), 3, dtype=torch.long),
                 vertex_counts=(len(sv), len(bv)), face_counts=(len(sf), len(bf)),
                 uvs=torch.zeros(2, len(sv), 2), colors=torch.ones(2, len(sv), 3))
    batch.vertices[0] = torch.tensor(sv, dtype=torch.float32)
    batch.vertices[1, :len(bv)] = torch.tensor(bv, dtype=torch.float32)
    batch.faces[0] = torch.tensor(sf)
    batch.faces[1, :len(bf)] = torch.tensor(bf)
    out = remesh_mesh(batch, 32, "sdf")
    assert out.batch_size == 2 and out.uvs is None and out.normals is None and out.colors is not None
    (n0, f0), (n1, f1) = out.counts(0), out.counts(1)
    assert f0 > 1000 and f1 > 1000 and f0 != f1
    box = out.vertices[1, :n1].numpy()
    assert np.abs(np.abs(box).max(axis=1) - 0.5).max() < 1e-5
    assert torch.allclose(out.colors[0, :n0], torch.ones(n0, 3))
    batch = Mesh(batch.vertices, batch.faces, vertex_counts=(len(sv), len(bv)), face_counts=(len(sf), 0),
                 colors=batch.colors)
    out = remesh_mesh(batch, 32, "udf")
    assert out.counts(1) == (0, 0) and out.counts(0)[1] > 1000  # an empty item stays empty


def test_bad_input_is_refused_clearly():
    v, f = _sphere(1)
    with pytest.raises(ValidationError, match="sign_mode"):
        remesh_item(v, f, 32, "signed")
    with pytest.raises(ValidationError, match="resolution"):
        remesh_item(v, f, 16, "udf")
    with pytest.raises(ValidationError, match="band"):
        remesh_item(v, f, 32, "udf", band=8.0)
    with pytest.raises(ValidationError, match="fill"):
        remesh_item(v, f, 32, "solid", fill=-1.0)
    with pytest.raises(ValidationError, match="faces index vertices"):
        remesh_item(v, f + len(v), 32, "udf")
    assert remesh_item(np.zeros((3, 3)), np.array([[0, 1, 2]]), 32, "udf")[1].shape == (0, 3)  # degenerate only
    empty_v, empty_f, _ = remesh_item(v, np.zeros((0, 3), np.int64), 32, "udf")
    assert empty_v.shape == (0, 3) and empty_f.shape == (0, 3)


def test_through_the_engine(image_engine):
    v, f = _box()
    mesh = Mesh(torch.tensor(v, dtype=torch.float32)[None], torch.tensor(f)[None])
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "box"}},
              "2": {"class_type": "RemeshMesh", "inputs": {"mesh": ["1", 0], "resolution": 32, "sign_mode": "sdf",
                                                           "sign_mode.manifold": True, "band": 1.0,
                                                           "project_back": 0.0, "fix_poles": False, "smooth_iters": 0,
                                                           "drop_small_components": 0.01,
                                                           "precluster_max_verts": 20000000}},
              "3": {"class_type": "RemeshMesh", "inputs": {"mesh": ["1", 0], "resolution": 32, "sign_mode": "udf",
                                                           "sign_mode.drop_inverted_components": True, "band": 1.0,
                                                           "project_back": 0.0, "fix_poles": False, "smooth_iters": 2,
                                                           "drop_small_components": 0.01,
                                                           "precluster_max_verts": 20000000}}}
    result = run_prompt(image_engine, prompt, {"box": mesh}, sinks=[["2", 0], ["3", 0]])
    assert result.status == "success", result.errors
    sdf, udf = result.value("2"), result.value("3")
    sv = sdf.vertices[0].double().numpy()
    assert np.abs(np.abs(sv).max(axis=1) - 0.5).max() < 1e-5  # qef on by default in sdf: a sharp cube
    assert _closed(udf.vertices[0].double().numpy(), udf.faces[0].numpy())
    text = result.outputs["2"]["text"][0]
    assert text.startswith("faces: 12 → ") and text.endswith("%)") and "+" in text
    prompt["2"]["inputs"]["sign_mode"] = "box"
    with pytest.raises(ValidationError) as refused:
        run_prompt(image_engine, {k: prompt[k] for k in ("1", "2")}, {"box": mesh}, sinks=[["2", 0]])
    assert "sign_mode" in json.dumps([str(refused.value), refused.value.details, refused.value.extra_info], default=str)


def test_solid_lowers_a_resolution_whose_grid_is_too_big(monkeypatch, caplog):
    import nodeloom.ops.mesh_remesh as remesh

    v, f = _sphere(3)
    full = len(remesh_item(v, f, 48, "solid")[1])
    monkeypatch.setattr(remesh, "SOLID_MAX_GRID", 40 ** 3)
    with caplog.at_level("WARNING"):
        ov, of, _ = remesh_item(v, f, 48, "solid")
    assert "resolution 48 lowered to" in caplog.text and _closed(ov, of) and len(of) < 0.8 * full
