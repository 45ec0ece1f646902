"""MarigoldV2PostProcess and MoGeGeometryToFOV: the numbers each prediction and axis gives, and
the geometry values they refuse."""

from __future__ import annotations

import math

import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.nodes.utils import NODE_CLASS_MAPPINGS as NODES
from tests.nodes.conftest import run_prompt


def call(class_type: str, **inputs):
    cls = NODES[class_type]
    return getattr(cls(), cls.FUNCTION)(**inputs)


def test_marigold_depth_is_normalised_per_image_with_near_bright():
    ramp = torch.linspace(0.2, 0.6, 8).reshape(1, 1, 8, 1).expand(2, 4, 8, 3).clone()
    ramp[1] *= 0.5
    (depth,) = call("MarigoldV2PostProcess", image=ramp, prediction="depth")
    assert depth.shape == (2, 4, 8, 3)
    for i in range(2):  # nearest (smallest depth) is white, farthest black, in each image
        assert depth[i, 0, 0].tolist() == pytest.approx([1.0] * 3) and depth[i, 0, -1].tolist() == pytest.approx([0.0] * 3, abs=1e-6)
    (disparity,) = call("MarigoldV2PostProcess", image=ramp, prediction="disparity")
    assert torch.allclose(disparity, 1.0 - depth, atol=1e-6)


def test_marigold_normals_are_unit_and_albedo_is_srgb():
    raw = torch.tensor([[[[0.5, 0.5, 1.0], [1.0, 0.5, 0.5], [0.75, 0.75, 0.5]]]])
    (normals,) = call("MarigoldV2PostProcess", image=raw, prediction="normals")
    vectors = normals * 2 - 1
    assert torch.allclose(vectors.norm(dim=-1), torch.ones(1, 1, 3), atol=1e-6)
    assert vectors[0, 0, 2].tolist() == pytest.approx([math.sqrt(0.5), math.sqrt(0.5), 0.0], abs=1e-6)
    linear = torch.tensor([[[[0.0, 0.002, 0.2140]]]])
    (albedo,) = call("MarigoldV2PostProcess", image=linear, prediction="albedo")
    assert albedo[0, 0, 0].tolist() == pytest.approx([0.0, 0.002 * 12.92, 0.5], abs=2e-4)


def _geometry(fx=0.5, fy=0.75, h=48, w=64, keys=("image",)):
    k = torch.tensor([[fx, 0.0, 0.5], [0.0, fy, 0.5], [0.0, 0.0, 1.0]])[None]
    shapes = {"image": (1, h, w, 3), "points": (1, h, w, 3), "depth": (1, h, w)}
    return {"intrinsics": k, **{n: torch.zeros(shapes[n]) for n in keys}}


def test_moge_fov_per_axis_and_unit():
    geo = _geometry()
    fov, focal = call("MoGeGeometryToFOV", moge_geometry=geo, axis="horizontal", unit="degrees")
    assert fov == pytest.approx(90.0)  # 2·atan(0.5 / 0.5)
    assert focal == pytest.approx(0.75 * 48)
    vfov, _ = call("MoGeGeometryToFOV", moge_geometry=geo, axis="vertical", unit="radians")
    assert vfov == pytest.approx(2 * math.atan(0.5 / 0.75))
    dfov, _ = call("MoGeGeometryToFOV", moge_geometry=geo, axis="diagonal", unit="degrees")
    assert dfov == pytest.approx(math.degrees(2 * math.atan(math.hypot(1.0, 0.5 / 0.75))))
    _, from_depth = call("MoGeGeometryToFOV", moge_geometry=_geometry(h=30, keys=("depth",)), axis="vertical", unit="degrees")
    assert from_depth == pytest.approx(0.75 * 30)


def test_moge_fov_refuses_panoramas_and_geometry_without_pixels():
    with pytest.raises(ValidationError, match="no intrinsics"):
        call("MoGeGeometryToFOV", moge_geometry={"image": torch.zeros(1, 8, 8, 3)}, axis="vertical", unit="degrees")
    with pytest.raises(ValidationError, match="image, points or depth"):
        call("MoGeGeometryToFOV", moge_geometry=_geometry(keys=()), axis="vertical", unit="degrees")
    with pytest.raises(ValidationError, match="positive focal"):
        call("MoGeGeometryToFOV", moge_geometry=_geometry(fx=0.0), axis="horizontal", unit="degrees")
    with pytest.raises(ValidationError, match="prediction"):
        call("MarigoldV2PostProcess", image=torch.zeros(1, 2, 2, 3), prediction="semantic")


def test_template_widget_values_through_the_engine(image_engine):
    # 3d_pixal3d_trellis2_image_to_model: ["horizontal", "degrees"]; Marigold templates: ["depth"]
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "geo"}},
              "2": {"class_type": "MoGeGeometryToFOV", "inputs": {"moge_geometry": ["1", 0], "axis": "horizontal",
                                                                  "unit": "degrees"}},
              "3": {"class_type": "TestTensor", "inputs": {"key": "pred"}},
              "4": {"class_type": "MarigoldV2PostProcess", "inputs": {"image": ["3", 0], "prediction": "depth"}}}
    pred = torch.rand(1, 8, 8, 3)
    result = run_prompt(image_engine, prompt, {"geo": _geometry(), "pred": pred}, sinks=[["2", 0], ["2", 1], ["4", 0]])
    assert result.status == "success", result.errors
    assert result.value("2", 0) == pytest.approx(90.0) and result.value("2", 1) == pytest.approx(36.0)
    assert float(result.value("4").max()) == pytest.approx(1.0) and float(result.value("4").min()) == pytest.approx(0.0)
    info = image_engine.object_info("MoGeGeometryToFOV")["MoGeGeometryToFOV"]
    assert info["output_name"] == ["fov", "focal_pixels"] and info["category"] == "image/geometry estimation"
