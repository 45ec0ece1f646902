"""Crop/upscale geometry of the detail pass: which size a crop is re-drawn at, and resizing.

Imports numpy and OpenCV only.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from nodeloom.errors import ValidationError

__all__ = ["UpscalePlan", "plan_upscale", "resize_image", "resize_mask"]


class UpscalePlan(NamedTuple):
    """Working size of one crop (``None`` size means skip) and why."""

    width: int
    height: int
    scale: float
    skip: bool
    reason: str


def _round8(v: float) -> int:
    return max(8, int(round(v / 8.0)) * 8)


def plan_upscale(
    crop_size: tuple[int, int],
    bbox_size: tuple[int, int],
    *,
    guide_size: float = 512,
    guide_size_for_bbox: bool = True,
    max_size: float = 1024,
    inpaint_size: tuple[int, int] | None = None,
    force_inpaint: bool = True,
) -> UpscalePlan:
    """Decide the size a ``crop_size`` (w, h) crop is re-drawn at.

    The short side of the bbox (or of the crop) is brought to ``guide_size``; the result is
    clamped so neither side exceeds ``max_size``; an explicit ``inpaint_size`` (w, h) wins
    over both. Sides are rounded to multiples of 8 (latent grid).

    Args:
        crop_size: crop region ``(w, h)``.
        bbox_size: detected box ``(w, h)``.
        guide_size: target short side.
        guide_size_for_bbox: measure the bbox (True) or the whole crop (False).
        max_size: upper bound of either side.
        inpaint_size: explicit ``(w, h)``; 0 or None to use guide_size.
        force_inpaint: when False, skip crops already at least ``guide_size`` (no upscale).

    Raises:
        ValidationError: non-positive sizes.
    """
    cw, ch = crop_size
    if cw <= 0 or ch <= 0:
        raise ValidationError(f"crop region must be non-empty, got {cw}x{ch}")
    if guide_size <= 0 or max_size <= 0:
        raise ValidationError(f"`guide_size` and `max_size` must be > 0, got {guide_size} and {max_size}")
    bw, bh = max(bbox_size[0], 1), max(bbox_size[1], 1)
    if inpaint_size and inpaint_size[0] > 0 and inpaint_size[1] > 0:
        iw, ih = inpaint_size
        return UpscalePlan(_round8(iw), _round8(ih), iw / cw, False, f"explicit inpaint size {iw}x{ih}")
    if not force_inpaint and bw >= guide_size and bh >= guide_size:
        return UpscalePlan(cw, ch, 1.0, True, f"bbox {bw}x{bh} already ≥ guide_size {guide_size:g}")
    scale = guide_size / (min(bw, bh) if guide_size_for_bbox else min(cw, ch))
    if max(cw, ch) * scale > max_size:
        scale = max_size / max(cw, ch)
    if scale <= 1.0 and not force_inpaint:
        return UpscalePlan(cw, ch, scale, True, f"upscale factor {scale:.2f} ≤ 1")
    if scale <= 1.0:
        return UpscalePlan(_round8(cw), _round8(ch), 1.0, False, "no upscale (force_inpaint)")
    return UpscalePlan(_round8(cw * scale), _round8(ch * scale), scale, False, f"upscale x{scale:.2f}")


def resize_image(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize float ``[h, w, c]`` (area when shrinking, Lanczos when growing), clipped to 0..1."""
    import cv2

    if img.shape[1] == width and img.shape[0] == height:
        return img.copy()
    grow = width * height > img.shape[0] * img.shape[1]
    out = cv2.resize(img.astype(np.float32), (width, height), interpolation=cv2.INTER_LANCZOS4 if grow else cv2.INTER_AREA)
    if out.ndim == 2:
        out = out[..., None]
    return np.clip(out, 0.0, 1.0)


def resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a float ``[h, w]`` mask bilinearly, clipped to 0..1."""
    import cv2

    if mask.shape[1] == width and mask.shape[0] == height:
        return mask.copy()
    return np.clip(cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
