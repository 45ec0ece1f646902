"""Narrow-band dual contouring remesher, for RemeshMesh.

Owns :func:`remesh_item` (one unpadded mesh item) and :func:`remesh_mesh` (a MESH batch). The
input is welded by position (optionally cluster-decimated first), a distance field is sampled on
the grid points within a narrow band around its triangles (a voxel is the longest bounding-box
side over ``resolution``) and a surface is extracted from it by dual contouring:

* ``udf``: the unsigned distance's level set at ``band`` voxels, a thin closed shell on both sides
  of the surface (robust to any input);
* ``sdf``: the zero set of the distance signed by angle-weighted pseudo-normals (needs consistent
  winding); QEF placement recovers sharp edges and corners, ``manifold`` gives a cell one vertex
  per surface sheet crossing it (the marching-cubes patches) instead of one in all;
* ``solid``: an inside/outside labelling of every grid point by a minimum s-t cut (scipy's
  ``maximum_flow``): points within half a voxel of the surface are solid, the grid's border is
  empty, cutting next to the surface (within ``band`` voxels) costs 1 per grid face and elsewhere
  ``fill``; each free point prefers the side its escape fraction (of the six axis rays, those that
  leave the grid without meeting the surface's band) says. Its boundary is then extracted, half a
  voxel out of the surface.

A dual vertex sits at the mean of its edge crossings, or (``qef``) at the clamped least-squares
point of the planes through them (small singular values cut, so flat and creased cells keep to
the mean); quads are split along their shorter diagonal. Afterwards: small / inverted / enclosed
components dropped, valence-3 poles removed, Taubin smoothing, projection back onto the input,
vertex colours from the nearest input surface point. numpy and scipy, vectorised; the field, the
extraction and the filters scale with the surface's voxel count (sparse), the ``solid`` cut with
the whole grid (so its resolution is lowered, with a warning, above ``SOLID_MAX_GRID`` points).
"""

from __future__ import annotations

import logging
import math
from functools import lru_cache

import numpy as np
import torch

from nodeloom.errors import ValidationError, require
from nodeloom.ops.mesh import Mesh, mesh_item, stack_items

__all__ = ["SIGN_MODES", "SOLID_MAX_GRID", "remesh_item", "remesh_mesh"]

log = logging.getLogger(__name__)

SIGN_MODES = ("udf", "sdf", "solid")
#: the solid mode's graph cut covers the whole grid; above this many points its resolution is lowered
SOLID_MAX_GRID = 4_000_000
_CHUNK = 1 << 21  # (grid point, triangle) pairs evaluated at once


# ------------------------------------------------------------------ geometry helpers

def _closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray):
    """Closest points of ``p`` on triangles ``abc`` (row-wise) and the feature it lies on:
    0 face, 1/2/3 corner a/b/c, 4/5/6 edge ab/bc/ca."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = np.einsum("ij,ij->i", ab, ap), np.einsum("ij,ij->i", ac, ap)
    bp = p - b
    d3, d4 = np.einsum("ij,ij->i", ab, bp), np.einsum("ij,ij->i", ac, bp)
    cp = p - c
    d5, d6 = np.einsum("ij,ij->i", ab, cp), np.einsum("ij,ij->i", ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        v, w = vb / denom, vc / denom
        out = a + ab * v[:, None] + ac * w[:, None]
        region = np.zeros(len(p), np.int8)
        e1, e2 = d4 - d3, d5 - d6
        m = (va <= 0) & (e1 >= 0) & (e2 >= 0)  # edge bc
        out[m] = b[m] + (c[m] - b[m]) * (e1[m] / (e1[m] + e2[m]))[:, None]
        region[m] = 5
        m = (vb <= 0) & (d2 >= 0) & (d6 <= 0)  # edge ca
        out[m] = a[m] + ac[m] * (d2[m] / (d2[m] - d6[m]))[:, None]
        region[m] = 6
        m = (d6 >= 0) & (d5 <= d6)  # corner c
        out[m], region[m] = c[m], 3
        m = (vc <= 0) & (d1 >= 0) & (d3 <= 0)  # edge ab
        out[m] = a[m] + ab[m] * (d1[m] / (d1[m] - d3[m]))[:, None]
        region[m] = 4
        m = (d3 >= 0) & (d4 <= d3)  # corner b
        out[m], region[m] = b[m], 2
        m = (d1 <= 0) & (d2 <= 0)  # corner a
        out[m], region[m] = a[m], 1
    return out, region


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def _weld(v: np.ndarray, f: np.ndarray, col: np.ndarray | None):
    """Merge vertices at equal positions; drop degenerate (repeated-corner or zero-area) faces."""
    uniq, first, inv = np.unique(v, axis=0, return_index=True, return_inverse=True)
    f = inv.reshape(-1)[f]
    keep = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    f = f[keep]
    area = np.linalg.norm(np.cross(uniq[f[:, 1]] - uniq[f[:, 0]], uniq[f[:, 2]] - uniq[f[:, 0]]), axis=1)
    f = f[area > 1e-14 * max(float(np.ptp(uniq, axis=0).max(initial=0.0)) ** 2, 1e-30)]
    return uniq, f, None if col is None else col[first]


def _precluster(v: np.ndarray, f: np.ndarray, col: np.ndarray | None, target: int):
    """Vertex clustering on a uniform grid, coarsened until at most ``target`` vertices remain."""
    lo, size = v.min(axis=0), float(np.ptp(v, axis=0).max())
    cell = size / max(math.sqrt(target), 1.0)
    for _ in range(64):
        keys = np.floor((v - lo) / cell).astype(np.int64)
        uniq, inv = np.unique(keys, axis=0, return_inverse=True)
        if len(uniq) <= target:
            break
        cell *= 1.2
    inv = inv.reshape(-1)
    count = np.bincount(inv, minlength=len(uniq)).astype(np.float64)[:, None]
    nv = np.stack([np.bincount(inv, v[:, i], len(uniq)) for i in range(3)], 1) / count
    ncol = None if col is None else np.stack([np.bincount(inv, col[:, i], len(uniq))
                                              for i in range(col.shape[1])], 1) / count
    nf = inv[f]
    nf = nf[(nf[:, 0] != nf[:, 1]) & (nf[:, 1] != nf[:, 2]) & (nf[:, 0] != nf[:, 2])]
    nf = nf[np.unique(np.sort(nf, axis=1), axis=0, return_index=True)[1]]
    return nv, nf, ncol


# ------------------------------------------------------------------ the grid and the narrow band

class _Grid:
    """Grid points ``origin + h * (i, j, k)``, numbered ``(i * ny + j) * nz + k``."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray, resolution: int, pad: int) -> None:
        size = float((hi - lo).max())
        self.h = size / resolution
        self.origin = lo - pad * self.h
        self.shape = tuple(int(n) for n in np.ceil((hi - lo) / self.h - 1e-9).astype(np.int64) + 2 * pad + 1)
        nx, ny, nz = self.shape
        self.strides = np.array([ny * nz, nz, 1], np.int64)
        self.size = nx * ny * nz

    def coords(self, lin: np.ndarray) -> np.ndarray:
        return np.stack([lin // self.strides[0], (lin // self.strides[1]) % self.shape[1], lin % self.shape[2]], 1)

    def position(self, lin: np.ndarray) -> np.ndarray:
        return self.origin + self.h * self.coords(lin)


class _Band:
    """Grid points within ``reach`` of the surface: sorted ``lin``, distance, closest triangle and
    point, and the feature of that triangle the closest point lies on."""

    def __init__(self, grid: _Grid, v: np.ndarray, f: np.ndarray, reach: float) -> None:
        self.grid, self.v, self.f = grid, v, f
        a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
        r = reach * grid.h
        lo = np.ceil((np.minimum(np.minimum(a, b), c) - r - grid.origin) / grid.h).astype(np.int64)
        hi = np.floor((np.maximum(np.maximum(a, b), c) + r - grid.origin) / grid.h).astype(np.int64)
        lo, hi = np.maximum(lo, 0), np.minimum(hi, np.array(grid.shape) - 1)
        ext = np.maximum(hi - lo + 1, 0)
        centre = (a + b + c) / 3.0
        radius = np.sqrt(np.max([((x - centre) ** 2).sum(1) for x in (a, b, c)], axis=0))
        normal = _unit(np.cross(b - a, c - a))
        offset = np.einsum("ij,ij->i", normal, a)
        # columns along each triangle's dominant normal axis k; in each column only the points of the
        # slab |n.p - offset| <= r (within the box), and only columns that pass the bounding sphere:
        # tilted large triangles do not pay for their whole box
        dominant = np.argmax(np.abs(normal), axis=1)
        parts = []
        for k in range(3):
            i, j = (k + 1) % 3, (k + 2) % 3
            tris = np.nonzero((dominant == k) & (ext.prod(axis=1) > 0))[0]
            col_counts = ext[tris, i] * ext[tris, j]
            col_ends = np.cumsum(col_counts)
            total_cols = int(col_ends[-1]) if len(col_ends) else 0
            for cstart in range(0, total_cols, _CHUNK // 4):
                cidx = np.arange(cstart, min(cstart + _CHUNK // 4, total_cols), dtype=np.int64)
                slot = np.searchsorted(col_ends, cidx, side="right")
                tc = tris[slot]
                kk = cidx - (col_ends[slot] - col_counts[slot])
                ci, cj = lo[tc, i] + kk // ext[tc, j], lo[tc, j] + kk % ext[tc, j]
                pi, pj = grid.origin[i] + grid.h * ci, grid.origin[j] + grid.h * cj
                ok = (pi - centre[tc, i]) ** 2 + (pj - centre[tc, j]) ** 2 <= (radius[tc] + r) ** 2
                tc, ci, cj, pi, pj = tc[ok], ci[ok], cj[ok], pi[ok], pj[ok]
                n = normal[tc]
                pk0 = (offset[tc] - n[:, i] * pi - n[:, j] * pj) / n[:, k]
                half = r / np.abs(n[:, k])
                kmin = np.maximum(lo[tc, k], np.ceil((pk0 - half - grid.origin[k]) / grid.h).astype(np.int64))
                kmax = np.minimum(hi[tc, k], np.floor((pk0 + half - grid.origin[k]) / grid.h).astype(np.int64))
                cnt = np.maximum(kmax - kmin + 1, 0)
                pair_ends = np.cumsum(cnt)
                total = int(pair_ends[-1]) if len(pair_ends) else 0
                for pstart in range(0, total, _CHUNK):
                    pidx = np.arange(pstart, min(pstart + _CHUNK, total), dtype=np.int64)
                    col = np.searchsorted(pair_ends, pidx, side="right")
                    t = tc[col]
                    ijk = np.empty((len(pidx), 3), np.int64)
                    ijk[:, i], ijk[:, j] = ci[col], cj[col]
                    ijk[:, k] = kmin[col] + pidx - (pair_ends[col] - cnt[col])
                    p = grid.origin + grid.h * ijk
                    cp, _ = _closest_on_triangles(p, a[t], b[t], c[t])
                    d = np.linalg.norm(p - cp, axis=1)
                    keep = d <= r
                    parts.append((ijk[keep] @ grid.strides, d[keep], t[keep]))
        if parts:
            lin, d, t = (np.concatenate(x) for x in zip(*parts))
            order = np.lexsort((d, lin))
            lin = lin[order]
            first = np.ones(len(lin), bool)
            first[1:] = lin[1:] != lin[:-1]
            sel = order[first]
            self.lin, self.dist, self.tri = lin[first], d[sel], t[sel]
            p = grid.position(self.lin)
            ta = self.tri
            self.cp, self.region = _closest_on_triangles(p, a[ta], b[ta], c[ta])
        else:
            self.lin, self.dist, self.tri = np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
            self.cp, self.region = np.zeros((0, 3)), np.zeros(0, np.int8)

    def find(self, lin: np.ndarray) -> np.ndarray:
        """Index of each grid point in the band, -1 where it is not."""
        pos = np.searchsorted(self.lin, lin)
        pos = np.minimum(pos, max(len(self.lin) - 1, 0))
        ok = (len(self.lin) > 0) & (self.lin[pos] == lin) if len(self.lin) else np.zeros(len(lin), bool)
        return np.where(ok, pos, -1)

    def signs(self) -> np.ndarray:
        """+1 outside / -1 inside for every band point, by the angle-weighted pseudo-normal of the
        closest feature."""
        v, f = self.v, self.f
        fn = _unit(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]))
        # vertex normals weighted by the corner angles
        vn = np.zeros_like(v)
        for i in range(3):
            e1, e2 = _unit(v[f[:, (i + 1) % 3]] - v[f[:, i]]), _unit(v[f[:, (i + 2) % 3]] - v[f[:, i]])
            ang = np.arccos(np.clip(np.einsum("ij,ij->i", e1, e2), -1.0, 1.0))
            np.add.at(vn, f[:, i], fn * ang[:, None])
        # edge normals: the sum of the faces sharing the edge (ab, bc, ca per face)
        edges = np.sort(np.stack([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], 1).reshape(-1, 2), axis=1)
        _, inv = np.unique(edges, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        en_sum = np.zeros((inv.max(initial=-1) + 1, 3))
        np.add.at(en_sum, inv, np.repeat(fn, 3, axis=0))
        en = en_sum[inv].reshape(-1, 3, 3)
        t, reg = self.tri, self.region.astype(np.int64)
        normal = fn[t].copy()
        corner = (reg >= 1) & (reg <= 3)
        normal[corner] = vn[f[t[corner], reg[corner] - 1]]
        edge = reg >= 4
        normal[edge] = en[t[edge], reg[edge] - 4]
        p = self.grid.position(self.lin)
        return np.where(np.einsum("ij,ij->i", p - self.cp, normal) < 0, -1.0, 1.0)

    def closest(self, x: np.ndarray, candidates: np.ndarray):
        """Closest points of ``x`` on the candidate triangles ``[n, k]`` (-1 = none): the point,
        the triangle (-1 where there was no candidate) and the distance."""
        n, k = candidates.shape
        rows = np.repeat(np.arange(n), k)
        tri = candidates.reshape(-1)
        ok = tri >= 0
        rows, tri = rows[ok], tri[ok]
        best_d = np.full(n, np.inf)
        best_p = x.copy()
        best_t = np.full(n, -1, np.int64)
        if len(rows):
            f = self.f[tri]
            cp, _ = _closest_on_triangles(x[rows], self.v[f[:, 0]], self.v[f[:, 1]], self.v[f[:, 2]])
            d = np.linalg.norm(x[rows] - cp, axis=1)
            order = np.lexsort((d, rows))
            r = rows[order]
            first = np.ones(len(r), bool)
            first[1:] = r[1:] != r[:-1]
            sel = order[first]
            best_d[rows[sel]], best_p[rows[sel]], best_t[rows[sel]] = d[sel], cp[sel], tri[sel]
        return best_p, best_t, best_d

    def cell_candidates(self, x: np.ndarray) -> np.ndarray:
        """The closest triangles of the 8 grid points around each of ``x`` ([n, 8], -1 = none)."""
        g = self.grid
        base = np.floor((x - g.origin) / g.h).astype(np.int64)
        base = np.clip(base, 0, np.array(g.shape) - 2)
        out = np.full((len(x), 8), -1, np.int64)
        for c in range(8):
            off = np.array([c & 1, (c >> 1) & 1, (c >> 2) & 1])
            idx = self.find((base + off) @ g.strides)
            out[:, c] = np.where(idx >= 0, self.tri[np.maximum(idx, 0)], -1)
        return out


# ------------------------------------------------------------------ dual contouring

_CORNER = np.array([[c & 1, (c >> 1) & 1, (c >> 2) & 1] for c in range(8)])


def _local_edges() -> list[tuple[int, int]]:
    """The 12 cell edges as corner pairs, numbered ``axis * 4 + o1 + 2 * o2`` where o1, o2 are the
    offsets along the other two axes in increasing order."""
    out = []
    for a in range(3):
        b, c = [x for x in range(3) if x != a]
        for o in range(4):
            lo = np.zeros(3, np.int64)
            lo[b], lo[c] = o & 1, o >> 1
            hi = lo.copy()
            hi[a] = 1
            out.append((int(lo @ [1, 2, 4]), int(hi @ [1, 2, 4])))
    return out


@lru_cache(maxsize=1)
def _patch_table() -> np.ndarray:
    """[256, 12]: for each inside-corner configuration, the surface patch (marching-cubes sheet)
    each crossed edge belongs to, -1 for edges not crossed. On a cell face crossed four times the
    inside corners are kept apart, a rule that depends on the face alone, so neighbours agree."""
    edges = _local_edges()
    table = np.full((256, 12), -1, np.int64)
    for config in range(256):
        inside = [(config >> c) & 1 for c in range(8)]
        crossed = [inside[p] != inside[q] for p, q in edges]
        parent = list(range(12))

        def root(e: int) -> int:
            while parent[e] != e:
                parent[e] = parent[parent[e]]
                e = parent[e]
            return e

        for axis in range(3):
            for side in range(2):
                corners = [c for c in range(8) if _CORNER[c, axis] == side]
                face = [e for e, (p, q) in enumerate(edges) if p in corners and q in corners and crossed[e]]
                if len(face) == 2:
                    parent[root(face[0])] = root(face[1])
                elif len(face) == 4:
                    for c in corners:
                        if inside[c]:
                            pair = [e for e in face if c in edges[e]]
                            parent[root(pair[0])] = root(pair[1])
        roots: dict[int, int] = {}
        for e in range(12):
            if crossed[e]:
                table[config, e] = roots.setdefault(root(e), len(roots))
    return table


def _dual_contour(grid: _Grid, lin: np.ndarray, val: np.ndarray, normals_at, qef: bool, manifold: bool):
    """Dual contouring of the field ``val`` (negative inside) known at the sorted grid points
    ``lin``; ``normals_at(x, lin_lo, axis)`` gives the surface normals at edge crossings ``x``."""
    h, strides = grid.h, grid.strides
    coords = grid.coords(lin)

    def find(q: np.ndarray) -> np.ndarray:
        pos = np.minimum(np.searchsorted(lin, q), len(lin) - 1)
        return np.where(lin[pos] == q, pos, -1)

    # crossed grid edges
    e_lo, e_axis, e_t, e_in = [], [], [], []
    for a in range(3):
        cand = np.nonzero(coords[:, a] < grid.shape[a] - 1)[0]
        j = find(lin[cand] + strides[a])
        ok = j >= 0
        i, j = cand[ok], j[ok]
        cross = (val[i] < 0) != (val[j] < 0)
        i, j = i[cross], j[cross]
        e_lo.append(i)
        e_axis.append(np.full(len(i), a))
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.clip(val[i] / (val[i] - val[j]), 0.0, 1.0)
        e_t.append(np.nan_to_num(t, nan=0.5))
        e_in.append(val[i] < 0)
    lo_idx, axis, t, lo_inside = (np.concatenate(x) for x in (e_lo, e_axis, e_t, e_in))
    if len(lo_idx) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    lo_lin = lin[lo_idx]
    x = grid.position(lo_lin) + h * t[:, None] * np.eye(3)[axis]
    normals = normals_at(x, lo_lin, axis) if qef else None
    if (np.min(coords[lo_idx], axis=0) < 1).any():
        raise ValidationError("internal: a surface crossing reached the grid's border")  # pragma: no cover
    # the four cells around each crossed edge, with the edge's local number in each
    other = np.array([[1, 2], [0, 2], [0, 1]])
    cells, local = np.empty((len(x), 4), np.int64), np.empty((len(x), 4), np.int64)
    for k, (u, w) in enumerate(((0, 0), (1, 0), (1, 1), (0, 1))):
        cells[:, k] = lo_lin - u * strides[other[axis, 0]] - w * strides[other[axis, 1]]
        local[:, k] = axis * 4 + u + 2 * w
    ucell, cinv = np.unique(cells.reshape(-1), return_inverse=True)
    cinv = cinv.reshape(-1, 4)
    if manifold:
        config = np.zeros(len(ucell), np.int64)
        for c in range(8):
            j = find(ucell + _CORNER[c] @ strides)
            inside = np.where(j >= 0, val[np.maximum(j, 0)] < 0, False)
            config |= inside.astype(np.int64) << c
        patch = _patch_table()[config[cinv], local]
        if (patch < 0).any():
            raise ValidationError("internal: inconsistent cell configuration")  # pragma: no cover
    else:
        patch = np.zeros_like(cinv)
    key = cinv * 4 + patch
    ukey, vinv = np.unique(key.reshape(-1), return_inverse=True)
    vinv = vinv.reshape(-1, 4)
    nvert = len(ukey)
    owner = vinv.reshape(-1)
    xs = np.repeat(x, 4, axis=0)
    count = np.bincount(owner, minlength=nvert).astype(np.float64)
    mass = np.stack([np.bincount(owner, xs[:, i], nvert) for i in range(3)], 1) / count[:, None]
    verts = mass
    cell_min = grid.position(ucell[ukey // 4])
    if qef:
        ns = np.repeat(normals, 4, axis=0)
        ata = np.zeros((nvert, 3, 3))
        atb = np.zeros((nvert, 3))
        np.add.at(ata, owner, ns[:, :, None] * ns[:, None, :])
        np.add.at(atb, owner, ns * np.einsum("ij,ij->i", ns, xs - mass[owner])[:, None])
        u, s, vt = np.linalg.svd(ata)
        keep = s > 0.1 * s[:, :1]
        inv_s = np.where(keep, 1.0 / np.where(keep, s, 1.0), 0.0)
        sol = np.einsum("nji,nj,nkj,nk->ni", vt, inv_s, u, atb)
        verts = np.clip(mass + sol, cell_min, cell_min + h)
    # quads: counter-clockwise about +axis when the lower end is inside
    # (for the y axis the other two, x then z, run against the cyclic order: flipped)
    quads = vinv.copy()
    flip = (~lo_inside) ^ (axis == 1)
    quads[flip] = quads[flip][:, ::-1]
    d02 = np.linalg.norm(verts[quads[:, 0]] - verts[quads[:, 2]], axis=1)
    d13 = np.linalg.norm(verts[quads[:, 1]] - verts[quads[:, 3]], axis=1)
    split02 = d02 <= d13
    tris = np.concatenate([
        np.where(split02[:, None], quads[:, [0, 1, 2]], quads[:, [0, 1, 3]]),
        np.where(split02[:, None], quads[:, [0, 2, 3]], quads[:, [1, 2, 3]]),
    ])
    return verts, tris


# ------------------------------------------------------------------ the solid mode's graph cut

def _solid_labels(grid: _Grid, band: _Band, band_width: float, fill: float) -> np.ndarray:
    """Inside (True) / outside for every grid point by a minimum s-t cut."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import breadth_first_order, maximum_flow

    n = grid.size
    h = grid.h
    dist = np.full(n, np.inf)
    dist[band.lin] = band.dist
    dist = dist.reshape(grid.shape)
    near = dist <= band_width * h
    forced = dist <= 0.5 * h
    # escape fraction: of the six axis rays from a point, those that leave the grid without meeting `near`
    escapes = np.zeros(grid.shape)
    for ax in range(3):
        hit = np.maximum.accumulate(near, axis=ax)
        escapes += ~hit
        hit = np.flip(np.maximum.accumulate(np.flip(near, axis=ax), axis=ax), axis=ax)
        escapes += ~hit
    eps = escapes / 6.0
    scale = 256  # capacity of one grid face cut next to the surface
    big = np.int64(1 << 28)
    # data terms, weak (4 / resolution of a face per point, so the balance with areas does not depend
    # on the resolution): the cost of each label (the cut pays the source edge for inside, the sink
    # edge for outside)
    weight = scale * 4.0 / max(grid.shape)
    cost_in = np.rint(weight * eps).astype(np.int64)
    cost_out = np.rint(weight * (1.0 - eps)).astype(np.int64)
    diff = np.minimum(cost_in, cost_out)
    cost_in, cost_out = cost_in - diff, cost_out - diff
    cost_out[forced] = big
    cost_in[forced] = 0
    border = np.zeros(grid.shape, bool)
    border[[0, -1], :, :] = border[:, [0, -1], :] = border[:, :, [0, -1]] = True
    cost_in[border] = big
    cost_out[border] = 0
    idx = np.arange(n, dtype=np.int32).reshape(grid.shape)
    src, dst, cap = [], [], []
    for ax in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax], hi[ax] = slice(0, -1), slice(1, None)
        p, q = idx[tuple(lo)].reshape(-1), idx[tuple(hi)].reshape(-1)
        surf = near[tuple(lo)].reshape(-1) | near[tuple(hi)].reshape(-1)
        w = np.maximum(np.where(surf, scale, np.rint(scale * fill)), 1).astype(np.int32)
        src += [p, q]
        dst += [q, p]
        cap += [w, w]
    s_node, t_node = n, n + 1
    nodes = np.arange(n, dtype=np.int32)
    m = cost_in.reshape(-1) > 0
    src.append(np.full(m.sum(), s_node, np.int32))
    dst.append(nodes[m])
    cap.append(cost_in.reshape(-1)[m].astype(np.int32))
    m = cost_out.reshape(-1) > 0
    src.append(nodes[m])
    dst.append(np.full(m.sum(), t_node, np.int32))
    cap.append(cost_out.reshape(-1)[m].astype(np.int32))
    src, dst, cap = np.concatenate(src), np.concatenate(dst), np.concatenate(cap)
    graph = csr_matrix((cap, (src, dst)), shape=(n + 2, n + 2))
    del src, dst, cap
    graph.sum_duplicates()
    flow = maximum_flow(graph, s_node, t_node).flow
    residual = (graph - flow).tocsr()
    residual.data = np.where(residual.data > 0, residual.data, 0)
    residual.eliminate_zeros()
    outside = np.zeros(n + 2, bool)
    outside[breadth_first_order(residual, s_node, directed=True, return_predecessors=False)] = True
    return ~outside[:n].reshape(grid.shape)


# ------------------------------------------------------------------ clean-up passes

def _components(nv: int, f: np.ndarray) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]]])
    adj = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(nv, nv))
    return connected_components(adj, directed=False)[1]


def _inside_mesh(points: np.ndarray, v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Ray parity of each point against the triangles (a slightly skewed +x ray)."""
    d = _unit(np.array([1.0, 0.0123, 0.0071]))
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    e1, e2 = b - a, c - a
    pv = np.cross(d, e2)
    det = np.einsum("ij,ij->i", e1, pv)
    ok = np.abs(det) > 1e-18
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    out = np.zeros(len(points), bool)
    for i, p in enumerate(points):
        tv = p - a
        u = np.einsum("ij,ij->i", tv, pv) * inv
        qv = np.cross(tv, e1)
        w = (qv @ d) * inv
        t = np.einsum("ij,ij->i", e2, qv) * inv
        hits = ok & (u >= 0) & (w >= 0) & (u + w <= 1) & (t > 0)
        out[i] = bool(hits.sum() & 1)
    return out


def _filter_components(v, f, drop_small: float, drop_inverted: bool, drop_enclosed: bool):
    if len(f) == 0:
        return f
    comp = _components(len(v), f)[f[:, 0]]
    ncomp = comp.max() + 1
    faces_per = np.bincount(comp, minlength=ncomp)
    keep = faces_per > 0
    if drop_small > 0:  # first, so fewer parts need the ray test below
        keep &= faces_per >= drop_small * faces_per.max()
    if drop_inverted:
        vol = np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])) / 6.0
        keep &= np.bincount(comp, vol, ncomp) >= 0
    if drop_enclosed and keep.any():
        largest = int(np.argmax(np.where(keep, faces_per, -1)))
        lf = f[comp == largest]
        lo, hi = v[lf].reshape(-1, 3).min(0), v[lf].reshape(-1, 3).max(0)
        others = [c for c in range(ncomp) if keep[c] and c != largest]
        if others:
            probe = np.array([v[f[np.argmax(comp == c), 0]] for c in others])
            inside_box = ((probe >= lo) & (probe <= hi)).all(axis=1)
            inside = np.zeros(len(others), bool)
            if inside_box.any():
                inside[inside_box] = _inside_mesh(probe[inside_box], v, lf)
            keep[np.array(others)[inside]] = False
    return f[keep[comp]]


def _fix_poles(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Remove interior vertices of valence 3 (the fan of three triangles becomes one triangle),
    one of each adjacent pair at a time."""
    nv = len(v)
    deg = np.bincount(f.reshape(-1), minlength=nv)
    cand = np.nonzero(deg == 3)[0]
    if len(cand) == 0:
        return f
    vf = [[] for _ in range(nv)]
    cset = set(cand.tolist())
    for fi, tri in enumerate(f.tolist()):
        for x in tri:
            if x in cset:
                vf[x].append(fi)
    existing = {tuple(sorted(t)) for t in f.tolist()}
    removed = np.zeros(len(f), bool)
    blocked: set[int] = set()
    new = []
    for x in cand.tolist():
        if x in blocked:
            continue
        ring = {}
        for fi in vf[x]:
            tri = f[fi].tolist()
            k = tri.index(x)
            ring[tri[(k + 1) % 3]] = tri[(k + 2) % 3]
        if len(ring) != 3 or set(ring) != set(ring.values()) or any(removed[fi] for fi in vf[x]):
            continue
        a = next(iter(ring))
        b = ring[a]
        c = ring[b]
        if tuple(sorted((a, b, c))) in existing:
            continue
        removed[vf[x]] = True
        new.append((a, b, c))
        existing.add(tuple(sorted((a, b, c))))
        blocked.update((a, b, c))
    if not new:
        return f
    return np.concatenate([f[~removed], np.array(new, np.int64)])


def _taubin(v: np.ndarray, f: np.ndarray, iters: int, lam: float = 0.5, mu: float = -0.53) -> np.ndarray:
    from scipy.sparse import coo_matrix, diags

    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    e = np.unique(np.sort(e, axis=1), axis=0)
    adj = coo_matrix((np.ones(2 * len(e)), (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])),
                     shape=(len(v), len(v))).tocsr()
    deg = np.asarray(adj.sum(axis=1)).reshape(-1)
    avg = diags(1.0 / np.maximum(deg, 1)) @ adj
    has = (deg > 0)[:, None]
    for _ in range(iters):
        for factor in (lam, mu):
            v = v + factor * np.where(has, avg @ v - v, 0.0)
    return v


def _compact(v: np.ndarray, f: np.ndarray):
    used = np.unique(f.reshape(-1))
    remap = np.full(len(v), -1, np.int64)
    remap[used] = np.arange(len(used))
    return v[used], remap[f], used


# ------------------------------------------------------------------ entry points

def remesh_item(vertices: np.ndarray, faces: np.ndarray, resolution: int = 512, sign_mode: str = "udf", *,
                band: float = 1.0, qef: bool | None = None, manifold: bool = False, fill: float = 20.0,
                project_back: float = 0.0, fix_poles: bool = False, smooth_iters: int = 0,
                drop_small_components: float = 0.01, drop_inverted_components: bool = False,
                drop_enclosed_components: bool = False, precluster_max_verts: int = 20_000_000,
                colors: np.ndarray | None = None):
    """Remesh one mesh; returns ``(vertices, faces, colors or None)`` (see the module docstring).
    ``qef=None`` takes the mode's default (on for ``sdf``).

    Raises:
        ValidationError: an unknown mode, a value out of its range, faces indexing missing vertices.
        MissingDependencyError: scipy is not installed (the ``mesh`` extra).
    """
    if sign_mode not in SIGN_MODES:
        raise ValidationError(f"`sign_mode` must be one of {list(SIGN_MODES)}, got {sign_mode!r}")
    checks = (("resolution", resolution, 32, 2048), ("band", band, 0.5, 4.0), ("project_back", project_back, 0.0, 1.0),
              ("smooth_iters", smooth_iters, 0, 20), ("drop_small_components", drop_small_components, 0.0, 0.5),
              ("precluster_max_verts", precluster_max_verts, 0, 100_000_000), ("fill", fill, 0.0, 1000.0))
    for name, value, lo, hi in checks:
        if not (lo <= value <= hi):
            raise ValidationError(f"`{name}` must be within {lo}..{hi}, got {value}")
    qef = sign_mode == "sdf" if qef is None else bool(qef)
    require("scipy", "mesh")  # graphs, sparse smoothing, the cut (MissingDependencyError names the extra)
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    col = None if colors is None else np.asarray(colors, np.float64)
    if len(f) and (f.min() < 0 or f.max() >= len(v)):
        raise ValidationError(f"mesh faces index vertices 0..{len(v) - 1}, got {f.min()}..{f.max()}")
    if not np.isfinite(v).all():
        raise ValidationError("mesh vertices must be finite numbers")
    empty = (np.zeros((0, 3)), np.zeros((0, 3), np.int64), None if col is None else np.zeros((0, col.shape[1])))
    if len(f) == 0:
        return empty
    v, f, col = _weld(v, f, col)
    if len(f) == 0:
        return empty
    if 0 < precluster_max_verts < len(v):
        v, f, col = _precluster(v, f, col, precluster_max_verts)
        if len(f) == 0:
            return empty
    lo, hi = v[f].reshape(-1, 3).min(0), v[f].reshape(-1, 3).max(0)
    if float((hi - lo).max()) <= 0:
        raise ValidationError("`mesh` has no extent to remesh (all its vertices coincide)")
    # how far the field is needed: past the level set by one voxel (cell corners, normals)
    reach = (max(band, 1.0) if sign_mode == "sdf" else band) + 1.0
    pad = int(math.ceil(reach)) + 2
    grid = _Grid(lo, hi, resolution, pad)
    if sign_mode == "solid" and grid.size > SOLID_MAX_GRID:
        scale = (SOLID_MAX_GRID / grid.size) ** (1 / 3)
        lowered = max(8, int(resolution * scale))
        log.warning("RemeshMesh solid: resolution %d lowered to %d (the graph cut covers the whole grid, "
                    "at most %d points on the CPU)", resolution, lowered, SOLID_MAX_GRID)
        grid = _Grid(lo, hi, lowered, pad)
    field = _Band(grid, v, f, reach)
    h = grid.h
    face_n = _unit(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]))

    def normals_at(x: np.ndarray, lo_lin: np.ndarray, axis: np.ndarray) -> np.ndarray:
        cand = np.stack([field.find(lo_lin), field.find(lo_lin + grid.strides[axis])], 1)
        cand = np.where(cand >= 0, field.tri[np.maximum(cand, 0)], -1)
        cp, tri, d = field.closest(x, cand)
        n = np.where((tri >= 0)[:, None], face_n[np.maximum(tri, 0)], np.eye(3)[axis])
        if sign_mode != "sdf":
            off = x - cp
            radial = d > 0.05 * h
            n = np.where(radial[:, None], _unit(off), n)
            if sign_mode == "solid":  # closing surfaces away from the input: the grid axis
                n = np.where(((tri < 0) | (d > 1.5 * h))[:, None], np.eye(3)[axis], n)
        return n

    if sign_mode == "solid":
        inside = _solid_labels(grid, field, band, fill).reshape(-1)
        near = np.zeros(grid.size, bool)
        boundary = np.zeros(grid.shape, bool)
        ins = inside.reshape(grid.shape)
        for ax in range(3):
            change = np.diff(ins, axis=ax)
            lo_s = [slice(None)] * 3
            hi_s = [slice(None)] * 3
            lo_s[ax], hi_s[ax] = slice(0, -1), slice(1, None)
            boundary[tuple(lo_s)] |= change
            boundary[tuple(hi_s)] |= change
        from scipy.ndimage import binary_dilation
        near = binary_dilation(boundary, np.ones((3, 3, 3), bool)).reshape(-1)
        lin = np.nonzero(near)[0].astype(np.int64)
        d = np.full(len(lin), np.inf)
        j = field.find(lin)
        d[j >= 0] = field.dist[j[j >= 0]]
        val = np.minimum(d - 0.5 * h, 1.5 * h)  # the level set half a voxel out; free space capped
        val = np.where(inside[lin], np.where(d <= 0.5 * h, np.minimum(val, -1e-6 * h), -1.5 * h),
                       np.maximum(val, 1e-6 * h))
    elif sign_mode == "sdf":
        lin, val = field.lin, field.signs() * field.dist
    else:
        lin, val = field.lin, field.dist - band * h
    if len(lin) == 0:
        return empty
    out_v, out_f = _dual_contour(grid, lin, val, normals_at, qef, manifold and sign_mode == "sdf")
    out_f = _filter_components(out_v, out_f, drop_small_components,
                               drop_inverted_components and sign_mode == "udf",
                               drop_enclosed_components and sign_mode == "udf")
    if len(out_f) == 0:
        return empty
    out_v, out_f, _ = _compact(out_v, out_f)
    if fix_poles:
        out_f = _fix_poles(out_v, out_f)
        out_v, out_f, _ = _compact(out_v, out_f)
    if smooth_iters > 0:
        out_v = _taubin(out_v, out_f, smooth_iters)
    need_closest = project_back > 0 or col is not None
    if need_closest:
        cp, tri, _ = field.closest(out_v, field.cell_candidates(out_v))
        found = tri >= 0
        if project_back > 0:
            out_v = np.where(found[:, None], out_v + project_back * (cp - out_v), out_v)
    out_col = None
    if col is not None:
        out_col = np.zeros((len(out_v), col.shape[1]))
        if found.any():
            t = f[tri[found]]
            a, b, c = v[t[:, 0]], v[t[:, 1]], v[t[:, 2]]
            bary = _barycentric(cp[found], a, b, c)
            out_col[found] = np.einsum("nk,nkc->nc", bary, col[t])
        if (~found).any():
            from scipy.spatial import cKDTree
            out_col[~found] = col[cKDTree(v).query(out_v[~found])[1]]
    return out_v, out_f, out_col


def _barycentric(p, a, b, c):
    v0, v1, v2 = b - a, c - a, p - a
    d00, d01, d11 = (np.einsum("ij,ij->i", x, y) for x, y in ((v0, v0), (v0, v1), (v1, v1)))
    d20, d21 = np.einsum("ij,ij->i", v2, v0), np.einsum("ij,ij->i", v2, v1)
    den = d00 * d11 - d01 * d01
    den = np.where(np.abs(den) > 0, den, 1.0)
    w1 = (d11 * d20 - d01 * d21) / den
    w2 = (d00 * d21 - d01 * d20) / den
    bary = np.clip(np.stack([1 - w1 - w2, w1, w2], 1), 0.0, 1.0)
    return bary / np.maximum(bary.sum(1, keepdims=True), 1e-12)


def remesh_mesh(mesh: Mesh, resolution: int = 512, sign_mode: str = "udf", **options) -> Mesh:
    """:func:`remesh_item` on every item of a MESH batch (a padded batch comes back); UVs and
    normals are dropped, colours carried."""
    items = []
    for b in range(mesh.batch_size):
        item = mesh_item(mesh, b)
        colors = item.get("colors")
        v, f, col = remesh_item(item["vertices"].double().numpy(), item["faces"].numpy(), resolution, sign_mode,
                                colors=None if colors is None else colors.double().numpy(), **options)
        out = {"vertices": torch.from_numpy(v).to(mesh.vertices.dtype), "faces": torch.from_numpy(f).to(mesh.faces.dtype)}
        if colors is not None:
            out["colors"] = torch.from_numpy(col if col is not None else np.zeros((0, colors.shape[-1]))).to(colors.dtype)
        items.append(out)
    return stack_items(items)
