"""Coloured identity masks for SCAIL-2 (Wan character animation / replacement) from SAM3 video
tracks: which tracked person gets which palette colour, rendered per frame over a background.

A SAM3_TRACK_DATA value (ComfyUI's) is a dict with ``packed_masks``: uint8
``[T, N, H, W/8]``, each byte holding 8 horizontal pixels with the lowest bit leftmost (or
None when nothing was tracked), ``orig_size`` ``(height, width)`` of the video, and optionally
``n_frames`` and per-object ``scores``. Owns :func:`pack_masks`, :func:`unpack_masks`,
:func:`order_objects`, :func:`select_objects` and :func:`render_identity_masks`. Plain tensor
functions: no nodes, no engine.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from nodeloom.errors import ValidationError

__all__ = ["SCAIL_PALETTE", "check_track_data", "order_objects", "pack_masks", "parse_object_indices",
           "render_identity_masks", "render_mask_identity", "select_objects", "unpack_masks"]

#: the identity colours SCAIL-2 was trained on, in order: blue, red, green, magenta, cyan, yellow
SCAIL_PALETTE = ((0.0, 0.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (1.0, 0.0, 1.0), (0.0, 1.0, 1.0), (1.0, 1.0, 0.0))


def pack_masks(masks: torch.Tensor) -> torch.Tensor:
    """Bool masks ``[..., H, W]`` (W a multiple of 8) as SAM3's packed bytes ``[..., H, W/8]``."""
    if masks.shape[-1] % 8:
        raise ValidationError(f"packed masks need a width that is a multiple of 8, got {masks.shape[-1]}")
    bits = (masks > 0).view(*masks.shape[:-1], -1, 8).to(torch.uint8)
    return (bits << torch.arange(8, dtype=torch.uint8)).sum(-1, dtype=torch.uint8)


def unpack_masks(packed: torch.Tensor) -> torch.Tensor:
    """SAM3's packed bytes ``[..., H, W/8]`` as bool masks ``[..., H, W]``."""
    bits = (packed.to(torch.uint8).unsqueeze(-1) >> torch.arange(8, dtype=torch.uint8, device=packed.device)) & 1
    return bits.view(*packed.shape[:-1], -1).bool()


def check_track_data(track: Any, name: str) -> dict[str, Any]:
    """``track`` if it is a SAM3_TRACK_DATA dict, else a clear error naming ``name``."""
    if not isinstance(track, dict) or "orig_size" not in track or "packed_masks" not in track:
        raise ValidationError(f"`{name}` must be SAM3_TRACK_DATA (a dict with `packed_masks` and `orig_size`), "
                              f"got {type(track).__name__}")
    packed = track["packed_masks"]
    if packed is not None and (not isinstance(packed, torch.Tensor) or packed.ndim != 4):
        got = tuple(packed.shape) if isinstance(packed, torch.Tensor) else type(packed).__name__
        raise ValidationError(f"`{name}`: `packed_masks` must be uint8 [frames, objects, height, width/8], got {got}")
    return track


def _first_appearance(masks: torch.Tensor) -> tuple[list[int], list[float], list[float]]:
    """Per object of bool ``[T, N, H, W]``: the first frame it covers any pixel in (T if never),
    and its centroid x and area (as fractions of the frame) in that frame."""
    m = masks.float()
    frames, height, width = m.shape[0], m.shape[-2], m.shape[-1]
    area = m.sum(dim=(-1, -2))  # [T, N]
    xs = torch.arange(width, dtype=m.dtype).view(1, 1, 1, width)
    centre = (m * xs).sum(dim=(-1, -2)) / area.clamp(min=1)
    first = torch.where(area > 0, torch.arange(frames).unsqueeze(1), frames).amin(dim=0)  # [N]
    pick = first.clamp(max=frames - 1).unsqueeze(0)
    return (first.tolist(), (centre.gather(0, pick).squeeze(0) / width).tolist(),
            (area.gather(0, pick).squeeze(0) / (height * width)).tolist())


def select_objects(track: dict[str, Any], indices: list[int]) -> dict[str, Any]:
    """``track`` holding only the objects at ``indices``, in that order (scores alike)."""
    out = dict(track)
    packed = track["packed_masks"]
    if packed is None or not indices:
        out["packed_masks"] = None
        if "scores" in out:
            out["scores"] = []
        return out
    out["packed_masks"] = packed[:, indices].contiguous()
    scores = track.get("scores")
    if scores is not None:
        out["scores"] = [scores[i] for i in indices if i < len(scores)]
    return out


def order_objects(track: dict[str, Any], sort_by: str) -> dict[str, Any]:
    """The objects reordered: earlier first appearance first, then leftmost centroid
    (``left_to_right``) or biggest area (``area``) at that appearance; ``none`` keeps SAM3's order."""
    if sort_by == "none" or track["packed_masks"] is None or track["packed_masks"].shape[1] == 0:
        return track
    if sort_by not in ("left_to_right", "area"):
        raise ValidationError(f"`sort_by` must be one of ['none', 'left_to_right', 'area'], got {sort_by!r}")
    first, centre, area = _first_appearance(unpack_masks(track["packed_masks"]))
    if sort_by == "left_to_right":
        order = sorted(range(len(first)), key=lambda i: (first[i], centre[i]))
    else:
        order = sorted(range(len(first)), key=lambda i: (first[i], -area[i]))
    return select_objects(track, order)


def parse_object_indices(text: str, count: int) -> list[int] | None:
    """The indices in a comma-separated list (entries that are not plain digits, or not below
    ``count``, are skipped); None when the text is blank (all objects)."""
    if not text.strip():
        return None
    picked = [int(p.strip()) for p in text.split(",") if p.strip().isdigit()]
    return [i for i in picked if 0 <= i < count]


def render_identity_masks(track: dict[str, Any], background: tuple[float, float, float]) -> torch.Tensor:
    """IMAGE ``[T, H, W, 3]`` at ``orig_size``: each pixel the palette colour of the first object
    covering it (object ``i`` gets :data:`SCAIL_PALETTE` ``[i % 6]``), else ``background``.
    Masks are scaled to ``orig_size`` by nearest neighbour; no objects give a plain background
    of ``n_frames`` frames (1 without it)."""
    height, width = (int(v) for v in track["orig_size"])
    packed = track["packed_masks"]
    bg = torch.tensor(background, dtype=torch.float32)
    if packed is None or packed.shape[1] == 0:
        frames = int(track.get("n_frames", 1)) if packed is None else int(packed.shape[0])
        return bg.expand(frames, height, width, 3).clone()
    masks = unpack_masks(packed).float()
    frames, objects = masks.shape[:2]
    masks = F.interpolate(masks.view(frames * objects, 1, *masks.shape[-2:]), size=(height, width), mode="nearest")
    masks = masks.view(frames, objects, height, width) > 0.5
    colors = torch.tensor([SCAIL_PALETTE[i % len(SCAIL_PALETTE)] for i in range(objects)], dtype=torch.float32)
    owner = masks.to(torch.uint8).argmax(dim=1)  # the first object covering each pixel
    return torch.where(masks.any(dim=1).unsqueeze(-1), colors[owner], bg.view(1, 1, 1, 3))


def render_mask_identity(mask: torch.Tensor, background: tuple[float, float, float]) -> torch.Tensor:
    """A plain MASK ``[B, H, W]`` (or ``[H, W]``) as one identity: the first palette colour where
    it is above 0.5, ``background`` elsewhere (a batch is several views of that one subject)."""
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if mask.ndim != 3:
        raise ValidationError(f"`ref_track_data` as a MASK must be [batch, height, width], got {tuple(mask.shape)}")
    color = torch.tensor(SCAIL_PALETTE[0], dtype=torch.float32).view(1, 1, 1, 3)
    bg = torch.tensor(background, dtype=torch.float32).view(1, 1, 1, 3)
    return torch.where((mask.float() > 0.5).unsqueeze(-1), color, bg)
