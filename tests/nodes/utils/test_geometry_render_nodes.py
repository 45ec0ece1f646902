"""MoGeRender, MoGePointMapToMesh and DA3Render: the values each mode gives on planes, steps and
spheres of known shape, the declarations the templates use, and the geometry they refuse."""

from __future__ import annotations

import math

import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.nodes.utils import NODE_CLASS_MAPPINGS as NODES
from nodeloom.ops.geometry_render import turbo
from tests.nodes.conftest import run_prompt


def call(class_type: str, **inputs):
    cls = NODES[class_type]
    return getattr(cls(), cls.FUNCTION)(**inputs)


def _plane_points(h: int = 6, w: int = 8, slope: float = 1.0, step: float = 0.1) -> torch.Tensor:
    """OpenCV points of the plane Z = 2 + slope·Y seen by a camera: [1, H, W, 3]."""
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    x, y = (u - w / 2) * step, (v - h / 2) * step
    return torch.stack([x, y, 2.0 + slope * y], dim=-1)[None]


def _moge(points: torch.Tensor, perspective: bool = True, **extra) -> dict:
    b, h, w, _ = points.shape
    geo = {"image": torch.rand(b, h, w, 3, generator=torch.Generator().manual_seed(0)), "points": points,
           "depth": points[..., 2].clone(), **extra}
    if perspective:
        geo["intrinsics"] = torch.tensor([[0.5, 0.0, 0.5], [0.0, 0.75, 0.5], [0.0, 0.0, 1.0]]).expand(b, 3, 3)
    return geo


def test_moge_depth_is_disparity_stretched_per_image():
    depth = torch.tensor([1.0, 2.0, 4.0, 8.0]).expand(1, 4, 4).clone()  # each value 4 times: quantiles hit the ends
    depth[0, 0, 0] = float("inf")  # invalid pixel
    depth = torch.cat([depth, depth * 3])
    (img,) = call("MoGeRender", moge_geometry={"depth": depth, "image": torch.zeros(2, 4, 4, 3)}, output="depth")
    assert img.shape == (2, 4, 4, 3)
    expected = [(1 / d - 1 / 8) / (1 - 1 / 8) for d in (1.0, 2.0, 4.0, 8.0)]
    for i in range(2):  # scaling all depths leaves the normalised disparity unchanged
        assert img[i, 1, :, 0].tolist() == pytest.approx(expected, abs=1e-5)
        assert img[i, 0, 0].tolist() == [0.0, 0.0, 0.0]
    (colored,) = call("MoGeRender", moge_geometry={"depth": depth}, output="depth_colored")
    assert torch.allclose(colored, turbo(img[..., 0]), atol=1e-6)
    near, farther = colored[0, 1, 0], colored[0, 1, 2]
    assert near[0] > near[2] and farther[2] > farther[0]  # Turbo: near red, farther blue


def test_moge_normals_of_a_tilted_plane_in_both_conventions():
    geo = _moge(_plane_points(slope=1.0))  # surface normal (0, 1, -1)/√2 in OpenCV: faces the camera, tilted down
    (gl,) = call("MoGeRender", moge_geometry=geo, output="normal_opengl")
    (dx,) = call("MoGeRender", moge_geometry=geo, output="normal_directx")
    s = math.sqrt(0.5)
    inner = (slice(1, -1), slice(1, -1))
    assert torch.allclose(gl[0][inner], torch.tensor([0.5, 0.5 - 0.5 * s, 0.5 + 0.5 * s]).expand(4, 6, 3), atol=1e-5)
    assert torch.allclose(dx[0][inner], torch.tensor([0.5, 0.5 + 0.5 * s, 0.5 + 0.5 * s]).expand(4, 6, 3), atol=1e-5)
    assert torch.allclose(gl[..., 1] + dx[..., 1], torch.ones_like(gl[..., 1]), atol=1e-6)  # DirectX flips green
    # a predicted normal map wins over the points
    given = torch.tensor([1.0, 0.0, 0.0]).expand(1, 6, 8, 3)
    (from_normal,) = call("MoGeRender", moge_geometry={**geo, "normal": given}, output="normal_opengl")
    assert torch.allclose(from_normal, torch.tensor([1.0, 0.5, 0.5]).expand(1, 6, 8, 3))


def test_moge_mask_is_grey():
    mask = torch.zeros(1, 3, 4, dtype=torch.bool)
    mask[0, 1, 2] = True
    (img,) = call("MoGeRender", moge_geometry={"mask": mask}, output="mask")
    assert img.shape == (1, 3, 4, 3) and img.sum().item() == 3.0 and img[0, 1, 2].tolist() == [1.0, 1.0, 1.0]


def test_moge_render_refuses_missing_data():
    with pytest.raises(ValidationError, match="no depth"):
        call("MoGeRender", moge_geometry={"image": torch.zeros(1, 2, 2, 3)}, output="depth")
    with pytest.raises(ValidationError, match="neither normals nor points"):
        call("MoGeRender", moge_geometry={"depth": torch.ones(1, 2, 2)}, output="normal_directx")
    with pytest.raises(ValidationError, match="no mask"):
        call("MoGeRender", moge_geometry={"depth": torch.ones(1, 2, 2)}, output="mask")
    with pytest.raises(ValidationError, match="`output`"):
        call("MoGeRender", moge_geometry={"depth": torch.ones(1, 2, 2)}, output="albedo")
    with pytest.raises(ValidationError, match="MOGE_GEOMETRY"):
        call("MoGeRender", moge_geometry=torch.ones(1, 2, 2), output="depth")
    with pytest.raises(ValidationError, match=r"depth must be shaped \[B,H,W\]"):
        call("MoGeRender", moge_geometry={"depth": torch.ones(2, 2)}, output="depth")


def _face_normals(v: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]], dim=-1), dim=-1)


def test_perspective_plane_meshes_in_gltf_axes_facing_the_camera():
    points = _plane_points(h=6, w=8, slope=0.0)
    (mesh,) = call("MoGePointMapToMesh", moge_geometry=_moge(points), batch_index=0, decimation=1,
                   discontinuity_threshold=0.04, texture=True)
    v, f = mesh.vertices[0], mesh.faces[0]
    assert v.shape == (48, 3) and f.shape == (2 * 5 * 7, 3)
    assert torch.allclose(v[:, 2], torch.full((48,), -2.0))  # Z forward -> glTF -Z
    assert v[0, 1] > v[-1, 1]  # image row 0 is the top: highest Y
    assert torch.allclose(_face_normals(v, f), torch.tensor([0.0, 0.0, 1.0]).expand(len(f), 3), atol=1e-5)
    assert mesh.uvs[0, 0].tolist() == [0.0, 1.0] and mesh.uvs[0, -1].tolist() == [1.0, 0.0]
    assert mesh.texture.shape == (1, 6, 8, 3)
    (half,) = call("MoGePointMapToMesh", moge_geometry=_moge(points), batch_index=0, decimation=2,
                   discontinuity_threshold=0.0, texture=False)
    assert half.vertices.shape == (1, 12, 3) and half.faces.shape == (1, 2 * 2 * 3, 3) and half.texture is None


def test_depth_step_is_cut_unless_the_threshold_is_off():
    points = _plane_points(h=4, w=8, slope=0.0)
    points[0, :, 4:, 2] = 3.0  # the right half steps back by 50 %
    geo = _moge(points)
    (cut,) = call("MoGePointMapToMesh", moge_geometry=geo, batch_index=0, decimation=1,
                  discontinuity_threshold=0.04, texture=False)
    z = cut.vertices[0, :, 2]
    spans = z[cut.faces[0]].amax(dim=1) - z[cut.faces[0]].amin(dim=1)
    assert cut.vertices.shape[1] == 4 * 6 and spans.max() == 0  # columns 3 and 4 dropped, no face bridges the step
    (whole,) = call("MoGePointMapToMesh", moge_geometry=geo, batch_index=0, decimation=1,
                    discontinuity_threshold=0.0, texture=False)
    assert whole.vertices.shape[1] == 32 and whole.faces.shape[1] == 2 * 3 * 7


def test_panorama_sphere_meshes_onto_the_sphere():
    h, w, radius = 9, 16, 2.5
    theta = torch.linspace(0.05, math.pi - 0.05, h)[:, None].expand(h, w)  # polar angle from MoGe's +Z up
    phi = torch.linspace(0, 2 * math.pi, w)[None, :].expand(h, w)
    dirs = torch.stack([torch.sin(theta) * torch.cos(phi), torch.sin(theta) * torch.sin(phi), torch.cos(theta)], -1)
    geo = {"points": (dirs * radius)[None], "depth": torch.full((1, h, w), radius), "image": torch.rand(1, h, w, 3)}
    (mesh,) = call("MoGePointMapToMesh", moge_geometry=geo, batch_index=0, decimation=1,
                   discontinuity_threshold=0.04, texture=True)
    v, f = mesh.vertices[0], mesh.faces[0]
    assert v.shape == (h * w, 3) and f.shape == (2 * (h - 1) * (w - 1), 3)
    assert torch.allclose(v.norm(dim=-1), torch.full((h * w,), radius), atol=1e-5)
    assert v[0, 1] > 2.4 and v[-1, 1] < -2.4  # the top row is near +Y (glTF up)
    centroids = v[f].mean(dim=1)  # the faces wrap all the way round: every direction is covered
    assert (centroids[:, 0].max() > 1.5) and (centroids[:, 0].min() < -1.5) and (centroids[:, 2].max() > 1.5)
    assert (centroids[:, 2].min() < -1.5)


def test_point_map_to_mesh_refuses_bad_geometry():
    geo = _moge(_plane_points())
    kwargs = dict(decimation=1, discontinuity_threshold=0.04, texture=True)
    with pytest.raises(ValidationError, match="`batch_index` must be below the geometry's batch size 1"):
        call("MoGePointMapToMesh", moge_geometry=geo, batch_index=1, **kwargs)
    with pytest.raises(ValidationError, match="no points"):
        call("MoGePointMapToMesh", moge_geometry={"depth": geo["depth"]}, batch_index=0, **kwargs)
    empty = {**geo, "points": torch.full_like(geo["points"], float("inf"))}
    with pytest.raises(ValidationError, match="empty mesh"):
        call("MoGePointMapToMesh", moge_geometry=empty, batch_index=0, **kwargs)


def _da3(depth: torch.Tensor, **extra) -> dict:
    b, h, w = depth.shape
    return {"depth": depth, "image": torch.zeros(b, h, w, 3), "mode": "mono", **extra}


def _da3_render(geo: dict, output: str, **options):
    return call("DA3Render", da3_geometry=geo, output=output, **{f"output.{k}": v for k, v in options.items()})[0]


def test_da3_v2_style_stretches_between_percentiles_near_bright():
    depth = torch.arange(101, dtype=torch.float32).reshape(1, 1, 101)  # quantiles 0.01 / 0.99 are 1 and 99
    img = _da3_render(_da3(depth), "depth", normalization="v2_style", apply_sky_clip=False)
    assert img.shape == (1, 1, 101, 3)
    assert img[0, 0, [0, 1, 50, 99, 100], 0].tolist() == pytest.approx([1.0, 1.0, 0.5, 0.0, 0.0], abs=1e-6)
    colored = _da3_render(_da3(depth), "depth_colored", normalization="v2_style", apply_sky_clip=False)
    assert torch.allclose(colored, turbo(img[..., 0]), atol=1e-6)


def test_da3_sky_is_black_and_left_out_of_the_statistics():
    depth = torch.cat([torch.arange(101, dtype=torch.float32), torch.full((20,), 1000.0)]).reshape(1, 1, 121)
    sky = torch.cat([torch.zeros(101), torch.ones(20)]).reshape(1, 1, 121)
    img = _da3_render(_da3(depth, sky=sky), "depth", normalization="v2_style", apply_sky_clip=False)
    assert img[0, 0, 50, 0].item() == pytest.approx(0.5) and img[0, 0, 101:, 0].abs().max() == 0
    # the sky clip sets the sky's depth to the ground's 99th percentile (99): min/max then spans 0..100
    clipped = _da3_render(_da3(depth, sky=sky), "depth", normalization="min_max", apply_sky_clip=True)
    assert clipped[0, 0, 0, 0].item() == pytest.approx(1.0) and clipped[0, 0, 110, 0].item() == pytest.approx(0.01)
    assert clipped[0, 0, 33, 0].item() == pytest.approx(1 - 33 / 100)
    plain = _da3_render(_da3(depth, sky=sky), "depth", normalization="min_max", apply_sky_clip=False)
    assert plain[0, 0, 33, 0].item() == pytest.approx(1 - 33 / 1000)


def test_da3_min_max_and_raw():
    depth = torch.tensor([[[2.0, 3.0, 4.0, 6.0]]])
    mm = _da3_render(_da3(depth), "depth", normalization="min_max", apply_sky_clip=False)
    assert mm[0, 0, :, 0].tolist() == pytest.approx([1.0, 0.75, 0.5, 0.0])
    raw = _da3_render(_da3(depth), "depth", normalization="raw", apply_sky_clip=False)
    assert raw[0, 0, :, 1].tolist() == [2.0, 3.0, 4.0, 6.0]  # metric units kept, not clamped


def test_da3_sky_mask_and_confidence():
    sky = torch.tensor([[[0.0, 0.25, 1.0]]])
    assert _da3_render(_da3(torch.ones(1, 1, 3), sky=sky), "sky_mask", colored=False)[0, 0, :, 2].tolist() == \
        [0.0, 0.25, 1.0]
    colored = _da3_render(_da3(torch.ones(1, 1, 3), sky=sky), "sky_mask", colored=True)
    assert torch.allclose(colored, turbo(sky))
    conf = torch.stack([torch.tensor([[1.0, 2.0, 5.0]]), torch.full((1, 3), 7.0)])
    img = _da3_render(_da3(torch.ones(2, 1, 3), confidence=conf), "confidence", colored=False)
    assert img[0, 0, :, 0].tolist() == pytest.approx([0.0, 0.25, 1.0]) and img[1].min() == 1.0  # flat -> ones


def test_da3_refuses_missing_maps():
    geo = _da3(torch.ones(1, 2, 2))
    with pytest.raises(ValidationError, match="no sky map; only the Mono/Metric"):
        _da3_render(geo, "sky_mask", colored=False)
    with pytest.raises(ValidationError, match="no confidence map; only the Small/Base"):
        _da3_render(geo, "confidence", colored=False)
    with pytest.raises(ValidationError, match="apply_sky_clip` needs a sky map"):
        _da3_render(geo, "depth", normalization="v2_style", apply_sky_clip=True)
    with pytest.raises(ValidationError, match="normalization"):
        _da3_render(geo, "depth", normalization="log", apply_sky_clip=False)
    with pytest.raises(ValidationError, match="`output` must be one of"):
        _da3_render(geo, "normals")


def test_declarations_follow_the_docs(image_engine):
    info = image_engine.object_info()
    moge = info["MoGeRender"]
    assert moge["display_name"] == "Render MoGe Geometry" and moge["output"] == ["IMAGE"]
    assert moge["input"]["required"]["output"][0] == [
        "depth", "depth_colored", "normal_opengl", "normal_directx", "mask"]
    mesh = info["MoGePointMapToMesh"]["input"]["required"]
    assert list(mesh) == ["moge_geometry", "batch_index", "decimation", "discontinuity_threshold", "texture"]
    assert [mesh[k][1]["default"] for k in list(mesh)[1:]] == [0, 1, 0.04, True]  # the templates' widget values
    assert info["MoGePointMapToMesh"]["output"] == ["MESH"]
    da3 = info["DA3Render"]
    assert da3["display_name"] == "Render Depth Anything 3"
    assert [o["key"] for o in da3["input"]["required"]["output"][1]["options"]] == list(
        ("depth", "depth_colored", "sky_mask", "confidence"))


def test_template_widget_values_through_the_engine(image_engine):
    # image_anima_lllite_depth_control_to_image: DA3Render ['depth', 'v2_style', False];
    # 3d_moge_perspective_to_mesh: MoGeRender ['normal_opengl'], MoGePointMapToMesh [0, 1, 0.04, True]
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "da3"}},
              "2": {"class_type": "DA3Render", "inputs": {"da3_geometry": ["1", 0], "output": "depth",
                                                          "output.normalization": "v2_style",
                                                          "output.apply_sky_clip": False}},
              "3": {"class_type": "TestTensor", "inputs": {"key": "moge"}},
              "4": {"class_type": "MoGeRender", "inputs": {"moge_geometry": ["3", 0], "output": "normal_opengl"}},
              "5": {"class_type": "MoGePointMapToMesh", "inputs": {"moge_geometry": ["3", 0], "batch_index": 0,
                                                                   "decimation": 1, "discontinuity_threshold": 0.04,
                                                                   "texture": True}}}
    depth = torch.arange(101, dtype=torch.float32).reshape(1, 1, 101)
    result = run_prompt(image_engine, prompt, {"da3": _da3(depth), "moge": _moge(_plane_points(slope=0.0))},
                        sinks=[["2", 0], ["4", 0], ["5", 0]])
    assert result.status == "success", result.errors
    assert result.value("2")[0, 0, 50, 0].item() == pytest.approx(0.5)
    assert torch.allclose(result.value("4")[0, 2, 3], torch.tensor([0.5, 0.5, 1.0]), atol=1e-5)
    assert result.value("5").vertices.shape == (1, 48, 3)
