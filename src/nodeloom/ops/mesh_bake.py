"""Baking a high-poly mesh's detail into a low-poly mesh's UV layout: tangent-space normal maps
and ambient occlusion, texel by texel, by casting rays against the high-poly triangles.

Each covered texel gets its point, interpolated normal and tangent frame on the low-poly surface
(``ops.mesh_uv.rasterize_uv``). Rays are tested against the high-poly triangles (Möller–Trumbore,
vectorised float32 numpy, some 10 million ray-triangle tests a second per core); rays are grouped
by grid cell and tested only against the triangles near their segments, which pays off for short
rays (the normal bake's cage band) more than for long occlusion rays. Meant for high-poly meshes of
up to some tens of thousands of faces and moderate resolutions, not the millions of faces a GPU
baker takes. Pure torch and numpy; no nodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from nodeloom.ops.mesh import Mesh, smooth_normals
from nodeloom.ops.mesh_texture import fit_uvs
from nodeloom.ops.mesh_uv import dilate, rasterize_uv

__all__ = ["Texels", "bake_ambient_occlusion", "bake_normal_map", "cast_rays", "surface_texels"]

#: ray-triangle pairs tested per vectorised step (float32 planes of 1 MB stay in cache)
_PAIRS = 1 << 18
#: texel rings grown past chart borders after a bake
_BLEED = 4
#: the band (× the diagonal) in which an occlusion texel looks for its high-poly point
_AO_CAGE = 0.05


@dataclass(frozen=True)
class Texels:
    """The covered texels of a UV map (``rows`` / ``cols`` index arrays) and the low-poly surface
    under each (float64 [K, 3] tensors), with the low-poly's bounding-box ``diagonal``."""

    rows: np.ndarray
    cols: np.ndarray
    points: torch.Tensor
    normals: torch.Tensor
    tangents: torch.Tensor
    bitangents: torch.Tensor
    diagonal: float


def _vertex_normals(item: dict[str, torch.Tensor]) -> torch.Tensor:
    if "normals" in item:
        return item["normals"].double()
    one = Mesh(item["vertices"][None].double(), item["faces"][None])
    return smooth_normals(one).normals[0]  # type: ignore[index]


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def surface_texels(item: dict[str, torch.Tensor], resolution: int, name: str = "low_poly") -> Texels:
    """The texels of a ``resolution``² map that the item's UV triangles cover (UVs fitted into
    [0, 1] first), with the surface point, smooth normal and the UV-aligned tangent frame (tangent
    along +u, bitangent along +v, both made orthogonal to the normal) under each."""
    verts = item["vertices"].detach().double().cpu()
    faces = item["faces"].detach().cpu().long()
    uvs = fit_uvs(item["uvs"].detach().double().cpu(), name)
    face_index, bary = rasterize_uv(uvs.numpy(), faces.numpy(), resolution)
    rows, cols = np.nonzero(face_index >= 0)
    f = torch.from_numpy(face_index[rows, cols])
    w = torch.from_numpy(bary[rows, cols])
    corner = faces[f]  # [K, 3]
    points = (verts[corner] * w[..., None]).sum(1)
    normals = _unit((_vertex_normals({**item, "vertices": verts, "faces": faces}).cpu()[corner] * w[..., None]).sum(1))
    e1, e2 = verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]]
    d1, d2 = uvs[faces[:, 1]] - uvs[faces[:, 0]], uvs[faces[:, 2]] - uvs[faces[:, 0]]
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    det = torch.where(det.abs() < 1e-20, torch.full_like(det, 1e-20), det)
    face_t = (e1 * d2[:, 1:2] - e2 * d1[:, 1:2]) / det[:, None]
    face_b = (e2 * d1[:, 0:1] - e1 * d2[:, 0:1]) / det[:, None]
    t = face_t[f]
    t = _unit(t - normals * (normals * t).sum(-1, keepdim=True))
    handed = torch.sign((torch.linalg.cross(normals, t) * face_b[f]).sum(-1, keepdim=True))
    handed = torch.where(handed == 0, torch.ones_like(handed), handed)
    diagonal = float((verts.max(0).values - verts.min(0).values).norm()) or 1.0
    return Texels(rows, cols, points, normals, t, torch.linalg.cross(normals, t) * handed, diagonal)


def cast_rays(origins: torch.Tensor, directions: torch.Tensor, triangles: torch.Tensor, max_t: float,
              front_only: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The nearest hit of each ray (origins, directions [R, 3]) on ``triangles`` [T, 3, 3] within
    ``max_t``: distance (inf for a miss), triangle index (−1) and the hit's barycentric (u, v)
    [R, 2]. ``front_only`` ignores triangles whose front (counter-clockwise) side faces away.

    Rays are grouped by the grid cell (of side ``max_t``, at least 1/64 of the scene) their origin
    falls in, and each group is tested only against the triangles whose bounding boxes meet the
    group's ray segments' box: short rays (normal baking, local occlusion) test a small share of
    the triangles."""
    r = origins.shape[0]
    if r * triangles.shape[0] <= _PAIRS or triangles.shape[0] < 64:
        return _cast_brute(origins, directions, triangles, max_t, front_only)
    o = origins.detach().cpu().numpy()
    ends = o + directions.detach().cpu().numpy() * max_t
    seg_lo, seg_hi = np.minimum(o, ends), np.maximum(o, ends)
    tri = triangles.detach().cpu().numpy()
    tri_lo, tri_hi = tri.min(1), tri.max(1)
    scene = float(np.linalg.norm(np.maximum(seg_hi.max(0), tri_hi.max(0)) - np.minimum(seg_lo.min(0), tri_lo.min(0))))
    cell = max(max_t, scene / 64, 1e-12)
    _, group = np.unique(np.floor((o - o.min(0)) / cell).astype(np.int64), axis=0, return_inverse=True)
    group = group.reshape(-1)
    order = np.argsort(group, kind="stable")
    bounds = np.flatnonzero(np.diff(group[order])) + 1
    best_t = torch.full((r,), math.inf, dtype=torch.float64)
    best_i = torch.full((r,), -1, dtype=torch.long)
    best_uv = torch.zeros((r, 2), dtype=torch.float64)
    for rays in np.split(order, bounds):
        lo, hi = seg_lo[rays].min(0), seg_hi[rays].max(0)
        near = np.flatnonzero(np.all(tri_hi >= lo, axis=1) & np.all(tri_lo <= hi, axis=1))
        if near.size == 0:
            continue
        index = torch.from_numpy(rays)
        t, i, uv = _cast_brute(origins[index], directions[index], triangles[torch.from_numpy(near)], max_t, front_only)
        best_t[index], best_uv[index] = t, uv
        best_i[index] = torch.where(i >= 0, torch.from_numpy(near)[i.clamp_min(0)], i)
    return best_t, best_i, best_uv


def _cast_brute(origins: torch.Tensor, directions: torch.Tensor, triangles: torch.Tensor, max_t: float,
                front_only: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`cast_rays` testing every ray against every triangle, in float32 numpy, component by
    component on [rays, triangles] planes, rays in chunks
    (numpy's single-threaded loops beat torch's here, where threads are few and shared)."""
    r = origins.shape[0]
    best_t = np.full(r, np.inf)
    best_i = np.full(r, -1, dtype=np.int64)
    best_uv = np.zeros((r, 2))
    if r == 0 or triangles.shape[0] == 0:
        return torch.from_numpy(best_t), torch.from_numpy(best_i), torch.from_numpy(best_uv)
    tri = triangles.detach().cpu().numpy().astype(np.float32)
    v0 = tri[:, 0]
    e1, e2, v0 = (tri[:, 1] - v0).T[:, None], (tri[:, 2] - v0).T[:, None], v0.T[:, None]  # [3, 1, T]
    scale = float(np.abs(tri).max()) or 1.0
    eps = np.float32(1e-7 * scale * scale)
    all_o = origins.detach().cpu().numpy().astype(np.float32)
    all_d = directions.detach().cpu().numpy().astype(np.float32)
    step = max(1, _PAIRS // triangles.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        for start in range(0, r, step):
            o, d = all_o[start:start + step].T[:, :, None], all_d[start:start + step].T[:, :, None]  # [3, R, 1]
            px, py, pz = d[1] * e2[2] - d[2] * e2[1], d[2] * e2[0] - d[0] * e2[2], d[0] * e2[1] - d[1] * e2[0]
            det = e1[0] * px + e1[1] * py + e1[2] * pz
            ok = det > eps if front_only else np.abs(det) > eps
            inv = np.float32(1.0) / np.where(ok, det, np.float32(1.0))
            sx, sy, sz = o[0] - v0[0], o[1] - v0[1], o[2] - v0[2]
            u = (sx * px + sy * py + sz * pz) * inv
            del px, py, pz
            qx, qy, qz = sy * e1[2] - sz * e1[1], sz * e1[0] - sx * e1[2], sx * e1[1] - sy * e1[0]
            v = (d[0] * qx + d[1] * qy + d[2] * qz) * inv
            t = (e2[0] * qx + e2[1] * qy + e2[2] * qz) * inv
            hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0) & (t <= max_t)
            t = np.where(hit, t, np.float32(np.inf))
            index = t.argmin(axis=1)
            rows = np.arange(index.shape[0])
            near = t[rows, index]
            sl = slice(start, start + step)
            best_t[sl], best_i[sl] = near, np.where(np.isfinite(near), index, -1)
            best_uv[sl] = np.stack([u[rows, index], v[rows, index]], -1)
    return torch.from_numpy(best_t), torch.from_numpy(best_i), torch.from_numpy(best_uv)


def _high_triangles(item: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    verts = item["vertices"].detach().double().cpu()
    faces = item["faces"].detach().cpu().long()
    return verts[faces], _vertex_normals({**item, "vertices": verts, "faces": faces}).cpu()[faces], faces


def _to_image(values: np.ndarray, texels: Texels, resolution: int, fill: tuple[float, ...]) -> torch.Tensor:
    image = np.empty((resolution, resolution, len(fill)))
    image[...] = fill
    filled = np.zeros((resolution, resolution), dtype=bool)
    image[texels.rows, texels.cols] = values
    filled[texels.rows, texels.cols] = True
    return torch.from_numpy(dilate(image, filled, _BLEED)).float()


def bake_normal_map(low: dict[str, torch.Tensor], high: dict[str, torch.Tensor], resolution: int,
                    cage_distance: float = 0.05, ignore_backfaces: bool = True) -> torch.Tensor:
    """A tangent-space normal map ([resolution, resolution, 3], glTF/OpenGL +Y) of ``high``'s
    smooth normals on ``low``'s UV layout. Each texel casts a ray inwards from ``cage_distance`` ×
    the low-poly's diagonal outside its surface, across twice that band, and takes the outermost
    high-poly hit; texels whose ray misses keep the low-poly normal (0.5, 0.5, 1)."""
    texels = surface_texels(low, resolution)
    triangles, corner_normals, _ = _high_triangles(high)
    _, n, _ = _onto_high(texels, triangles, corner_normals, cage_distance * texels.diagonal, ignore_backfaces)
    local = torch.stack([(n * texels.tangents).sum(-1), (n * texels.bitangents).sum(-1),
                         (n * texels.normals).sum(-1)], -1)
    image = _to_image((_unit(local) * 0.5 + 0.5).numpy(), texels, resolution, (0.5, 0.5, 1.0))
    return _unit(image * 2 - 1) * 0.5 + 0.5  # texels grown past the borders are means: unit length again


def _hemisphere(samples: int) -> torch.Tensor:
    """``samples`` cosine-weighted directions about +Z, spread evenly (a Fibonacci spiral on the
    disc, lifted onto the hemisphere)."""
    k = torch.arange(samples, dtype=torch.float64) + 0.5
    radius = torch.sqrt(k / samples)
    angle = k * math.pi * (3.0 - math.sqrt(5.0))
    return torch.stack([radius * torch.cos(angle), radius * torch.sin(angle), torch.sqrt(1 - radius ** 2)], -1)


def _onto_high(texels: Texels, triangles: torch.Tensor, corner_normals: torch.Tensor, cage: float,
               front_only: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each texel's matching high-poly point and smooth normal: the outermost hit of a ray cast
    inwards from ``cage`` outside the low-poly surface across twice that band (the low-poly's own
    point and normal where it misses), and whether it hit."""
    _, index, uv = cast_rays(texels.points + texels.normals * cage, -texels.normals, triangles, 2 * cage,
                             front_only=front_only)
    hit = index >= 0
    points, normals = texels.points.clone(), texels.normals.clone()
    w = torch.stack([1 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], -1)[hit][..., None]
    points[hit] = (triangles[index[hit]] * w).sum(1)
    normals[hit] = _unit((corner_normals[index[hit]] * w).sum(1))
    return points, normals, hit


def bake_ambient_occlusion(low: dict[str, torch.Tensor], high: dict[str, torch.Tensor], resolution: int,
                           samples: int = 64, max_distance: float = 0.5, strength: float = 1.0, bias: float = 0.01,
                           seed: int = 0) -> torch.Tensor:
    """Ambient occlusion ([resolution, resolution, 3] grey, 1 = open) of ``high`` on ``low``'s UV
    layout. Each texel finds its point on the high-poly surface (as the normal bake does, within
    5 % of the diagonal), lifts it ``bias`` × the diagonal along the high-poly normal, and casts
    ``samples`` cosine-weighted rays (one spiral, turned by a seeded random angle per texel) that
    look for high-poly faces within ``max_distance`` × the diagonal; the value is 1 − strength ×
    the share of rays that hit, clipped to [0, 1]. Uncovered texels are white."""
    texels = surface_texels(low, resolution)
    triangles, corner_normals, _ = _high_triangles(high)
    points, normals, _ = _onto_high(texels, triangles, corner_normals, _AO_CAGE * texels.diagonal, True)
    helper = torch.where((normals[:, 0].abs() < 0.9)[:, None], torch.tensor([1.0, 0.0, 0.0], dtype=normals.dtype),
                         torch.tensor([0.0, 1.0, 0.0], dtype=normals.dtype))
    tangents = _unit(torch.linalg.cross(normals, helper))
    bitangents = torch.linalg.cross(normals, tangents)
    spiral = _hemisphere(samples)
    turn = torch.rand(points.shape[0], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    turn = turn * 2 * math.pi
    cos, sin = torch.cos(turn)[:, None], torch.sin(turn)[:, None]
    x = spiral[None, :, 0] * cos - spiral[None, :, 1] * sin
    y = spiral[None, :, 0] * sin + spiral[None, :, 1] * cos
    dirs = (x[..., None] * tangents[:, None] + y[..., None] * bitangents[:, None]
            + spiral[None, :, 2, None] * normals[:, None])
    origins = (points + normals * bias * texels.diagonal)[:, None].expand_as(dirs)
    _, index, _ = cast_rays(origins.reshape(-1, 3), dirs.reshape(-1, 3), triangles, max_distance * texels.diagonal)
    occluded = (index >= 0).reshape(-1, samples).double().mean(1)
    ao = (1.0 - strength * occluded).clamp(0.0, 1.0)
    return _to_image(ao[:, None].expand(-1, 3).numpy(), texels, resolution, (1.0, 1.0, 1.0))
