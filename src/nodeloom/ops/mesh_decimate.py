"""Quadric-error-metric (QEM) mesh simplification by greedy edge collapse, for DecimateMesh.

Owns :func:`decimate_item` (one unpadded mesh item) and :func:`decimate_mesh` (a MESH batch).
Each vertex carries the sum of its faces' plane quadrics (area-weighted); optional line quadrics
per edge (weighted by its squared length) and constraint quadrics on feature (dihedral ≥ a threshold) and boundary edges keep
ridges and creases. An edge collapses to its midpoint (``placement="midpoint"``) or to the point
minimising the summed quadric (``"qem"``, optionally projected onto the edge). Collapses are taken
cheapest first; one that would make the surface non-manifold (the link condition) or flip a face
is skipped. Vertices are welded by position first, so the result stays welded. Vertex colours
follow the collapse (averaged at midpoints); normals and UVs are not carried (they would be
stale). numpy and the standard library only.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import torch

from nodeloom.errors import ValidationError
from nodeloom.ops.mesh import Mesh, mesh_item, stack_items

__all__ = ["PLACEMENT_MODES", "decimate_item", "decimate_mesh"]

PLACEMENT_MODES = ("midpoint", "qem")


def _weld(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray | None):
    """Merge vertices at identical positions; drop faces that become degenerate."""
    unique, first, inverse = np.unique(vertices, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    faces = inverse[faces]
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    return unique.astype(np.float64), faces[keep], None if colors is None else colors[first].astype(np.float64)


def _plane_quadric(normal: np.ndarray, point: np.ndarray, weight: float) -> np.ndarray:
    """4×4 quadric of the squared distance to the plane through ``point`` with unit ``normal``."""
    p = np.append(normal, -float(normal @ point))
    return weight * np.outer(p, p)


def _line_quadric(a: np.ndarray, b: np.ndarray, weight: float) -> np.ndarray:
    """4×4 quadric of the squared distance to the line through ``a`` and ``b``."""
    e = b - a
    length = np.linalg.norm(e)
    if length == 0:
        return np.zeros((4, 4))
    e = e / length
    m = np.eye(3) - np.outer(e, e)
    q = np.zeros((4, 4))
    q[:3, :3] = m
    q[:3, 3] = q[3, :3] = -m @ a
    q[3, 3] = a @ m @ a
    return weight * q


def _cost(q: np.ndarray, x: np.ndarray) -> float:
    h = np.append(x, 1.0)
    return max(float(h @ q @ h), 0.0)


def _cross3(p0: list[float], p1: list[float], p2: list[float]) -> tuple[float, float, float]:
    """(p1 − p0) × (p2 − p0) on plain floats (one triangle: cheaper than numpy's)."""
    ux, uy, uz = p1[0] - p0[0], p1[1] - p0[1], p1[2] - p0[2]
    wx, wy, wz = p2[0] - p0[0], p2[1] - p0[1], p2[2] - p0[2]
    return uy * wz - uz * wy, uz * wx - ux * wz, ux * wy - uy * wx


def decimate_item(vertices: np.ndarray, faces: np.ndarray, target_faces: int, placement: str = "midpoint",
                  line_quadric_weight: float = 0.0, feature_edge_quadric_weight: float = 0.0,
                  feature_edge_min_dihedral_deg: float = 30.0, clamp_v_to_edge: bool = True,
                  colors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Simplify one triangle mesh to at most ``target_faces`` faces (see the module docstring).

    Returns ``(vertices, faces, colors)``, unused vertices removed. A mesh that cannot be reduced
    further without breaking its topology stops above the target.
    """
    if placement not in PLACEMENT_MODES:
        raise ValidationError(f"`placement_mode` must be one of {list(PLACEMENT_MODES)}, got {placement!r}")
    v, f, col = _weld(np.asarray(vertices, np.float64), np.asarray(faces, np.int64), colors)
    if len(f) <= target_faces:
        return _compact(v, f, col)
    corners = v[f]
    raw = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    length = np.linalg.norm(raw, axis=1, keepdims=True)
    normals = np.divide(raw, length, out=np.zeros_like(raw), where=length > 0)
    planes = np.concatenate([normals, -(normals * corners[:, 0]).sum(1, keepdims=True)], axis=1)
    face_q = np.maximum(0.5 * length[:, 0], 1e-12)[:, None, None] * planes[:, :, None] * planes[:, None, :]
    quadrics = np.zeros((len(v), 4, 4))
    for corner in range(3):
        np.add.at(quadrics, f[:, corner], face_q)
    edge_faces: dict[tuple[int, int], list[int]] = {}
    for k, (i, j, m) in enumerate(f.tolist()):
        for a, b in ((i, j), (j, m), (m, i)):
            edge_faces.setdefault((a, b) if a < b else (b, a), []).append(k)
    if placement == "qem":
        cos_limit = math.cos(math.radians(feature_edge_min_dihedral_deg))
        for (a, b), adjacent in edge_faces.items():
            if line_quadric_weight > 0:  # scaled by the edge's squared length, like the area-weighted planes
                q = _line_quadric(v[a], v[b], line_quadric_weight * float((v[b] - v[a]) @ (v[b] - v[a])))
                quadrics[a] += q
                quadrics[b] += q
            if feature_edge_quadric_weight > 0:
                feature = len(adjacent) != 2 or float(normals[adjacent[0]] @ normals[adjacent[1]]) <= cos_limit
                if feature:  # planes through the edge, perpendicular to its faces, pin it in place
                    edge = v[b] - v[a]
                    weight = feature_edge_quadric_weight * float(edge @ edge)
                    for k in adjacent:
                        side = np.cross(edge, normals[k])
                        length = np.linalg.norm(side)
                        if length > 0:
                            q = _plane_quadric(side / length, v[a], weight)
                            quadrics[a] += q
                            quadrics[b] += q

    vertex_faces: list[set[int]] = [set() for _ in range(len(v))]
    for k, tri in enumerate(f.tolist()):
        for i in tri:
            vertex_faces[i].add(k)
    alive = np.ones(len(f), bool)
    version = np.zeros(len(v), np.int64)
    removed = np.zeros(len(v), bool)

    def place(a: int, b: int) -> tuple[float, np.ndarray]:
        q = quadrics[a] + quadrics[b]
        mid = 0.5 * (v[a] + v[b])
        if placement == "midpoint":
            return _cost(q, mid), mid
        try:
            if abs(np.linalg.det(q[:3, :3])) < 1e-12:
                raise np.linalg.LinAlgError
            x = np.linalg.solve(q[:3, :3], -q[:3, 3])
        except np.linalg.LinAlgError:
            x = mid
        if clamp_v_to_edge:
            e = v[b] - v[a]
            denom = float(e @ e)
            t = 0.5 if denom == 0 else min(max(float((x - v[a]) @ e) / denom, 0.0), 1.0)
            x = v[a] + t * e
        return _cost(q, x), x

    heap: list[tuple[float, int, int, int, int]] = []

    def push(a: int, b: int) -> None:
        if a > b:
            a, b = b, a
        cost, _ = place(a, b)
        heapq.heappush(heap, (cost, a, b, int(version[a]), int(version[b])))

    for a, b in edge_faces:
        push(a, b)

    def neighbours(i: int) -> set[int]:
        return {j for k in vertex_faces[i] for j in f[k].tolist() if j != i}

    count = int(alive.sum())
    while count > target_faces and heap:
        _, a, b, va, vb = heapq.heappop(heap)
        if removed[a] or removed[b] or version[a] != va or version[b] != vb:
            continue
        shared = vertex_faces[a] & vertex_faces[b]
        if not shared:
            continue
        # link condition: the common neighbours are exactly the far corners of the shared faces
        opposite = {j for k in shared for j in f[k].tolist() if j not in (a, b)}
        if neighbours(a) & neighbours(b) != opposite:
            continue
        _, x = place(a, b)
        flips = False
        for k in (vertex_faces[a] | vertex_faces[b]) - shared:
            tri = f[k].tolist()
            before = _cross3(v[tri[0]].tolist(), v[tri[1]].tolist(), v[tri[2]].tolist())
            after = _cross3(*[x.tolist() if j in (a, b) else v[j].tolist() for j in tri])
            if before[0] * after[0] + before[1] * after[1] + before[2] * after[2] <= 0:
                flips = True
                break
        if flips:
            continue
        for k in shared:
            alive[k] = False
            for j in f[k]:
                vertex_faces[j].discard(k)
            count -= 1
        for k in vertex_faces[b]:
            f[k][f[k] == b] = a
            vertex_faces[a].add(k)
        vertex_faces[b] = set()
        if col is not None:
            col[a] = 0.5 * (col[a] + col[b]) if placement == "midpoint" else col[a]
        v[a] = x
        quadrics[a] += quadrics[b]
        removed[b] = True
        version[a] += 1
        for j in neighbours(a):
            push(a, j)
    return _compact(v, f[alive], col)


def _compact(v: np.ndarray, f: np.ndarray, col: np.ndarray | None):
    used = np.unique(f.reshape(-1))
    remap = np.full(len(v), -1, np.int64)
    remap[used] = np.arange(len(used))
    return v[used], remap[f], None if col is None else col[used]


def decimate_mesh(mesh: Mesh, target_faces: int, placement: str = "midpoint", **options) -> Mesh:
    """:func:`decimate_item` on every item of a MESH batch; items already at or under the target
    (or a target of 0) are kept as they are."""
    if target_faces < 0:
        raise ValidationError(f"`target_face_count` must be 0 or more, got {target_faces}")
    items = []
    for b in range(mesh.batch_size):
        item = mesh_item(mesh, b)
        if target_faces == 0 or item["faces"].shape[0] <= target_faces:
            items.append(item)
            continue
        colors = item.get("colors")
        v, f, col = decimate_item(item["vertices"].double().numpy(), item["faces"].numpy(), target_faces, placement,
                                  colors=None if colors is None else colors.double().numpy(), **options)
        out = {"vertices": torch.from_numpy(v).to(mesh.vertices.dtype), "faces": torch.from_numpy(f).to(mesh.faces.dtype)}
        if col is not None:
            out["colors"] = torch.from_numpy(col).to(colors.dtype)
        items.append(out)
    if any(set(i) != set(items[0]) for i in items):  # normals/uvs dropped on some items only: drop everywhere
        common = set.intersection(*(set(i) for i in items))
        items = [{k: i[k] for k in common} for i in items]
    return stack_items(items)
