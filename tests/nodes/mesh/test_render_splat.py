"""RenderSplat: where and how big a single gaussian lands, its orientation, front-to-back order,
turntables, the render styles, backgrounds, the declaration the TripoSplat template uses, and
refused inputs."""

from __future__ import annotations

import math

import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.nodes.mesh import NODE_CLASS_MAPPINGS as NODES
from nodeloom.ops.camera_info import camera_info
from nodeloom.ops.splat import SH_C0, Splat
from tests.nodes.conftest import run_prompt

SIZE = 64
FOV = 60.0
FOCAL = SIZE / 2 / math.tan(math.radians(FOV / 2))
FRONT = camera_info("orbit", yaw=0.0, pitch=0.0, distance=4.0, fov=FOV)  # on world +Z, looking at the origin


def _dc(rgb):
    return [(c - 0.5) / SH_C0 for c in rgb]


def _splat(*gaussians) -> Splat:
    """Each gaussian: (position, scale, rotation wxyz, opacity, rgb) in the splat frame."""
    pos, scale, rot, opacity, rgb = zip(*gaussians)
    t = lambda x: torch.tensor([list(x)], dtype=torch.float32)  # noqa: E731
    return Splat(positions=t(pos), scales=t(scale), rotations=t(rot), opacities=t(opacity),
                 sh=torch.tensor([[[_dc(c)] for c in rgb]], dtype=torch.float32))


def _render(splat, camera=FRONT, frames=1, style="color", background="#000000", sharpen=1.0, headlight=0.0,
            threshold=0.0, bg_image=None, size=SIZE):
    cls = NODES["RenderSplat"]
    return cls.execute(splat=splat, width=size, height=size, frames=frames, splat_scale=1.0, sharpen=sharpen,
                       headlight_shading=headlight, opacity_threshold=threshold, render_style=style,
                       background=background, bg_image=bg_image, camera_info=camera)


def _moments(mask: torch.Tensor) -> tuple[float, float, float, float, float]:
    """Centre (x, y) in pixels and the covariance (xx, yy, xy) of a coverage map's weight."""
    h, w = mask.shape
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    p = mask / mask.sum()
    cx, cy = float((p * xs).sum()), float((p * ys).sum())
    return (cx, cy, float((p * (xs - cx) ** 2).sum()), float((p * (ys - cy) ** 2).sum()),
            float((p * (xs - cx) * (ys - cy)).sum()))


def _linear(c: torch.Tensor) -> torch.Tensor:
    return torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def test_a_gaussian_is_an_ellipse_centred_where_the_camera_projects_it():
    _, mask = _render(_splat(((0, 0, 0), (0.2, 0.05, 0.05), (1, 0, 0, 0), 0.9, (1, 1, 1))))
    cx, cy, vxx, vyy, vxy = _moments(mask[0])
    assert (cx, cy) == pytest.approx((32.0, 32.0), abs=1e-3)
    # projected standard deviations f·σ/z, widened by the 0.3 px² low-pass (the 3σ cut trims a little)
    assert vxx == pytest.approx((FOCAL * 0.2 / 4) ** 2 + 0.3, rel=0.06)
    assert vyy == pytest.approx((FOCAL * 0.05 / 4) ** 2 + 0.3, rel=0.06)
    # the four pixels round the centre sit half a pixel off it on each axis
    peak = 0.9 * math.exp(-0.5 * (0.25 / ((FOCAL * 0.2 / 4) ** 2 + 0.3) + 0.25 / ((FOCAL * 0.05 / 4) ** 2 + 0.3)))
    assert abs(vxy) < 1e-3 and mask.max().item() == pytest.approx(peak, rel=1e-4)
    # splat frame is 3DGS's (Y down, Z forward): +X lands right of centre, +Y below it
    _, right = _render(_splat(((0.5, 0, 0), (0.05, 0.05, 0.05), (1, 0, 0, 0), 0.9, (1, 1, 1))))
    _, below = _render(_splat(((0, 0.5, 0), (0.05, 0.05, 0.05), (1, 0, 0, 0), 0.9, (1, 1, 1))))
    shift = FOCAL * 0.5 / 4
    assert _moments(right[0])[:2] == pytest.approx((32.0 + shift, 32.0), abs=0.02)  # the 3σ box cut, a hair off
    assert _moments(below[0])[:2] == pytest.approx((32.0, 32.0 + shift), abs=0.02)


def test_the_ellipse_turns_with_the_gaussian():
    c, s = math.cos(math.pi / 4), math.sin(math.pi / 4)
    upright = (c, 0, 0, s)  # 90° about the view axis: the long axis now runs vertically
    _, mask = _render(_splat(((0, 0, 0), (0.2, 0.05, 0.05), upright, 0.9, (1, 1, 1))))
    _, _, vxx, vyy, _ = _moments(mask[0])
    assert vyy > 10 * vxx
    c8, s8 = math.cos(math.pi / 8), math.sin(math.pi / 8)
    _, diag = _render(_splat(((0, 0, 0), (0.2, 0.05, 0.05), (c8, 0, 0, s8), 0.9, (1, 1, 1))))
    _, _, vxx, vyy, vxy = _moments(diag[0])
    # +45° about splat Z takes +X towards splat +Y (image down): right and down together
    assert vxx == pytest.approx(vyy, rel=0.02) and vxy > 0.8 * vxx


def test_front_to_back_compositing_whatever_the_order_given():
    red = ((0, 0, -1.0), (0.3, 0.3, 0.3), (1, 0, 0, 0), 0.5, (1, 0, 0))  # splat -Z: nearer the camera on world +Z
    blue = ((0, 0, 1.0), (0.3, 0.3, 0.3), (1, 0, 0, 0), 0.5, (0, 0, 1))
    for order in ((red, blue), (blue, red)):
        image, mask = _render(_splat(*order))
        lin = _linear(image[0, 31:33, 31:33].reshape(-1, 3))
        a = mask[0, 31:33, 31:33].reshape(-1)
        # red: α1, blue: (1 − α1)·α2 with α ≈ 0.5 at the centre: red twice blue
        assert torch.allclose(lin[:, 0] / lin[:, 2], torch.full((4,), 2.0), rtol=0.03)
        assert torch.allclose(a, torch.full((4,), 0.75), atol=0.01) and lin[:, 1].max() < 1e-6


def test_sharpen_favours_the_dominant_splat_and_keeps_coverage():
    red = ((0, 0, -1.0), (0.3, 0.3, 0.3), (1, 0, 0, 0), 0.5, (1, 0, 0))
    blue = ((0, 0, 1.0), (0.3, 0.3, 0.3), (1, 0, 0, 0), 0.5, (0, 0, 1))
    plain, mask = _render(_splat(red, blue), sharpen=1.0)
    sharp, sharp_mask = _render(_splat(red, blue), sharpen=3.0)
    ratio = lambda im: (_linear(im[0, 32, 32])[0] / _linear(im[0, 32, 32])[2]).item()  # noqa: E731
    assert ratio(sharp) == pytest.approx(2.0 ** 3, rel=0.05) and ratio(plain) == pytest.approx(2.0, rel=0.03)
    assert torch.allclose(mask, sharp_mask)


def test_turntable_frames_and_direction():
    offset = _splat(((0.5, 0, 0), (0.05, 0.05, 0.05), (1, 0, 0, 0), 0.9, (1, 1, 1)))
    still, _ = _render(offset)
    images, masks = _render(offset, frames=4)
    reverse, _ = _render(offset, frames=-4)
    assert images.shape == (4, SIZE, SIZE, 3) and masks.shape == (4, SIZE, SIZE)
    assert torch.allclose(images[0], still[0])
    assert torch.allclose(images[1], reverse[3], atol=1e-5) and torch.allclose(images[3], reverse[1], atol=1e-5)
    # a quarter turn puts the camera on world +X: the gaussian on the view axis, nearer, so larger
    cx, cy, vxx, _, _ = _moments(masks[1])
    assert (cx, cy) == pytest.approx((32.0, 32.0), abs=1e-3)
    assert vxx > _moments(masks[0])[2]
    assert _moments(masks[3])[0] == pytest.approx(32.0, abs=1e-3)  # behind, from -X: centred too
    two = Splat(*(torch.cat([getattr(offset, k)] * 2) for k in ("positions", "scales", "rotations", "opacities", "sh")))
    assert _render(two, frames=3)[0].shape == (6, SIZE, SIZE, 3)


def test_auto_framing_fits_the_splat():
    g = torch.Generator().manual_seed(0)
    n = 400
    cloud = Splat(positions=torch.randn(1, n, 3, generator=g) + torch.tensor([5.0, -2.0, 3.0]),
                  scales=torch.full((1, n, 3), 0.05), rotations=torch.tensor([1.0, 0, 0, 0]).expand(1, n, 4),
                  opacities=torch.full((1, n), 0.8), sh=torch.zeros(1, n, 1, 3))
    _, mask = _render(cloud, camera=None)
    cx, cy, *_ = _moments(mask[0])
    assert (cx, cy) == pytest.approx((32.0, 32.0), abs=4.0)
    border = torch.cat([mask[0, :2].reshape(-1), mask[0, -2:].reshape(-1), mask[0, :, :2].reshape(-1),
                        mask[0, :, -2:].reshape(-1)])
    assert mask[0].sum() > 200 and border.max() < 0.5


def test_depth_and_normal_styles():
    near = ((-0.5, 0, -1.0), (0.1, 0.1, 0.1), (1, 0, 0, 0), 0.99, (1, 1, 1))
    far = ((0.5, 0, 1.0), (0.1, 0.1, 0.1), (1, 0, 0, 0), 0.99, (1, 1, 1))
    depth, _ = _render(_splat(near, far), style="depth")
    u_near = round(32 + FOCAL * -0.5 / 3 - 0.5)
    u_far = round(32 + FOCAL * 0.5 / 5 - 0.5)
    assert depth[0, 31, u_near, 0].item() == pytest.approx(1.0, abs=0.02)
    assert depth[0, 31, u_far, 0].item() == pytest.approx(0.0, abs=0.02)
    assert depth[0, 0, 0].tolist() == [0.0, 0.0, 0.0] and depth.max() <= 1.0
    theta = math.radians(30)
    tilted = (math.cos(theta / 2), math.sin(theta / 2), 0, 0)  # 30° about splat X
    surfel = _splat(((0, 0, 0), (0.4, 0.4, 0.01), tilted, 0.99, (1, 1, 1)))
    normal, _ = _render(surfel, style="normal")
    expected = [0.5, 0.5 - 0.5 * math.sin(theta), 0.5 + 0.5 * math.cos(theta)]
    assert normal[0, 31, 31].tolist() == pytest.approx(expected, abs=1e-3)
    assert normal[0, 0, 0].tolist() == [0.0, 0.0, 0.0]


def test_headlight_and_clay_shading():
    face_on = _splat(((0, 0, 0), (0.4, 0.4, 0.01), (1, 0, 0, 0), 0.99, (1, 1, 1)))
    theta = math.radians(60)
    turned = _splat(((0, 0, 0), (0.4, 0.4, 0.01), (math.cos(theta / 2), math.sin(theta / 2), 0, 0), 0.99, (1, 1, 1)))
    lit = lambda s, k: _linear(_render(s, headlight=k)[0][0, 32, 32, 0]).item()  # noqa: E731
    assert lit(face_on, 1.0) == pytest.approx(lit(face_on, 0.0), rel=1e-4)
    # 1 − 0.6·k·(1 − cos 60°) = 0.7 at k = 1
    assert lit(turned, 1.0) / lit(turned, 0.0) == pytest.approx(0.7, rel=0.01)
    clay, _ = _render(face_on, style="clay")
    grey = clay[0, 32, 32]
    assert grey[0] == grey[1] == grey[2] and 0.2 < grey[0].item() < 0.75


def test_backgrounds_and_opacity_threshold():
    faint = _splat(((0, 0, 0), (0.2, 0.2, 0.2), (1, 0, 0, 0), 0.3, (1, 1, 1)))
    image, mask = _render(faint, background="#ff0000")
    assert image[0, 0, 0].tolist() == pytest.approx([1.0, 0.0, 0.0]) and mask[0, 0, 0] == 0
    culled, culled_mask = _render(faint, background="#00ff00", threshold=0.5)
    assert culled_mask.max() == 0 and torch.allclose(culled[0], torch.tensor([0.0, 1.0, 0.0]).expand(SIZE, SIZE, 3))
    plates = torch.stack([torch.full((8, 8, 3), 0.25), torch.full((8, 8, 3), 0.75)])
    frames, _ = _render(faint, frames=3, bg_image=plates)
    assert [round(frames[i, 0, 0, 0].item(), 3) for i in range(3)] == [0.25, 0.75, 0.25]  # one plate per frame
    depth, _ = _render(faint, style="depth", bg_image=plates)
    assert depth[0, 0, 0].tolist() == [0.0, 0.0, 0.0]  # plates are for color and clay


def test_refused_inputs():
    ok = _splat(((0, 0, 0), (0.2, 0.2, 0.2), (1, 0, 0, 0), 0.5, (1, 1, 1)))
    with pytest.raises(ValidationError, match="`background` must look like #RRGGBB"):
        _render(ok, background="red")
    with pytest.raises(ValidationError, match="`splat` must be a SPLAT"):
        _render({"positions": []})
    with pytest.raises(ValidationError, match="`camera_info` must be a LOAD3D_CAMERA"):
        _render(ok, camera=[0, 0, 4])
    with pytest.raises(ValidationError, match="`bg_image` must be an IMAGE"):
        _render(ok, bg_image=torch.zeros(8, 8, 3))
    with pytest.raises(ValidationError, match="`render_style`"):
        _render(ok, style="wireframe")
    with pytest.raises(ValidationError, match="fov"):
        _render(ok, camera={**FRONT, "fov": 200.0})


def test_declaration_follows_the_template(image_engine):
    info = image_engine.object_info("RenderSplat")["RenderSplat"]
    req = info["input"]["required"]
    # 3d_triposplat_image_to_gaussian_splat: [1024, 1024, 75, 1, 2, 0, 0, 'color', '#848484']
    assert list(req) == ["splat", "width", "height", "frames", "splat_scale", "sharpen", "headlight_shading",
                         "opacity_threshold", "render_style", "background"]
    assert [req[k][1]["default"] for k in list(req)[1:8]] == [1024, 1024, 1, 1.0, 2.0, 0.0, 0.0]
    assert req["render_style"][0] == ["color", "clay", "depth", "normal"] and req["background"][0] == "COLOR"
    assert (req["frames"][1]["min"], req["frames"][1]["max"], req["width"][1]["step"]) == (-240, 240, 8)
    assert list(info["input"]["optional"]) == ["bg_image", "camera_info"]
    assert info["input"]["optional"]["camera_info"][0] == "LOAD3D_CAMERA"
    assert info["output"] == ["IMAGE", "MASK"] and info["output_name"] == ["image", "mask"]
    assert info["display_name"] == "Render Splat"


def test_template_camera_and_render_through_the_engine(image_engine):
    # the template's CreateCameraInfo ['orbit', 35, 30, 2.5, 0, 0, 0, 0, 35, 1, 'perspective'] feeding RenderSplat
    g = torch.Generator().manual_seed(1)
    n = 300
    splat = Splat(positions=torch.rand(1, n, 3, generator=g) - 0.5, scales=torch.full((1, n, 3), 0.04),
                  rotations=torch.tensor([1.0, 0, 0, 0]).expand(1, n, 4), opacities=torch.full((1, n), 0.9),
                  sh=torch.full((1, n, 1, 3), 0.5))
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "splat"}},
              "2": {"class_type": "CreateCameraInfo", "inputs": {
                  "mode": "orbit", "mode.yaw": 35, "mode.pitch": 30, "mode.distance": 2.5, "target_x": 0,
                  "target_y": 0, "target_z": 0, "roll": 0, "fov": 35, "zoom": 1, "camera_type": "perspective"}},
              "3": {"class_type": "RenderSplat", "inputs": {
                  "splat": ["1", 0], "width": 64, "height": 64, "frames": 3, "splat_scale": 1, "sharpen": 2,
                  "headlight_shading": 0, "opacity_threshold": 0, "render_style": "color", "background": "#848484",
                  "camera_info": ["2", 0]}}}
    result = run_prompt(image_engine, prompt, {"splat": splat}, sinks=[["3", 0], ["3", 1]])
    assert result.status == "success", result.errors
    image, mask = result.value("3", 0), result.value("3", 1)
    assert image.shape == (3, 64, 64, 3) and mask.shape == (3, 64, 64)
    assert image[0, 0, 0].tolist() == pytest.approx([0x84 / 255] * 3, abs=1e-4)
    assert _moments(mask[0])[:2] == pytest.approx((32.0, 32.0), abs=3.0) and mask.amax(dim=(1, 2)).min() > 0.95


def test_orthographic_look_at_and_empty_splats():
    ortho = camera_info("orbit", yaw=0.0, pitch=0.0, distance=4.0, fov=FOV, camera_type="orthographic")
    near = _render(_splat(((0, 0, -2.0), (0.1, 0.1, 0.1), (1, 0, 0, 0), 0.9, (1, 1, 1))), camera=ortho)[1]
    far = _render(_splat(((0, 0, 2.0), (0.1, 0.1, 0.1), (1, 0, 0, 0), 0.9, (1, 1, 1))), camera=ortho)[1]
    # parallel projection: the size is the same at any depth, scaled to keep the target's plane
    assert torch.allclose(near, far, atol=1e-6)
    assert _moments(near[0])[2] == pytest.approx((FOCAL / 4 * 0.1) ** 2 + 0.3, rel=0.06)
    # a camera given only by position and target looks at the target
    no_rotation = {k: v for k, v in FRONT.items() if k != "quaternion"}
    ball = _splat(((0.3, 0, 0), (0.1, 0.1, 0.1), (1, 0, 0, 0), 0.9, (1, 1, 1)))
    assert torch.allclose(_render(ball, camera=no_rotation)[1], _render(ball)[1], atol=1e-5)
    empty = Splat(torch.zeros(1, 0, 3), torch.zeros(1, 0, 3), torch.zeros(1, 0, 4), torch.zeros(1, 0),
                  torch.zeros(1, 0, 1, 3))
    image, mask = _render(empty, camera=None, frames=2, background="#336699")
    assert image.shape == (2, SIZE, SIZE, 3) and mask.max() == 0
    assert image[1, 5, 5].tolist() == pytest.approx([0x33 / 255, 0x66 / 255, 0x99 / 255], abs=1e-6)


def test_padded_batch_items_render_only_their_own_gaussians():
    left = ((-0.5, 0, 0), (0.1, 0.1, 0.1), (1, 0, 0, 0), 0.9, (1, 1, 1))
    right = ((0.5, 0, 0), (0.1, 0.1, 0.1), (1, 0, 0, 0), 0.9, (1, 1, 1))
    pair, lone = _splat(left, right), _splat(left, left)
    batch = Splat(*(torch.cat([getattr(pair, k), getattr(lone, k)]) for k in
                    ("positions", "scales", "rotations", "opacities", "sh")), counts=(2, 1))
    _, masks = _render(batch)
    _, alone = _render(_splat(left))
    assert torch.allclose(masks[0], _render(pair)[1][0], atol=1e-6)
    assert torch.allclose(masks[1], alone[0], atol=1e-6)  # the padding is ignored
    assert masks[0, :, 36:].max() > 0.5 and masks[1, :, 36:].max() == 0
