"""Texture maps on a MESH: fitting UVs into the unit square, packing occlusion / roughness /
metallic into one glTF ORM image, attaching maps to a mesh, and the glTF material a GLB file gets.

UVs follow glTF-through-trimesh's convention: ``u`` to the right, ``v`` up, so texel row 0 is the
top of the image at ``v = 1``. torch, numpy and pillow only; trimesh is imported lazily.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nodeloom.errors import ValidationError, require
from nodeloom.ops.mesh import Mesh, mesh_item, stack_items

__all__ = ["apply_textures", "fit_uvs", "glb_material", "pack_orm"]

log = logging.getLogger(__name__)


def fit_uvs(uvs: torch.Tensor, name: str = "mesh") -> torch.Tensor:
    """UVs moved and uniformly scaled into [0, 1] when they spill out of it (aspect kept); UVs
    already inside are returned as they are. A span over 1.5 in either axis looks like a tiled or
    UDIM layout, which fitting squeezes into one tile: that is logged as a warning."""
    if uvs.numel() == 0:
        return uvs
    lo, hi = uvs.amin(dim=0), uvs.amax(dim=0)
    if float(lo.min()) >= 0.0 and float(hi.max()) <= 1.0:
        return uvs
    span = float((hi - lo).max())
    if span > 1.5:
        log.warning("%s: the UVs span %.2f units; a tiled/UDIM layout is squeezed into one [0, 1] tile", name, span)
    return (uvs - lo) / max(span, 1e-12)


def _to_pil(image: torch.Tensor) -> Any:
    from PIL import Image as PILImage

    pixels = (image.detach().float().clamp(0, 1).cpu().numpy() * 255.0).round().astype(np.uint8)
    return PILImage.fromarray(pixels[..., :3] if pixels.shape[-1] == 4 and np.all(pixels[..., 3] == 255) else pixels)


def glb_material(item: dict[str, torch.Tensor], extras: dict[str, Any] | None = None) -> Any:
    """The trimesh PBR material for one mesh item's texture maps ([H, W, C] each), or None when it
    has none. The ORM image doubles as the occlusion texture when ``extras["orm_occlusion"]``.

    Raises:
        MissingDependencyError: ``trimesh`` is not installed (the ``mesh`` extra).
    """
    if not any(key in item for key in ("texture", "normal_texture", "orm_texture")):
        return None
    trimesh = require("trimesh", "mesh")
    kwargs: dict[str, Any] = {"baseColorFactor": [255, 255, 255, 255], "metallicFactor": 0.0, "roughnessFactor": 1.0}
    if "texture" in item:
        kwargs["baseColorTexture"] = _to_pil(item["texture"])
    if "normal_texture" in item:
        kwargs["normalTexture"] = _to_pil(item["normal_texture"])
    if "orm_texture" in item:
        orm = _to_pil(item["orm_texture"])
        kwargs.update(metallicRoughnessTexture=orm, metallicFactor=1.0, roughnessFactor=1.0)
        if (extras or {}).get("orm_occlusion"):
            kwargs["occlusionTexture"] = orm
    return trimesh.visual.material.PBRMaterial(**kwargs)


def _check_image(image: Any, name: str) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[-1] not in (1, 3, 4) \
            or image.shape[0] == 0:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValidationError(f"`{name}` must be an IMAGE batch shaped [B, H, W, C] with C 1, 3 or 4, got {shape}")
    return image


def _as_map(image: torch.Tensor, index: int, size: tuple[int, int] | None, name: str) -> torch.Tensor:
    """Item ``index`` of an IMAGE batch (the last one when the batch is shorter), RGB, resized to
    ``size`` (H, W; None keeps its own) bilinearly when it differs."""
    image = _check_image(image, name)
    size = size or (int(image.shape[1]), int(image.shape[2]))
    one = image[min(index, image.shape[0] - 1)].float()
    one = one[..., :3] if one.shape[-1] >= 3 else one.expand(*one.shape[:2], 3)
    if tuple(one.shape[:2]) != size:
        one = F.interpolate(one.permute(2, 0, 1)[None], size=size, mode="bilinear", align_corners=False)[0]
        one = one.permute(1, 2, 0)
    return one.clamp(0, 1).cpu()


def pack_orm(occlusion: torch.Tensor | None, roughness: torch.Tensor | None, metallic: torch.Tensor | None,
             index: int = 0) -> torch.Tensor | None:
    """glTF's ORM image for batch item ``index``: R = occlusion (default 1), G = roughness
    (default 1), B = metallic (default 0), each from its map's first channel, all resized to the
    largest height and width among the maps given; None when no map is given."""
    given = {k: v for k, v in (("occlusion", occlusion), ("roughness", roughness), ("metallic", metallic))
             if v is not None}
    if not given:
        return None
    for name, value in given.items():
        _check_image(value, name)
    size = (max(int(v.shape[1]) for v in given.values()), max(int(v.shape[2]) for v in given.values()))
    channels = []
    for name, fill in (("occlusion", 1.0), ("roughness", 1.0), ("metallic", 0.0)):
        channels.append(_as_map(given[name], index, size, name)[..., 0] if name in given else torch.full(size, fill))
    return torch.stack(channels, dim=-1)


def apply_textures(mesh: Mesh, base_color: torch.Tensor, metallic: torch.Tensor | None = None,
                   roughness: torch.Tensor | None = None, occlusion: torch.Tensor | None = None,
                   normal_map: torch.Tensor | None = None) -> Mesh:
    """``mesh`` with its texture maps attached, item by item (an image batch shorter than the mesh
    batch repeats its last image): ``base_color`` as the texture, the ORM pack of the given
    material maps, and ``normal_map`` (which also brings smooth vertex normals, as a normal map
    needs). UVs outside [0, 1] are fitted into it, as the bake nodes do.

    Raises:
        ValidationError: the mesh has no UVs, or a map is not an IMAGE batch.
    """
    from nodeloom.ops.mesh import smooth_normals

    if mesh.uvs is None:
        raise ValidationError("`mesh` has no UVs: connect the same UV-unwrapped mesh the maps were baked on "
                              "(UnwrapMesh)")
    _check_image(base_color, "base_color")
    if normal_map is not None:
        _check_image(normal_map, "normal_map")
        mesh = smooth_normals(replace(mesh, normals=None))
    items = []
    for b in range(mesh.batch_size):
        item = mesh_item(mesh, b)
        item["uvs"] = fit_uvs(item["uvs"].float(), f"mesh item {b}")
        item["texture"] = _as_map(base_color, b, None, "base_color")
        orm = pack_orm(occlusion, roughness, metallic, b)
        if orm is not None:
            item["orm_texture"] = orm
        if normal_map is not None:
            item["normal_texture"] = _as_map(normal_map, b, None, "normal_map")
        items.append(item)
    out = stack_items(items)
    return replace(out, extras={**mesh.extras, "orm_occlusion": occlusion is not None})
