"""Rendering gaussian splats (``ops.splat``) to images on the CPU: an anisotropic EWA splat
rasteriser with exact per-pixel front-to-back compositing.

Owns the view of a LOAD3D_CAMERA (:func:`camera_view`, :func:`turntable`, :func:`auto_camera`)
and :func:`render_gaussians`. Each gaussian's covariance is projected through the local affine
approximation of the camera (Zwicker et al.'s EWA splatting) and widened by a 0.3 px² low-pass,
as 3D Gaussian Splatting trains with, which antialiases splats smaller than a pixel. Every pixel a
splat's 3σ box covers becomes a fragment; fragments are sorted stably by pixel with the splats
already in depth order, so each pixel composites its own fragments exactly front to back (a
segmented cumulative sum of log transmittance), in chunks of splats that carry each pixel's
transmittance forward. Cost is linear in the fragments (the splats' screen area); pixels already
opaque drop later fragments. torch only; no nodes.

Frames: the splat is in 3D Gaussian Splatting's frame (X right, Y down, Z forward); the camera
in the viewer's world (three.js: right-handed, Y up, looking down its local −Z). World = splat
turned 180° about X: (x, y, z) → (x, −y, −z).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nodeloom.errors import ValidationError
from nodeloom.ops.camera_info import camera_info as make_camera_info
from nodeloom.ops.camera_info import rotate_by_quaternion

__all__ = ["STYLES", "CameraView", "auto_camera", "camera_view", "quaternion_to_matrix", "render_gaussians",
           "turntable"]

STYLES = ("color", "clay", "depth", "normal")
_FLIP = torch.tensor([1.0, -1.0, -1.0])  # splat frame <-> world (its own inverse)
_LOW_PASS = 0.3  # px², the screen-space dilation 3DGS trains with
_MIN_ALPHA, _MAX_ALPHA = 1.0 / 255.0, 0.99
_OPAQUE_LOG_T = math.log(1e-4)
_NEAR = 1e-2
_FRAGMENT_BUDGET = 4_000_000
_CLAY_ALBEDO = 0.75
_CLAY_LIGHT = torch.tensor([-0.45, 0.6, 0.66])  # from the upper left, in front (camera axes)


@dataclass(frozen=True)
class CameraView:
    """A camera ready to project: ``eye`` and the ``axes`` rows right, up, back (world), the focal
    length in pixels, and for orthographic views the pixels per world unit."""

    eye: torch.Tensor
    axes: torch.Tensor
    focal: float
    ortho_scale: float | None


def _vec(value: Any, key: str) -> np.ndarray:
    if not isinstance(value, dict):
        raise ValidationError(f"`camera_info` {key} must be a dict with x, y, z, got {type(value).__name__}")
    try:
        return np.array([float(value.get(a, 0.0)) for a in "xyz"])
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"`camera_info` {key} must hold numbers x, y, z: {exc}") from exc


def _quaternion(camera: dict[str, Any]) -> np.ndarray:
    """The camera's rotation (x, y, z, w), from its quaternion or by looking at its target."""
    q = camera.get("quaternion")
    if isinstance(q, dict) and q:
        out = np.array([float(q.get(a, 0.0)) for a in "xyz"] + [float(q.get("w", 1.0))])
        if np.linalg.norm(out) > 1e-12:
            return out / np.linalg.norm(out)
    pos, tgt = _vec(camera.get("position", {}), "position"), _vec(camera.get("target", {}), "target")
    made = make_camera_info("look_at", position=tuple(pos), target=tuple(tgt))["quaternion"]
    return np.array([made[a] for a in ("x", "y", "z", "w")])


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[N, 3, 3]`` of quaternions ``[N, 4]`` in (w, x, y, z) order (normalised here)."""
    w, x, y, z = torch.nn.functional.normalize(q, dim=-1).unbind(-1)
    rows = [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]
    return torch.stack(rows, dim=-1).reshape(-1, 3, 3)


def camera_view(camera: Any, width: int, height: int) -> CameraView:
    """Read a LOAD3D_CAMERA: ``position``, ``quaternion`` (or ``target`` to look at), ``fov``
    (degrees, spanning the shorter image side; 35 when absent or 0), ``zoom`` (focal multiplier)
    and ``cameraType`` (``orthographic``: the view is scaled so the target's plane keeps the
    perspective scale).

    Raises:
        ValidationError: not a dict, or fields that are not numbers.
    """
    if not isinstance(camera, dict):
        raise ValidationError(f"`camera_info` must be a LOAD3D_CAMERA dict, got {type(camera).__name__}")
    q = _quaternion(camera)
    axes = np.stack([rotate_by_quaternion(q, np.eye(3)[i]) for i in range(3)])
    eye = _vec(camera.get("position", {}), "position")
    try:
        fov = float(camera.get("fov") or 35.0)
        zoom = float(camera.get("zoom") or 1.0)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"`camera_info` fov and zoom must be numbers: {exc}") from exc
    if not 0.0 < fov < 180.0:
        raise ValidationError(f"`camera_info` fov must be between 0 and 180 degrees, got {fov}")
    focal = min(width, height) / 2.0 / math.tan(math.radians(fov) / 2.0) * zoom
    ortho = None
    if str(camera.get("cameraType", "perspective")).lower().startswith("ortho"):
        target = _vec(camera.get("target", {}), "target")
        ortho = focal / max(float(np.linalg.norm(target - eye)), 1e-6)
    return CameraView(torch.tensor(eye, dtype=torch.float32), torch.tensor(axes, dtype=torch.float32), focal, ortho)


def turntable(camera: dict[str, Any], degrees: float) -> dict[str, Any]:
    """``camera`` swung ``degrees`` about world +Y around its target (position and rotation)."""
    a = math.radians(degrees)
    pos, tgt = _vec(camera.get("position", {}), "position"), _vec(camera.get("target", {}), "target")
    turn = np.array([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]])
    new_pos = tgt + turn @ (pos - tgt)
    x, y, z, w = _quaternion(camera)
    s, c = math.sin(a / 2), math.cos(a / 2)  # (0, s, 0, c) ⊗ (x, y, z, w)
    q = (c * x + s * z, c * y + s * w, c * z - s * x, c * w - s * y)
    return {**camera, "position": dict(zip("xyz", map(float, new_pos))),
            "quaternion": dict(zip("xyzw", map(float, q)))}


def auto_camera(positions: torch.Tensor) -> dict[str, Any]:
    """A 35° camera at yaw 35°, pitch 30° around the splat's mean (splat-frame ``positions``
    ``[N, 3]``), far enough that 99 % of the splats fit in 90 % of the view."""
    world = positions.double() * _FLIP.double()
    centre = world.mean(dim=0) if len(world) else torch.zeros(3, dtype=torch.float64)
    extent = float(torch.quantile((world - centre).norm(dim=-1), 0.99)) if len(world) else 1.0
    distance = max(extent, 1e-4) / (math.tan(math.radians(35.0) / 2.0) * 0.9)
    return make_camera_info("orbit", target=tuple(float(v) for v in centre), yaw=35.0, pitch=30.0,
                            distance=distance, fov=35.0)


def _window(extent: torch.Tensor) -> torch.Tensor:
    """``extent`` rounded up to a ladder of four sizes per octave (1..8 exact), so splats share windows."""
    e = extent.clamp(1, 4095).double()
    octave = torch.pow(2.0, torch.floor(torch.log2(e)) - 2).clamp_min(1.0)
    return (torch.ceil(e / octave) * octave).long().clamp(max=4095)


def _project(gauss: dict[str, torch.Tensor], view: CameraView, width: int, height: int,
             splat_scale: float) -> dict[str, torch.Tensor]:
    """Camera-space centres, screen centres, conics and 3σ boxes of the visible gaussians, front first."""
    world = gauss["positions"] * _FLIP
    rel = (world - view.eye) @ view.axes.T  # camera axes: right, up, back
    depth = -rel[:, 2]
    rot = _FLIP[None, :, None] * quaternion_to_matrix(gauss["rotations"])  # splat -> world
    cam_rot = view.axes[None] @ rot
    sig = (gauss["scales"] * splat_scale).clamp_min(1e-8)
    cov = (cam_rot * sig[:, None, :].square()) @ cam_rot.transpose(1, 2)
    n = len(depth)
    jac = torch.zeros(n, 2, 3)
    if view.ortho_scale is None:
        inv = 1.0 / depth.clamp_min(_NEAR)
        u = width / 2.0 + view.focal * rel[:, 0] * inv
        v = height / 2.0 - view.focal * rel[:, 1] * inv
        # d(u, v) / d(right, up, back) with depth = -back
        jac[:, 0, 0], jac[:, 0, 2] = view.focal * inv, view.focal * rel[:, 0] * inv * inv
        jac[:, 1, 1], jac[:, 1, 2] = -view.focal * inv, -view.focal * rel[:, 1] * inv * inv
    else:
        u = width / 2.0 + view.ortho_scale * rel[:, 0]
        v = height / 2.0 - view.ortho_scale * rel[:, 1]
        jac[:, 0, 0], jac[:, 1, 1] = view.ortho_scale, -view.ortho_scale
    cov2 = jac @ cov @ jac.transpose(1, 2) + _LOW_PASS * torch.eye(2)
    a, b, c = cov2[:, 0, 0], cov2[:, 0, 1], cov2[:, 1, 1]
    det = (a * c - b * b).clamp_min(1e-12)
    rx, ry = 3.0 * a.sqrt(), 3.0 * c.sqrt()
    x0 = torch.floor(u - rx).clamp(0, width).long()
    x1 = torch.ceil(u + rx).clamp(0, width).long()
    y0 = torch.floor(v - ry).clamp(0, height).long()
    y1 = torch.ceil(v + ry).clamp(0, height).long()
    visible = (depth > _NEAR) & (x1 > x0) & (y1 > y0) & (gauss["opacities"] > _MIN_ALPHA)
    side = _window(x1 - x0) * 4096 + _window(y1 - y0)  # window width and height, packed
    # a surfel's normal is its thinnest axis, turned to face the camera (camera axes)
    normal = cam_rot[torch.arange(n), :, sig.argmin(dim=-1)]
    to_eye = -rel / rel.norm(dim=-1, keepdim=True).clamp_min(1e-12) if view.ortho_scale is None else \
        torch.tensor([0.0, 0.0, 1.0]).expand(n, 3)
    normal = torch.where((normal * to_eye).sum(-1, keepdim=True) < 0, -normal, normal)
    facing = (normal * to_eye).sum(-1).clamp(0.0, 1.0)
    out = {"u": u, "v": v, "ca": c / det, "cb": -b / det, "cc": a / det, "x0": x0, "y0": y0, "bw": x1 - x0,
           "bh": y1 - y0, "side": side, "depth": depth, "normal": normal, "facing": facing,
           "opacity": gauss["opacities"], "rgb": gauss["rgb"]}
    index = torch.nonzero(visible).squeeze(1)
    index = index.index_select(0, torch.argsort(depth.index_select(0, index), stable=True))
    return {k: t.index_select(0, index) for k, t in out.items()}


def _fragments(p: dict[str, torch.Tensor], lo: int, hi: int, width: int) -> tuple[torch.Tensor, ...]:
    """Pixel index, splat index and alpha of every fragment of splats ``lo:hi`` worth drawing.

    Splats are grouped by their window (box width and height rounded up by :func:`_window`) so each
    group evaluates a dense ``[splats, w·h]`` block by broadcasting (no per-fragment gathers);
    pixels outside a splat's own box or under the alpha floor are dropped."""
    side = p["side"][lo:hi]
    pixes, splats, alphas = [], [], []
    for packed in torch.unique(side).tolist():
        sel = torch.nonzero(side == packed).squeeze(1) + lo
        win_w, win_h = divmod(packed, 4096)
        x0, y0 = p["x0"].index_select(0, sel)[:, None], p["y0"].index_select(0, sel)[:, None]
        px = x0 + torch.arange(win_w).repeat(win_h)[None, :]
        py = y0 + torch.arange(win_h).repeat_interleave(win_w)[None, :]
        inside = (px < x0 + p["bw"].index_select(0, sel)[:, None]) & (py < y0 + p["bh"].index_select(0, sel)[:, None])
        col = lambda key: p[key].index_select(0, sel)[:, None]  # noqa: E731
        dx, dy = px + 0.5 - col("u"), py + 0.5 - col("v")
        power = (col("ca") * dx * dx + 2.0 * col("cb") * dx * dy + col("cc") * dy * dy).mul_(-0.5)
        alpha = power.exp_().mul_(col("opacity")).clamp_(max=_MAX_ALPHA)
        keep = torch.nonzero(((alpha >= _MIN_ALPHA) & inside).reshape(-1)).squeeze(1)
        pixes.append((py * width + px).reshape(-1).index_select(0, keep))
        splats.append(sel.index_select(0, torch.div(keep, win_w * win_h, rounding_mode="floor")))
        alphas.append(alpha.reshape(-1).index_select(0, keep))
    return torch.cat(pixes), torch.cat(splats), torch.cat(alphas)


def _chunks(area: torch.Tensor) -> list[tuple[int, int]]:
    """Consecutive splat ranges whose windows hold about ``_FRAGMENT_BUDGET`` pixels each."""
    ends = torch.cumsum(area, 0)
    bounds, lo = [], 0
    while lo < len(area):
        base = int(ends[lo - 1]) if lo else 0
        hi = int(torch.searchsorted(ends, base + _FRAGMENT_BUDGET, right=True))
        hi = max(hi, lo + 1)
        bounds.append((lo, hi))
        lo = hi
    return bounds


def render_gaussians(gauss: dict[str, torch.Tensor], camera: Any, width: int, height: int, *,
                     splat_scale: float = 1.0, sharpen: float = 1.0, headlight: float = 0.0, style: str = "color",
                     background: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Render one splat item: ``gauss`` holds ``positions``, ``scales``, ``rotations`` (w, x, y, z),
    ``opacities`` and ``rgb`` (sRGB 0..1) as float32 tensors.

    ``sharpen`` p > 1 weights each pixel's colour by its fragments' contribution to the power p
    (total coverage unchanged), so the dominant splat shows more; 1 is plain compositing.
    ``headlight`` k scales each splat's colour (``color`` style) by ``1 − 0.6·k·(1 − n·v)``, its
    surfel normal against the view.
    Styles: ``color`` (blended in linear light over ``background`` [H, W, 3] or [3], sRGB),
    ``clay`` (albedo 0.75, a key light from the upper left, over the background), ``depth``
    (mean depth of the covered pixels, nearest 1, farthest 0, black elsewhere), ``normal``
    (OpenGL normal map: +X right, +Y up, +Z to the viewer, black where coverage ≤ 0.5).

    Returns:
        ``(image [H, W, 3], coverage [H, W])`` in 0..1.
    """
    if style not in STYLES:
        raise ValidationError(f"`render_style` must be one of {list(STYLES)}, got {style!r}")
    view = camera_view(camera, width, height)
    p = _project(gauss, view, width, height, splat_scale)
    rgb = p["rgb"].clamp(0.0, 1.0)
    if style == "clay":
        half = 0.5 + 0.5 * (p["normal"] @ torch.nn.functional.normalize(_CLAY_LIGHT, dim=0))
        rgb = (_CLAY_ALBEDO * (0.3 + 0.7 * half.square()))[:, None].expand(-1, 3)
    elif style == "color":
        rgb = _linear(rgb)
    if headlight > 0 and style == "color":  # clay has its own light
        rgb = rgb * (1.0 - 0.6 * headlight * (1.0 - p["facing"])).clamp(0.0, 1.0)[:, None]
    flat = width * height
    log_t = torch.zeros(flat, dtype=torch.float64)
    weight, weight_p = torch.zeros(flat), torch.zeros(flat)
    color, depth, normal = torch.zeros(flat, 3), torch.zeros(flat), torch.zeros(flat, 3)
    count = len(p["side"])
    for lo, hi in _chunks(torch.div(p["side"], 4096, rounding_mode="floor") * (p["side"] % 4096)):
        pix, splat, alpha = _fragments(p, lo, hi, width)
        live = torch.nonzero(log_t.index_select(0, pix) > _OPAQUE_LOG_T).squeeze(1)  # opaque pixels take no more
        if len(live) == 0:
            continue
        pix, splat, alpha = pix.index_select(0, live), splat.index_select(0, live), alpha.index_select(0, live)
        # splats are numbered front first: sorting by (pixel, splat) gives each pixel's run front to back
        key, order = torch.sort(pix * count + splat)
        pix = torch.div(key, count, rounding_mode="floor")
        splat, alpha = key - pix * count, alpha.index_select(0, order)
        step = torch.log1p(-alpha.double())
        before = torch.cumsum(step, 0) - step
        _, counts = torch.unique_consecutive(pix, return_counts=True)
        first = torch.cumsum(counts, 0) - counts
        before -= torch.repeat_interleave(before.index_select(0, first), counts)
        w = alpha * torch.exp(log_t.index_select(0, pix) + before).float()
        log_t.index_add_(0, pix, step)
        weight.index_add_(0, pix, w)
        wp = w.pow(sharpen) if sharpen != 1.0 else w
        weight_p.index_add_(0, pix, wp)
        color.index_add_(0, pix, wp[:, None] * rgb.index_select(0, splat))
        if style == "depth":
            depth.index_add_(0, pix, w * p["depth"].index_select(0, splat))
        elif style == "normal":
            normal.index_add_(0, pix, w[:, None] * p["normal"].index_select(0, splat))
    coverage = (1.0 - torch.exp(log_t)).float().clamp(0.0, 1.0)
    image = _finish(style, color, weight, weight_p, depth, normal, coverage, background, rgb.dtype)
    return image.reshape(height, width, 3).clamp(0.0, 1.0), coverage.reshape(height, width)


def _linear(srgb: torch.Tensor) -> torch.Tensor:
    return torch.where(srgb <= 0.04045, srgb / 12.92, ((srgb.clamp_min(0.0) + 0.055) / 1.055) ** 2.4)


def _srgb(linear: torch.Tensor) -> torch.Tensor:
    c = linear.clamp(0.0, 1.0)
    return torch.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1.0 / 2.4) - 0.055)


def _finish(style: str, color: torch.Tensor, weight: torch.Tensor, weight_p: torch.Tensor, depth: torch.Tensor,
            normal: torch.Tensor, coverage: torch.Tensor, background: torch.Tensor | None,
            dtype: torch.dtype) -> torch.Tensor:
    """The pixels ``[H·W, 3]`` of a style from the accumulated buffers."""
    covered = weight > 1e-8
    if style == "depth":
        mean = depth / weight.clamp_min(1e-8)
        solid = coverage > 0.5
        out = torch.zeros_like(mean)
        if bool(solid.any()):
            near, far = mean[solid].min(), mean[solid].max()
            out = torch.where(solid, ((far - mean) / (far - near).clamp_min(1e-6)).clamp(0.0, 1.0), out)
        return out[:, None].expand(-1, 3)
    if style == "normal":
        n = torch.nn.functional.normalize(normal, dim=-1)
        return torch.where((coverage > 0.5)[:, None], (n + 1.0) * 0.5, torch.zeros_like(n))
    # colour: the weight^p-normalised blend carries the whole coverage
    blend = torch.where(covered[:, None], color / weight_p.clamp_min(1e-12)[:, None] * weight[:, None],
                        torch.zeros_like(color))
    bg = torch.zeros(3, dtype=dtype) if background is None else background.reshape(-1, 3).to(dtype)
    if style == "color":
        return _srgb(blend + (1.0 - coverage)[:, None] * _linear(bg))
    return blend + (1.0 - coverage)[:, None] * bg
