"""Triangle meshes as node values: the MESH batch, its statistics, transforms, vertex normals and
GLB bytes.

Owns :class:`Mesh` (ComfyUI's MESH: ``vertices`` float [B, N, 3] and ``faces`` int [B, M, 3],
zero-padded across a batch with the true sizes in ``vertex_counts`` / ``face_counts``, plus
optional per-vertex ``normals``, ``uvs`` and ``colors``, and optional per-item texture maps laid
out on the UVs: ``texture`` (base colour), ``normal_texture`` (tangent space) and ``orm_texture``
(occlusion, roughness, metallic), each [B, H, W, 3|4] in 0..1), :class:`File3D` (a 3D file's bytes and
format), and the plain functions the mesh nodes wrap. torch and numpy only; writing GLB needs the
optional ``trimesh`` (``pip install nodeloom[mesh]``).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from nodeloom.errors import ValidationError, require

__all__ = ["File3D", "Mesh", "TEXTURE_KEYS", "format_count", "mesh_info", "mesh_item", "merge_meshes", "rotate_mesh",
           "rotation_matrix", "smooth_normals", "stack_items", "to_glb", "with_glb_extras"]


#: the per-item texture maps a MESH may carry (images laid out on its UVs)
TEXTURE_KEYS = ("texture", "normal_texture", "orm_texture")


@dataclass(frozen=True)
class Mesh:
    """A batch of triangle meshes (see the module docstring for the fields)."""

    vertices: torch.Tensor
    faces: torch.Tensor
    vertex_counts: tuple[int, ...] | None = None
    face_counts: tuple[int, ...] | None = None
    normals: torch.Tensor | None = None
    uvs: torch.Tensor | None = None
    colors: torch.Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict, compare=False)
    texture: torch.Tensor | None = None
    normal_texture: torch.Tensor | None = None
    orm_texture: torch.Tensor | None = None

    def __post_init__(self) -> None:
        v, f = self.vertices, self.faces
        if v.ndim != 3 or v.shape[-1] != 3:
            raise ValidationError(f"mesh `vertices` must be shaped [B, N, 3], got {tuple(v.shape)}")
        if f.ndim != 3 or f.shape[-1] != 3 or f.shape[0] != v.shape[0]:
            raise ValidationError(f"mesh `faces` must be shaped [B, M, 3] with B = {v.shape[0]}, got {tuple(f.shape)}")
        for name, width in (("normals", (3,)), ("uvs", (2,)), ("colors", (3, 4))):
            value = getattr(self, name)
            if value is not None and (value.shape[:2] != v.shape[:2] or value.shape[-1] not in width):
                raise ValidationError(f"mesh `{name}` must be shaped [B, N, {'|'.join(map(str, width))}] like the "
                                      f"vertices {tuple(v.shape[:2])}, got {tuple(value.shape)}")
        for name in TEXTURE_KEYS:
            value = getattr(self, name)
            if value is not None and (value.ndim != 4 or value.shape[0] != v.shape[0] or value.shape[-1] not in (3, 4)):
                raise ValidationError(f"mesh `{name}` must be an image batch shaped [B, H, W, 3|4] with B = "
                                      f"{v.shape[0]}, got {tuple(value.shape)}")

    @property
    def vertex_colors(self) -> torch.Tensor | None:
        """ComfyUI's name for ``colors`` (packs read ``mesh.vertex_colors``)."""
        return self.colors

    @property
    def batch_size(self) -> int:
        return int(self.vertices.shape[0])

    def counts(self, index: int) -> tuple[int, int]:
        """The real vertex and face count of item ``index``."""
        nv = self.vertex_counts[index] if self.vertex_counts is not None else int(self.vertices.shape[1])
        nf = self.face_counts[index] if self.face_counts is not None else int(self.faces.shape[1])
        return nv, nf


@dataclass(frozen=True)
class File3D:
    """A 3D file held in memory: its bytes and format ("glb", "obj", ...)."""

    data: bytes
    format: str = "glb"

    def get_bytes(self) -> bytes:
        return self.data


def mesh_item(mesh: Mesh, index: int) -> dict[str, torch.Tensor]:
    """Item ``index`` without padding: ``vertices``, ``faces`` and whichever attributes and texture
    maps ([H, W, C]) it has."""
    nv, nf = mesh.counts(index)
    out = {"vertices": mesh.vertices[index, :nv], "faces": mesh.faces[index, :nf].long()}
    for name in ("normals", "uvs", "colors"):
        value = getattr(mesh, name)
        if value is not None:
            out[name] = value[index, :nv]
    for name in TEXTURE_KEYS:
        value = getattr(mesh, name)
        if value is not None:
            out[name] = value[index]
    return out


def stack_items(items: list[dict[str, torch.Tensor]]) -> Mesh:
    """A padded batch of unpadded items (all with the same attribute set; texture maps of one size).

    Raises:
        ValidationError: the items' texture maps differ in size.
    """
    nvs = [int(i["vertices"].shape[0]) for i in items]
    nfs = [int(i["faces"].shape[0]) for i in items]

    def pad(key: str, length: list[int]) -> torch.Tensor | None:
        if key not in items[0]:
            return None
        first = items[0][key]
        out = first.new_zeros((len(items), max(length), first.shape[-1]))
        for b, item in enumerate(items):
            out[b, : item[key].shape[0]] = item[key]
        return out

    maps: dict[str, torch.Tensor] = {}
    for key in TEXTURE_KEYS:
        if key in items[0]:
            shapes = {tuple(i[key].shape) for i in items}
            if len(shapes) > 1:
                raise ValidationError(f"the meshes' `{key}` maps must share one size to form a batch, got "
                                      f"{sorted(shapes)}")
            maps[key] = torch.stack([i[key] for i in items])
    padded = len(set(nvs)) > 1 or len(set(nfs)) > 1
    return Mesh(pad("vertices", nvs), pad("faces", nfs),  # type: ignore[arg-type]
                tuple(nvs) if padded else None, tuple(nfs) if padded else None,
                pad("normals", nvs), pad("uvs", nvs), pad("colors", nvs), **maps)


def format_count(n: int) -> str:
    """``1,234,567 (1.23M)``, ``12,345 (12.3K)``, ``999``."""
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")):
        if n >= size:
            scaled = n / size
            digits = 2 if scaled < 10 else 1 if scaled < 100 else 0
            return f"{n:,} ({scaled:.{digits}f}{suffix})"
    return f"{n:,}"


def mesh_info(mesh: Mesh) -> str:
    """A report: vertex and face counts (totals and per item for a batch) and the attributes present."""
    counts = [mesh.counts(b) for b in range(mesh.batch_size)]
    lines = [f"vertices: {format_count(sum(c[0] for c in counts))}", f"faces: {format_count(sum(c[1] for c in counts))}"]
    if mesh.batch_size > 1:
        lines.append(f"batch: {mesh.batch_size} meshes")
        lines += [f"  [{b}] vertices: {format_count(nv)}, faces: {format_count(nf)}" for b, (nv, nf) in enumerate(counts)]
    present = [name for name in ("uvs", "colors", "normals", *TEXTURE_KEYS) if getattr(mesh, name) is not None]
    present = ["vertex_colors" if p == "colors" else p for p in present]
    lines.append(f"attributes: {', '.join(present) if present else 'none'}")
    return "\n".join(lines)


def rotation_matrix(mode: str, angles: tuple[float, float, float] = (0.0, 0.0, 0.0),
                    quaternion: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)) -> np.ndarray:
    """A 3×3 rotation: "euler_xyz" turns about the world X, then Y, then Z axis by ``angles`` (degrees);
    "quaternion" uses (w, x, y, z), normalised.

    Raises:
        ValidationError: an unknown mode, or a quaternion of (near) zero length.
    """
    if mode == "euler_xyz":
        ax, ay, az = (math.radians(a) for a in angles)
        rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
        ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
        rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
        return rz @ ry @ rx
    if mode == "quaternion":
        q = np.asarray(quaternion, dtype=np.float64)
        norm = float(np.linalg.norm(q))
        if norm < 1e-8:
            raise ValidationError(f"the quaternion (w, x, y, z) = {tuple(quaternion)} has no direction: its length is "
                                  f"{norm:.3g}, it must be at least 1e-8")
        w, x, y, z = q / norm
        return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                         [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                         [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
    raise ValidationError(f"`mode` must be 'euler_xyz' or 'quaternion', got {mode!r}")


def rotate_mesh(mesh: Mesh, matrix: np.ndarray) -> Mesh:
    """Vertices and normals turned by ``matrix`` (about the origin)."""
    r = torch.as_tensor(matrix, dtype=mesh.vertices.dtype, device=mesh.vertices.device)
    normals = mesh.normals @ r.T.to(mesh.normals.dtype) if mesh.normals is not None else None
    return replace(mesh, vertices=mesh.vertices @ r.T, normals=normals)


def merge_meshes(meshes: list[Mesh]) -> Mesh:
    """One mesh of the first item of each: vertices stacked, face indices offset; UVs / colours
    kept when any part has them (zeros / white for the parts without).

    Raises:
        ValidationError: no mesh given.
    """
    if not meshes:
        raise ValidationError("`meshes` needs at least one connected mesh")
    items = [mesh_item(m, 0) for m in meshes]
    verts, faces, offset = [], [], 0
    for item in items:
        verts.append(item["vertices"].float().cpu())
        faces.append(item["faces"].cpu() + offset)
        offset += int(item["vertices"].shape[0])
    merged: dict[str, torch.Tensor] = {"vertices": torch.cat(verts), "faces": torch.cat(faces)}
    for key, width, fill in (("uvs", 2, 0.0), ("colors", 4, 1.0)):
        if any(key in i for i in items):
            parts = []
            for item in items:
                n = int(item["vertices"].shape[0])
                part = item.get(key)
                part = torch.full((n, width), fill) if part is None else part.float().cpu()
                if key == "colors" and part.shape[-1] == 3:
                    part = torch.cat([part, torch.ones(n, 1)], dim=-1)
                parts.append(part)
            merged[key] = torch.cat(parts)
    return stack_items([merged])


def _face_normals(v: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Area-weighted (unnormalised) face normals."""
    return torch.linalg.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _corner_weights(v: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Each corner's share of its face normal: the face's unit normal times the corner's interior
    angle, so a vertex normal does not depend on how the faces around it were triangulated."""
    unit = _unit(_face_normals(v, f))
    out = []
    for k in range(3):
        a = _unit(v[f[:, (k + 1) % 3]] - v[f[:, k]])
        b = _unit(v[f[:, (k + 2) % 3]] - v[f[:, k]])
        angle = torch.arccos((a * b).sum(-1).clamp(-1.0, 1.0))
        out.append(unit * angle[:, None])
    return torch.stack(out, dim=1).reshape(-1, 3)  # corner order: face 0 corners 0..2, face 1...


def _smooth_item(item: dict[str, torch.Tensor], crease_angle: float) -> dict[str, torch.Tensor]:
    v, f = item["vertices"].double(), item["faces"]
    fn = _face_normals(v, f)
    weights = _corner_weights(v, f)
    if crease_angle >= 180.0:
        acc = torch.zeros_like(v).index_add_(0, f.reshape(-1), weights)
        return {**item, "normals": _unit(acc).to(item["vertices"].dtype)}
    # split each vertex into groups of its corners whose faces meet within the crease angle
    limit = math.cos(math.radians(crease_angle))
    unit_fn = _unit(fn)
    corners = f.reshape(-1).tolist()
    corner_faces = [c // 3 for c in range(len(corners))]
    by_vertex: dict[int, list[int]] = {}
    for c, vid in enumerate(corners):
        by_vertex.setdefault(vid, []).append(c)
    new_index = [0] * len(corners)
    sources: list[int] = []
    normals: list[torch.Tensor] = []
    for vid, cs in by_vertex.items():
        groups: list[list[int]] = []
        for c in cs:  # greedy: join the first group whose seed face is within the crease angle
            n = unit_fn[corner_faces[c]]
            home = next((g for g in groups if float(unit_fn[corner_faces[g[0]]] @ n) >= limit), None)
            (home.append(c) if home is not None else groups.append([c]))
        for g in groups:
            normals.append(_unit(weights[g].sum(dim=0)))
            for c in g:
                new_index[c] = len(sources)
            sources.append(vid)
    src = torch.tensor(sources, dtype=torch.long)
    out = {"vertices": item["vertices"][src], "faces": torch.tensor(new_index, dtype=torch.long).reshape(-1, 3),
           "normals": torch.stack(normals).to(item["vertices"].dtype)}
    for key in ("uvs", "colors"):
        if key in item:
            out[key] = item[key][src]
    out.update({key: item[key] for key in TEXTURE_KEYS if key in item})
    return out


def smooth_normals(mesh: Mesh, crease_angle: float = 180.0) -> Mesh:
    """Per-vertex normals averaged from the faces around each vertex (weighted by the angle each
    face spans at the vertex).

    At 180° the topology is kept; below, a vertex is split wherever faces around it turn by more
    than ``crease_angle`` degrees, so those edges stay hard (UVs and colours are copied along).
    """
    if crease_angle < 0.0:
        raise ValidationError(f"`crease_angle` must lie in 0..180 degrees, got {crease_angle}")
    items = [_smooth_item(mesh_item(mesh, b), crease_angle) for b in range(mesh.batch_size)]
    if crease_angle >= 180.0 and mesh.vertex_counts is None:
        return replace(mesh, normals=torch.stack([i["normals"] for i in items]))
    return replace(stack_items(items), extras=mesh.extras)


def with_glb_extras(glb: bytes, extras: dict[str, Any]) -> bytes:
    """``glb`` with ``extras`` merged into its ``asset.extras`` (where ComfyUI keeps the prompt and
    workflow of a saved mesh), the JSON chunk re-padded to 4 bytes."""
    if not extras:
        return glb
    import json
    import struct

    magic, version, _ = struct.unpack_from("<III", glb, 0)
    json_len, json_type = struct.unpack_from("<II", glb, 12)
    if magic != 0x46546C67 or json_type != 0x4E4F534A:
        raise ValidationError("not a GLB file: the header or its JSON chunk is missing")
    doc = json.loads(glb[20:20 + json_len].decode("utf-8"))
    doc.setdefault("asset", {"version": "2.0"}).setdefault("extras", {}).update(extras)
    body = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    body += b" " * (-len(body) % 4)
    rest = glb[20 + json_len:]
    head = struct.pack("<III", magic, version, 12 + 8 + len(body) + len(rest)) + struct.pack("<II", len(body), json_type)
    return head + body + rest


def to_glb(mesh: Mesh, index: int = 0, extras: dict[str, Any] | None = None) -> bytes:
    """Item ``index`` as GLB bytes (positions, faces, and the normals, UVs and colours it has; with
    UVs, its texture maps as the glTF material's base colour, normal and occlusion/roughness/metallic
    textures); ``extras`` go into the file's ``asset.extras``.

    Raises:
        MissingDependencyError: ``trimesh`` is not installed (the ``mesh`` extra).
        ValidationError: the item has no vertices or no faces.
    """
    trimesh = require("trimesh", "mesh")
    item = mesh_item(mesh, index)
    if item["vertices"].shape[0] == 0 or item["faces"].shape[0] == 0:
        raise ValidationError(f"mesh item {index} is empty ({item['vertices'].shape[0]} vertices, "
                              f"{item['faces'].shape[0]} faces); there is nothing to write")
    kwargs: dict[str, Any] = {}
    if "normals" in item:
        kwargs["vertex_normals"] = item["normals"].float().cpu().numpy()
    if "colors" in item:
        colors = item["colors"].float().cpu().numpy()
        kwargs["vertex_colors"] = np.clip(np.round(colors * 255), 0, 255).astype(np.uint8)
    tm = trimesh.Trimesh(vertices=item["vertices"].float().cpu().numpy(), faces=item["faces"].cpu().numpy(),
                         process=False, **kwargs)
    if "uvs" in item:
        from nodeloom.ops.mesh_texture import glb_material

        tm.visual = trimesh.visual.TextureVisuals(uv=item["uvs"].float().cpu().numpy(),
                                                  material=glb_material(item, mesh.extras))
    buffer = io.BytesIO()
    tm.export(buffer, file_type="glb", include_normals="normals" in item)
    return with_glb_extras(buffer.getvalue(), extras or {})
