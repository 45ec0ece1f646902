"""The SEGS value: a source size plus a list of segments, and its mask conversions.

Shape-compatible with Impact Pack's SEGS (``((h, w), [SEG, ...])`` where SEG has the fields
``cropped_image, cropped_mask, confidence, crop_region, bbox, label, control_net_wrapper``), so
values can cross between packs. Boxes are ``(x1, y1, x2, y2)`` in pixels, end-exclusive.
Imports numpy and (lazily) OpenCV only.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from nodeloom.errors import ValidationError

__all__ = [
    "Box",
    "Segment",
    "Segs",
    "box_area",
    "box_iou",
    "clamp_box",
    "empty_segs",
    "make_crop_region",
    "mask_to_segs",
    "segment_full_mask",
    "segs_to_mask",
    "segs_to_masks",
    "segment_from_full_mask",
]

Box = tuple[int, int, int, int]


class Segment(NamedTuple):
    """One detected region.

    Attributes:
        cropped_image: float32 ``[h, w, 3]`` pixels of the crop region, or ``None``.
        cropped_mask: float32 ``[h, w]`` 0..1 mask in crop-region coordinates.
        confidence: detector confidence 0..1.
        crop_region: ``(x1, y1, x2, y2)`` area of the source the mask covers.
        bbox: ``(x1, y1, x2, y2)`` detected box in source coordinates.
        label: class name (``"face"``, ``"hand"``, ...).
        control_net_wrapper: slot kept for Impact Pack compatibility.
    """

    cropped_image: np.ndarray | None
    cropped_mask: np.ndarray
    confidence: float
    crop_region: Box
    bbox: Box
    label: str
    control_net_wrapper: Any = None


class Segs(NamedTuple):
    """A source size ``(height, width)`` and its segments."""

    shape: tuple[int, int]
    segments: list[Segment]


def empty_segs(height: int, width: int) -> Segs:
    """SEGS with no segment for a ``height`` x ``width`` source."""
    return Segs((int(height), int(width)), [])


def box_area(box: Box) -> int:
    """Area of an ``(x1, y1, x2, y2)`` box (0 when degenerate)."""
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def box_iou(a: Box | np.ndarray, b: Box | np.ndarray) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def clamp_box(box: Box | np.ndarray, height: int, width: int) -> Box:
    """Round a box to ints and clamp it inside a ``height`` x ``width`` image."""
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    x1, x2 = max(0, min(x1, width)), max(0, min(x2, width))
    y1, y2 = max(0, min(y1, height)), max(0, min(y2, height))
    return (x1, y1, max(x1, x2), max(y1, y2))


def _fit_span(start: float, length: float, limit: int) -> tuple[int, int]:
    """Place a span of ``length`` at ``start``, shifted (not shrunk) to stay in ``[0, limit)``."""
    length = int(round(min(max(length, 1.0), limit)))
    lo = int(round(start))
    lo = max(0, min(lo, limit - length))
    return lo, lo + length


def make_crop_region(
    height: int,
    width: int,
    bbox: Box,
    crop_factor: float = 3.0,
    padding: int | None = None,
    aspect: float | None = None,
) -> Box:
    """The source area to crop around ``bbox``.

    Args:
        height, width: source size.
        bbox: the detected box.
        crop_factor: crop = bbox size x factor (used when ``padding`` is None).
        padding: pixels added on every side instead of a factor.
        aspect: wanted width/height of the crop; the short side grows to match.

    Returns:
        ``(x1, y1, x2, y2)`` centred on the bbox, shifted to stay inside the image.

    Raises:
        ValidationError: ``crop_factor`` < 1 or ``padding`` < 0.
    """
    if padding is None and crop_factor < 1.0:
        raise ValidationError(f"`crop_factor` must be ≥ 1, got {crop_factor}")
    if padding is not None and padding < 0:
        raise ValidationError(f"`padding` must be ≥ 0, got {padding}")
    bw, bh = bbox[2] - bbox[0], bbox[3] - bbox[1]
    if padding is None:
        cw, ch = bw * crop_factor, bh * crop_factor
    else:
        cw, ch = bw + 2 * padding, bh + 2 * padding
    if aspect is not None and aspect > 0:
        if cw / max(ch, 1e-6) < aspect:
            cw = ch * aspect
        else:
            ch = cw / aspect
    cx, cy = bbox[0] + bw / 2.0, bbox[1] + bh / 2.0
    x1, x2 = _fit_span(cx - cw / 2.0, cw, width)
    y1, y2 = _fit_span(cy - ch / 2.0, ch, height)
    return (x1, y1, x2, y2)


def segment_full_mask(seg: Segment, shape: tuple[int, int]) -> np.ndarray:
    """The segment's mask placed in a full ``(h, w)`` float32 frame."""
    full = np.zeros(shape, np.float32)
    x1, y1, x2, y2 = seg.crop_region
    m = seg.cropped_mask
    full[y1 : y1 + m.shape[0], x1 : x1 + m.shape[1]] = np.maximum(
        full[y1 : y1 + m.shape[0], x1 : x1 + m.shape[1]], m[: y2 - y1, : x2 - x1]
    )
    return full


def segment_from_full_mask(
    seg: Segment, full: np.ndarray, crop_factor: float = 3.0, padding: int | None = None
) -> Segment | None:
    """Rebuild a segment from a full-frame mask (after offset/dilate...), keeping label/confidence.

    Returns:
        The new segment, or ``None`` when the mask is empty.
    """
    ys, xs = np.nonzero(full > 0)
    if len(xs) == 0:
        return None
    h, w = full.shape
    bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    region = make_crop_region(h, w, bbox, crop_factor, padding)
    x1, y1, x2, y2 = region
    return Segment(None, full[y1:y2, x1:x2].astype(np.float32), seg.confidence, region, bbox, seg.label)


def segs_to_masks(segs: Segs) -> np.ndarray:
    """One full-frame mask per segment: float32 ``[N, h, w]`` (``N`` may be 0)."""
    h, w = segs.shape
    if not segs.segments:
        return np.zeros((0, h, w), np.float32)
    return np.stack([segment_full_mask(s, (h, w)) for s in segs.segments])


def segs_to_mask(segs: Segs) -> np.ndarray:
    """All segments merged (max) into one float32 ``[h, w]`` mask."""
    masks = segs_to_masks(segs)
    return masks.max(axis=0) if len(masks) else np.zeros(segs.shape, np.float32)


def mask_to_segs(
    mask: np.ndarray,
    *,
    combined: bool = False,
    crop_factor: float = 3.0,
    padding: int | None = None,
    drop_size: int = 1,
    label: str = "mask",
    threshold: float = 0.5,
) -> Segs:
    """Turn a ``[h, w]`` mask into SEGS: one segment per connected component, or one for all.

    Args:
        mask: float mask 0..1.
        combined: one segment covering every masked pixel instead of one per component.
        crop_factor / padding: crop region around each component (see ``make_crop_region``).
        drop_size: components whose box width or height is below this are dropped.
        label: label given to each segment.
        threshold: pixels above it count as masked.

    Raises:
        ValidationError: ``mask`` is not 2-D.
    """
    import cv2

    if mask.ndim != 2:
        raise ValidationError(f"`mask` must be [H, W], got shape {tuple(mask.shape)}")
    h, w = mask.shape
    binary = (mask > threshold).astype(np.uint8)
    if combined:
        labels, count = binary, (2 if binary.any() else 1)
    else:
        count, labels = cv2.connectedComponents(binary, connectivity=8)
    segments: list[Segment] = []
    for idx in range(1, count):
        comp = labels == idx
        ys, xs = np.nonzero(comp)
        bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        if min(bbox[2] - bbox[0], bbox[3] - bbox[1]) < drop_size:
            continue
        region = make_crop_region(h, w, bbox, crop_factor, padding)
        x1, y1, x2, y2 = region
        crop = np.where(comp, mask, 0.0)[y1:y2, x1:x2].astype(np.float32)
        segments.append(Segment(None, crop, 1.0, region, bbox, label))
    return Segs((h, w), segments)
