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
