"""Regional conditioning in the sampler: where each CONDITIONING entry acts and how much it weighs.

An entry's options may carry ComfyUI's ``area`` (sizes then offsets per latent dimension, in
latent units, or ``("percentage", ...)`` fractions), ``mask`` (``[B, H, W]``, scaled to the latent
here), ``mask_strength``, ``set_area_to_bounds`` (the area becomes the mask's bounding box) and
``strength``. :func:`resolve` turns them, for one latent shape, into a :class:`Region`: the crop
the model sees for that entry and the per-pixel weight of its prediction. :func:`combine` then
mixes one side's predictions as a weighted sum over the pixels each covers, divided by the summed
weights (pixels no entry covers come out zero). :func:`pair_areas` gives each area entry of one
side a partner on the other side with the same area, as ComfyUI's sampler does, so CFG compares
like with like inside the area.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from nodeloom.errors import ValidationError

__all__ = ["Region", "combine", "has_area", "is_regional", "pair_areas", "resolve", "resolve_area", "with_mask"]

_FEATHER = 8  # latent pixels over which an area without a mask fades in at edges inside the latent
_NODES = "ConditioningSetArea / ConditioningSetAreaPercentage / ConditioningSetMask"
#: options a partner entry takes from the area entry it pairs with (the rest, the prompt's own
#: values such as ``pooled_output``, come from the other side's entry)
_PLACEMENT = ("area", "mask", "mask_strength", "set_area_to_bounds", "strength", "start_percent", "end_percent")


@dataclass(frozen=True)
class Region:
    """Where one entry acts on a latent: ``area`` (sizes then offsets per latent dimension, or
    None for the whole latent) and ``mult``, the weight of its prediction over that crop
    (``[B, 1, *crop]``, broadcast over channels)."""

    area: tuple[int, ...] | None
    mult: torch.Tensor

    def slices(self, ndim: int) -> tuple[slice, ...]:
        """Index of the crop in a ``[B, C, *dims]`` tensor of ``ndim`` dimensions."""
        if self.area is None:
            return (slice(None),) * ndim
        n = len(self.area) // 2
        return (slice(None), slice(None)) + tuple(slice(self.area[n + i], self.area[n + i] + self.area[i]) for i in range(n))

    def crop(self, t: torch.Tensor | None) -> torch.Tensor | None:
        return t if t is None or self.area is None else t[self.slices(t.ndim)]


def is_regional(extra: dict[str, Any]) -> bool:
    """Whether an entry's options confine or weight it per pixel (an area or a mask)."""
    return extra.get("area") is not None or extra.get("mask") is not None


def has_area(extra: dict[str, Any]) -> bool:
    """Whether an entry asks the model to see a crop of the latent."""
    return extra.get("area") is not None or (extra.get("mask") is not None and bool(extra.get("set_area_to_bounds")))


def with_mask(conditioning: list[Any], mask: Any, strength: float, bounds: bool = False,
              node: str = "ConditioningSetMask") -> list[Any]:
    """Each entry of ``conditioning`` (a copy) confined to ``mask`` — ComfyUI's ``mask`` (``[B, H, W]``),
    ``mask_strength`` and ``set_area_to_bounds`` keys, as ConditioningSetMask writes them.

    Raises:
        ValidationError: ``mask`` is not a 2-D or 3-D tensor (the message names ``node``).
    """
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (2, 3):
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValidationError(f"{node}: `mask` must be a MASK shaped [H, W] or [B, H, W], got {shape}")
    mask = mask[None] if mask.ndim == 2 else mask
    values = {"mask": mask, "set_area_to_bounds": bool(bounds), "mask_strength": float(strength)}
    return [[item[0], {**(item[1] if len(item) > 1 else {}), **values}] for item in conditioning]


def _scaled_mask(mask: torch.Tensor, dims: tuple[int, ...], device: Any) -> torch.Tensor:
    """The entry's mask as ``[B, *dims]`` float32: bilinear to the latent's height and width (an
    image mask over a video latent applies to every frame)."""
    if not isinstance(mask, torch.Tensor):
        raise ValidationError(f"the conditioning's `mask` must be a MASK tensor, got {type(mask).__name__}")
    m = mask.to(device=device, dtype=torch.float32)
    if m.ndim == 2:
        m = m[None]
    if m.ndim == 3:
        if tuple(m.shape[1:]) != tuple(dims[-2:]):
            m = F.interpolate(m[:, None], size=tuple(dims[-2:]), mode="bilinear", align_corners=False)[:, 0]
        if len(dims) == 3:
            m = m[:, None].expand(-1, dims[0], -1, -1)
        return m
    if m.ndim == 4 and len(dims) == 3:
        if tuple(m.shape[1:]) != tuple(dims):
            m = F.interpolate(m[:, None], size=tuple(dims), mode="trilinear", align_corners=False)[:, 0]
        return m
    raise ValidationError(f"the conditioning's `mask` is shaped {tuple(mask.shape)}; expected [B, H, W] "
                          f"for a latent of {len(dims)} spatial dimensions")


def _bounds(mask: torch.Tensor) -> tuple[int, int, int, int]:
    """ComfyUI's ``mask bounds`` area: the box holding every non-zero value of the (batch-maxed)
    mask, at least 8 latent pixels a side; an empty mask gives an 8×8 box at the corner."""
    plane = mask.abs().amax(dim=0)
    while plane.ndim > 2:  # a video mask: the box over all frames
        plane = plane.amax(dim=0)
    ys, xs = torch.nonzero(plane, as_tuple=True)
    if ys.numel() == 0:
        return (8, 8, 0, 0)
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
    return (max(8, y1 - y0 + 1), max(8, x1 - x0 + 1), y0, x0)


def resolve_area(extra: dict[str, Any], dims: tuple[int, ...], mask: torch.Tensor | None = None) -> tuple[int, ...] | None:
    """An entry's area over a latent of spatial ``dims``: sizes then offsets, one per dimension,
    clipped to the latent (percentages rounded as ComfyUI does: Python's ``round``, sizes at least 1).

    Raises:
        ValidationError: a malformed area, or one that starts outside the latent.
    """
    area = extra.get("area")
    if mask is not None and extra.get("set_area_to_bounds"):
        area = _bounds(mask)
    if area is None:
        return None
    area = list(area)
    if area and area[0] == "percentage":
        frac = [float(v) for v in area[1:]]
        if len(frac) % 2 or not frac:
            raise ValidationError(f"the conditioning's percentage `area` {tuple(area)} must hold sizes then offsets")
        n = len(frac) // 2
        sizes, offsets = frac[:n], frac[n:]
        # fractions name the trailing dimensions (an image area over a video latent covers every frame)
        sizes, offsets = ([1.0] * (len(dims) - n) + sizes)[-len(dims):], ([0.0] * (len(dims) - n) + offsets)[-len(dims):]
        area = [max(1, round(s * d)) for s, d in zip(sizes, dims)] + [round(o * d) for o, d in zip(offsets, dims)]
    if len(area) % 2 or not area or not all(isinstance(v, (int, float)) for v in area):
        raise ValidationError(f"the conditioning's `area` {tuple(area)} must hold sizes then offsets in latent units")
    n = len(area) // 2
    sizes, offsets = [int(v) for v in area[:n]], [int(v) for v in area[n:]]
    if n < len(dims):  # leading dimensions (a video's frames) in full
        sizes, offsets = [2 ** 31] * (len(dims) - n) + sizes, [0] * (len(dims) - n) + offsets
    sizes, offsets = sizes[-len(dims):], offsets[-len(dims):]
    for i, d in enumerate(dims):
        if offsets[i] < 0 or offsets[i] >= d:
            raise ValidationError(f"{_NODES}: the area starts at {offsets[i]} (latent units, 1/8 of a pixel) "
                                  f"along a latent dimension of {d}; it must start inside the latent {tuple(dims)}")
        sizes[i] = min(d - offsets[i], sizes[i])
        if sizes[i] <= 0:
            raise ValidationError(f"{_NODES}: the area has size {sizes[i]} along a latent dimension; it must be at least 1")
    return tuple(sizes + offsets)


def resolve(extra: dict[str, Any], shape: tuple[int, ...], device: Any) -> Region | None:
    """The :class:`Region` of an entry over a latent shaped ``shape`` (``[B, C, *dims]``), or None
    when the entry covers the whole latent with its plain strength."""
    if not is_regional(extra):
        return None
    batch, dims = shape[0], tuple(shape[2:])
    mask = _scaled_mask(extra["mask"], dims, device) if extra.get("mask") is not None else None
    area = resolve_area(extra, dims, mask)
    crop = dims if area is None else area[: len(dims)]
    strength = float(extra.get("strength", 1.0))
    if mask is not None:
        m = mask[:batch]
        if area is not None:
            m = m[(slice(None),) + tuple(slice(area[len(dims) + i], area[len(dims) + i] + area[i]) for i in range(len(dims)))]
        m = m * float(extra.get("mask_strength", 1.0))
        m = m.repeat(math.ceil(batch / m.shape[0]), *[1] * len(dims))[:batch]
        mult = m[:, None] * strength
    else:
        mult = torch.full((batch, 1, *crop), strength, dtype=torch.float32, device=device)
        for i in range(len(dims)):  # fade in from edges that lie inside the latent
            rr = min(_FEATHER, crop[i] // 4)
            size, offset = area[i], area[len(dims) + i]
            for t in range(rr):
                ramp = (t + 1) / rr
                if offset != 0:
                    mult.narrow(i + 2, t, 1).mul_(ramp)
                if offset + size < dims[i]:
                    mult.narrow(i + 2, size - 1 - t, 1).mul_(ramp)
    return Region(area, mult)


def combine(dens: list[torch.Tensor], regions: list[Region | None], weights: list[float],
            like: torch.Tensor) -> torch.Tensor:
    """One side's estimate: each prediction (over its region's crop) times its weight, summed per
    pixel and divided by the summed weights; pixels no entry covers are zero."""
    out = torch.zeros_like(like)
    count = torch.full_like(like, 1e-37)
    for den, region, w in zip(dens, regions, weights):
        if region is None:
            out += den * w
            count += w
        else:
            index = region.slices(like.ndim)
            out[index] += den * region.mult
            count[index] += region.mult
    return out / count


def _inside(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Whether area ``a`` lies within area ``b`` (both sizes then offsets)."""
    n = len(a) // 2
    return all(a[n + i] >= b[n + i] and a[i] + a[n + i] <= b[i] + b[n + i] for i in range(n))


def pair_areas(sides: list[list[Any]], areas: list[list[tuple[int, ...] | None]],
               copy: Any) -> list[list[Any]]:
    """Each area entry of one side gets a partner appended to every other side: the other side's
    entry whose area holds it most tightly (else its first whole-latent entry), with the area
    entry's placement (area, mask, strengths, timestep range). ``copy(partner, options)`` makes
    the new entry from the partner and its new options (the partner's own, placement replaced); ``areas`` are the entries' resolved areas (None: the whole latent). An entry
    whose chosen partner already has the very same area needs none."""
    out = [list(s) for s in sides]
    out_areas = [list(a) for a in areas]
    for k, side in enumerate(sides):
        for entry, area in zip(side, areas[k]):
            if area is None:
                continue
            for kk in range(len(sides)):
                if kk == k:
                    continue
                best, best_area = None, None
                for other, other_area in zip(out[kk], out_areas[kk]):
                    if other_area is not None and _inside(area, other_area):
                        if best is None or best_area is None or math.prod(best_area[: len(best_area) // 2]) > \
                                math.prod(other_area[: len(other_area) // 2]):
                            best, best_area = other, other_area
                    elif other_area is None and best is None:
                        best, best_area = other, None
                if best is None or best_area == area:
                    continue
                placed = {key: v for key, v in best.extra.items() if key not in _PLACEMENT}
                placed.update({key: entry.extra[key] for key in _PLACEMENT if key in entry.extra})
                out[kk].append(copy(best, placed))
                out_areas[kk].append(area)
    return out
