"""SplatToFile3D through the engine: the PLY's header and values (log scales, logit opacities,
channel-major SH), the SPZ's header and quantised values, batches and refused inputs."""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest
import torch

from nodeloom.ops.mesh import File3D
from nodeloom.ops.splat import Splat
from tests.nodes.conftest import run_prompt


def _splat(batch: int = 1, degree: int = 1) -> Splat:
    gen = torch.Generator().manual_seed(0)
    n, k = 5, (degree + 1) ** 2
    rotations = torch.nn.functional.normalize(torch.randn(batch, n, 4, generator=gen), dim=-1)
    return Splat(positions=torch.randn(batch, n, 3, generator=gen), scales=torch.rand(batch, n, 3, generator=gen) * 0.1 + 0.01,
                 rotations=rotations, opacities=torch.rand(batch, n, generator=gen) * 0.8 + 0.1,
                 sh=torch.randn(batch, n, k, 3, generator=gen) * 0.3)


def _to_file(engine, splat, fmt: str, key: str):
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": key}},
              "2": {"class_type": "SplatToFile3D", "inputs": {"splat": ["1", 0], "format": fmt}}}
    return run_prompt(engine, prompt, {key: splat}, sinks=[["2", 0]])


def test_declaration_follows_the_template(image_engine):
    info = image_engine.object_info("SplatToFile3D")["SplatToFile3D"]
    # the TripoSplat template's widget values: ['spz']
    assert info["input"]["required"]["format"][0] == ["ply", "ksplat", "spz"]
    assert info["input"]["required"]["format"][1]["default"] == "ply"
    assert info["input"]["required"]["splat"][0] == "SPLAT"
    assert info["output"] == ["FILE_3D"] and info["output_name"] == ["model_3d"]
    assert info["display_name"] == "Create 3D File (from Splat)"


def test_ply_holds_the_3dgs_layout(image_engine):
    splat = _splat(batch=2)
    result = _to_file(image_engine, splat, "ply", "splat for ply")
    assert result.status == "success", result.errors
    file3d = result.value("2")
    assert isinstance(file3d, File3D) and file3d.format == "ply"
    head, body = file3d.data.split(b"end_header\n", 1)
    names = [line.split()[-1] for line in head.decode().splitlines() if line.startswith("property")]
    assert names[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert names[9:18] == [f"f_rest_{i}" for i in range(9)] and names[-8:] == [
        "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert b"element vertex 5" in head
    rows = np.frombuffer(body, dtype="<f4").reshape(5, len(names))
    col = {name: rows[:, i] for i, name in enumerate(names)}
    first = {k: v[0].numpy() for k, v in vars(splat).items() if isinstance(v, torch.Tensor)}
    assert np.allclose(rows[:, :3], first["positions"], atol=1e-6)
    assert np.allclose(col["scale_0"], np.log(first["scales"][:, 0]), atol=1e-5)
    assert np.allclose(1 / (1 + np.exp(-col["opacity"])), first["opacities"], atol=1e-5)
    assert np.allclose(col["f_rest_0"], first["sh"][:, 1, 0]) and np.allclose(col["f_rest_3"], first["sh"][:, 1, 1])
    assert np.allclose(rows[:, -4:], first["rotations"], atol=1e-6)


def test_spz_holds_a_header_and_quantised_values(image_engine):
    splat = _splat()
    result = _to_file(image_engine, splat, "spz", "splat for spz")
    assert result.status == "success", result.errors
    raw = gzip.decompress(result.value("2").data)
    magic, version, count, degree, bits, _, _ = struct.unpack_from("<IIIBBBB", raw)
    assert (magic, version, count, degree, bits) == (0x5053474E, 2, 5, 1, 12)
    body = np.frombuffer(raw[16:], dtype=np.uint8)
    assert body.size == 5 * (9 + 1 + 3 + 3 + 3 + 9)
    xyz = body[:45].reshape(5, 3, 3).astype(np.int64)
    fixed = xyz[..., 0] | (xyz[..., 1] << 8) | (xyz[..., 2] << 16)
    fixed = np.where(fixed >= 1 << 23, fixed - (1 << 24), fixed)
    assert np.allclose(fixed / 4096.0, splat.positions[0].numpy(), atol=1 / 4096)
    alphas = body[45:50]
    assert np.allclose(alphas / 255.0, splat.opacities[0].numpy(), atol=1 / 255)
    scales = body[65:80].reshape(5, 3)
    assert np.allclose(scales / 16.0 - 10.0, np.log(splat.scales[0].numpy()), atol=1 / 16)


def test_bad_inputs_are_refused(image_engine):
    result = _to_file(image_engine, _splat(), "ksplat", "splat for ksplat")
    assert result.status == "error" and "`format` 'ksplat' cannot be written yet" in result.errors[0]["exception_message"]
    result = _to_file(image_engine, torch.zeros(1, 5, 3), "ply", "not a splat")
    assert result.status == "error" and "`splat` must be a SPLAT value" in result.errors[0]["exception_message"]
    with pytest.raises(Exception, match="`sh` must be shaped"):
        Splat(torch.zeros(1, 2, 3), torch.ones(1, 2, 3), torch.ones(1, 2, 4), torch.ones(1, 2), torch.zeros(1, 2, 3, 3))
    assert math.isclose(_splat(degree=2).sh_degree, 2)


def _ball(n: int = 2000) -> Splat:
    """Gaussians filling a ball of radius 0.5: red above z = 0, blue below, plus one faint floater."""
    from nodeloom.ops.splat import SH_C0

    gen = torch.Generator().manual_seed(1)
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=-1)
    pos = d * 0.45 * torch.rand(n, 1, generator=gen) ** (1 / 3)
    pos = torch.cat([pos, torch.tensor([[0.9, 0.9, 0.9]])])
    rgb = torch.where(pos[:, 2:3] > 0, torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0]))
    opacity = torch.cat([torch.full((n,), 0.8), torch.tensor([0.01])])
    return Splat(pos[None], torch.full((1, n + 1, 3), 0.04), torch.tensor([1.0, 0, 0, 0]).expand(1, n + 1, 4),
                 opacity[None], ((rgb - 0.5) / SH_C0)[None, :, None, :])


def test_splat_to_mesh_extracts_a_coloured_ball(image_engine):
    info = image_engine.object_info("SplatToMesh")["SplatToMesh"]
    required = info["input"]["required"]
    # the TripoSplat template's widget values: [384, 5, 0, 0.6, 500, 0.02, 2]
    assert list(required) == ["splat", "resolution", "kernel", "smooth", "level", "min_component", "min_opacity",
                              "color_sharpen"]
    assert [required[k][1]["default"] for k in list(required)[1:]] == [384, 5, 0, 0.4, 500, 0.02, 2.0]
    assert info["output"] == ["MESH"] and info["display_name"] == "Extract Mesh from Splat"
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "ball splat"}},
              "2": {"class_type": "SplatToMesh", "inputs": {"splat": ["1", 0], "resolution": 64, "kernel": 5,
                                                            "smooth": 3, "level": 0.6, "min_component": 50,
                                                            "min_opacity": 0.02, "color_sharpen": 2.0}}}
    result = run_prompt(image_engine, prompt, {"ball splat": _ball()}, sinks=[["2", 0]])
    assert result.status == "success", result.errors
    mesh = result.value("2")
    verts, colors = mesh.vertices[0], mesh.colors[0]
    assert verts.shape[0] > 500 and mesh.faces.shape[1] > 1000
    radius = verts.norm(dim=-1)
    assert 0.4 < float(radius.mean()) < 0.6 and float(radius.max()) < 0.7  # a ball; the faint floater is gone
    top, bottom = verts[:, 2] > 0.2, verts[:, 2] < -0.2
    assert torch.allclose(colors[top].mean(0), torch.tensor([1.0, 0.0, 0.0]), atol=0.05)
    assert torch.allclose(colors[bottom].mean(0), torch.tensor([0.0, 0.0, 1.0]), atol=0.05)
    surface = trimesh_or_skip().Trimesh(verts.numpy(), mesh.faces[0].numpy(), process=True)
    assert 0.3 < surface.volume < 0.6  # outward-wound and closed enough: 4/3 π 0.47³ ≈ 0.43


def trimesh_or_skip():
    return pytest.importorskip("trimesh")
