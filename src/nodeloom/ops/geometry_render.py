"""Turning geometry-estimation outputs (MoGe, Depth Anything 3) into images and meshes.

Owns the Turbo colour map, the depth normalisations (MoGe's percentile-clipped disparity,
Depth Anything 3's percentile "v2 style" and min/max, its sky clip), camera-space normals from a
point map, and the triangulation of a point-map grid into a mesh. Plain torch on arrays: no
nodes, no model code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["clip_sky", "depth_edges", "minmax_depth", "moge_disparity", "normals_from_points",
           "triangulate_grid", "turbo", "v2_style_depth"]

#: fifth-order polynomial fit of Google's Turbo colour map (per channel, constant term first)
_TURBO = torch.tensor([
    [0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
    [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
    [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
], dtype=torch.float64)

#: sky probability at and above which a pixel counts as sky for Depth Anything 3's statistics
SKY_THRESHOLD = 0.3


def turbo(x: torch.Tensor) -> torch.Tensor:
    """Values in 0..1 (any shape) mapped through Turbo: shape ``[..., 3]``, blue-black low, dark red high."""
    t = x.double().clamp(0.0, 1.0)
    powers = torch.stack([t ** i for i in range(6)], dim=-1)
    return (powers @ _TURBO.T).clamp(0.0, 1.0).to(torch.float32)


def moge_disparity(depth: torch.Tensor, low: float = 0.001, high: float = 0.999) -> torch.Tensor:
    """Per-image 1/depth stretched to 0..1 between its ``low`` and ``high`` quantiles over valid
    pixels (finite, positive): near is bright; invalid pixels are 0. ``depth`` is ``[B, H, W]``."""
    out = torch.zeros(depth.shape, dtype=torch.float32)
    for i, d in enumerate(depth.float()):
        valid = torch.isfinite(d) & (d > 0)
        if not bool(valid.any()):
            continue
        disparity = torch.where(valid, 1.0 / d.clamp_min(1e-6), torch.zeros_like(d))
        values = disparity[valid].double()
        lo, hi = torch.quantile(values, low).float(), torch.quantile(values, high).float()
        norm = ((disparity - lo) / (hi - lo).clamp_min(1e-6)).clamp(0.0, 1.0)
        out[i] = torch.where(valid, norm, torch.zeros_like(norm))
    return out


def normals_from_points(points: torch.Tensor) -> torch.Tensor:
    """Unit camera-space normals ``[B, H, W, 3]`` of an OpenCV point map (X right, Y down, Z into
    the scene) by central differences, facing the camera (negative Z for a surface seen from the
    front); pixels with a non-finite point or neighbour get a zero vector."""
    finite = torch.isfinite(points).all(dim=-1)
    p = torch.where(finite[..., None], points.float(), torch.zeros_like(points, dtype=torch.float32))
    du = F.pad((p[:, :, 2:] - p[:, :, :-2]).permute(0, 3, 1, 2), (1, 1, 0, 0)).permute(0, 2, 3, 1)
    dv = F.pad((p[:, 2:] - p[:, :-2]).permute(0, 3, 1, 2), (0, 0, 1, 1)).permute(0, 2, 3, 1)
    # u runs right and v down; with Y down this order gives the normal that points back at the viewer
    n = F.normalize(torch.cross(dv, du, dim=-1), dim=-1)
    ok = finite.clone()
    ok[:, :, 1:-1] &= finite[:, :, 2:] & finite[:, :, :-2]
    ok[:, 1:-1] &= finite[:, 2:] & finite[:, :-2]
    return torch.where(ok[..., None], n, torch.zeros_like(n))


def clip_sky(depth: torch.Tensor, sky: torch.Tensor, quantile: float = 0.99) -> torch.Tensor:
    """One image's depth ``[H, W]`` with its sky pixels (probability ≥ 0.3) set to the ``quantile``
    of the other pixels' depth; returned unchanged when either part has 10 pixels or fewer."""
    ground = sky < SKY_THRESHOLD
    if int(ground.sum()) <= 10 or int((~ground).sum()) <= 10:
        return depth.clone()
    far = torch.quantile(depth[ground].double(), quantile).to(depth.dtype)
    return torch.where(ground, depth, far)


def v2_style_depth(depth: torch.Tensor, sky: torch.Tensor | None = None, low: float = 0.01,
                   high: float = 0.99) -> torch.Tensor:
    """One image's depth ``[H, W]`` stretched between its ``low`` and ``high`` quantiles (taken
    over the non-sky pixels when ``sky`` is given and any exist) and inverted: near is 1, far 0;
    sky pixels are 0."""
    ground = sky < SKY_THRESHOLD if sky is not None else None
    sample = depth[ground] if ground is not None and bool(ground.any()) else depth.reshape(-1)
    lo, hi = (torch.quantile(sample.double(), q).to(depth.dtype) for q in (low, high))
    norm = 1.0 - ((depth - lo) / (hi - lo).clamp_min(1e-6)).clamp(0.0, 1.0)
    return norm if ground is None else torch.where(ground, norm, torch.zeros_like(norm))


def minmax_depth(depth: torch.Tensor) -> torch.Tensor:
    """Per-image depth ``[B, H, W]`` stretched to its own range and inverted: nearest 1, farthest 0."""
    lo = depth.amin(dim=(-2, -1), keepdim=True)
    hi = depth.amax(dim=(-2, -1), keepdim=True)
    return 1.0 - ((depth - lo) / (hi - lo).clamp_min(1e-6)).clamp(0.0, 1.0)


def depth_edges(depth: torch.Tensor, rtol: float) -> torch.Tensor:
    """Pixels of ``[H, W]`` depth whose 3×3 neighbourhood spans more than ``rtol`` times their depth."""
    d = depth[None, None]
    span = F.max_pool2d(d, 3, stride=1, padding=1) + F.max_pool2d(-d, 3, stride=1, padding=1)
    return ((span / d.clamp_min(1e-6)).nan_to_num(0.0) > rtol)[0, 0]


def triangulate_grid(points: torch.Tensor, decimation: int = 1, discontinuity_threshold: float = 0.04,
                     depth: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A point map ``[H, W, 3]`` as a grid mesh: one vertex per kept pixel (every ``decimation``-th
    row and column, finite, not on a depth edge), two triangles per grid cell whose four corners are
    kept, ordered (top-left, top-right, bottom-right) and (top-left, bottom-right, bottom-left).

    ``discontinuity_threshold`` > 0 drops pixels whose 3×3 span of ``depth`` (the points' Z when
    not given) exceeds that fraction of their depth (see :func:`depth_edges`). UVs are the pixel's
    place in the image with ``v`` up (row 0 at ``v = 1``).

    Returns:
        ``(vertices [N, 3] float32, faces [M, 3] int64, uvs [N, 2] float32)``.
    """
    pts = points.detach().float().cpu()
    keep = torch.isfinite(pts).all(dim=-1)
    if discontinuity_threshold > 0:
        d = (depth.detach().float().cpu() if depth is not None else pts[..., 2])
        d = torch.where(keep & torch.isfinite(d), d, torch.zeros_like(d))
        keep &= ~depth_edges(d, discontinuity_threshold)
    pts, keep = pts[::decimation, ::decimation], keep[::decimation, ::decimation]
    h, w = keep.shape
    flat = keep.reshape(-1)
    index = torch.full((h * w,), -1, dtype=torch.long)
    index[flat] = torch.arange(int(flat.sum()), dtype=torch.long)
    index = index.reshape(h, w)
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                indexing="ij")
    uvs = torch.stack([cols / max(w - 1, 1), 1.0 - rows / max(h - 1, 1)], dim=-1).reshape(-1, 2)[flat]
    tl, tr, br, bl = index[:-1, :-1], index[:-1, 1:], index[1:, 1:], index[1:, :-1]
    whole = (tl >= 0) & (tr >= 0) & (br >= 0) & (bl >= 0)
    tl, tr, br, bl = tl[whole], tr[whole], br[whole], bl[whole]
    faces = torch.cat([torch.stack([tl, tr, br], dim=-1), torch.stack([tl, br, bl], dim=-1)])
    return pts.reshape(-1, 3)[flat].contiguous(), faces.contiguous(), uvs.contiguous()
