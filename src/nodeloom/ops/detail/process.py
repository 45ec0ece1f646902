"""Segment processing in ADetailer's order, plus the single mask operations it is made of.

Order (:func:`process_segs`): confidence threshold → drop_size → area-ratio min/max → top-k
(by area or confidence) → sort → x/y offset (y points up) → dilate/erode with a square
kernel (segments left empty are dropped) → merge / merge-and-invert. Each step is also a
public function so nodes and users can run it alone. Imports numpy and OpenCV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nodeloom.errors import ValidationError
from nodeloom.ops.detail.segs import (
    Segment,
    Segs,
    box_area,
    segment_from_full_mask,
    segment_full_mask,
)

__all__ = [
    "MERGE_MODES",
    "SORT_ORDERS",
    "TOP_K_BY",
    "SegmentProcessing",
    "dilate_erode",
    "drop_small",
    "filter_area_ratio",
    "filter_confidence",
    "merge_invert",
    "offset_mask",
    "process_segs",
    "sort_segs",
    "top_k",
    "transform_masks",
]

SORT_ORDERS = ("none", "left_to_right", "center_to_edge", "area")
TOP_K_BY = ("area", "confidence")
MERGE_MODES = ("none", "merge", "merge_invert")


def _with(segs: Segs, segments: list[Segment]) -> Segs:
    return Segs(segs.shape, segments)


def filter_confidence(segs: Segs, threshold: float) -> Segs:
    """Keep segments whose confidence is ≥ ``threshold``."""
    return _with(segs, [s for s in segs.segments if s.confidence >= threshold])


def drop_small(segs: Segs, drop_size: int) -> Segs:
    """Drop segments whose bbox width or height is below ``drop_size`` pixels."""
    keep = [s for s in segs.segments if min(s.bbox[2] - s.bbox[0], s.bbox[3] - s.bbox[1]) >= drop_size]
    return _with(segs, keep)


def filter_area_ratio(segs: Segs, min_ratio: float = 0.0, max_ratio: float = 1.0) -> Segs:
    """Keep segments whose bbox area / image area lies in ``[min_ratio, max_ratio]``.

    Raises:
        ValidationError: ratios outside 0..1 or min > max.
    """
    if not (0.0 <= min_ratio <= max_ratio <= 1.0):
        raise ValidationError(
            f"`min_ratio` and `max_ratio` must satisfy 0 ≤ min ≤ max ≤ 1, got {min_ratio} and {max_ratio}"
        )
    total = float(segs.shape[0] * segs.shape[1]) or 1.0
    return _with(segs, [s for s in segs.segments if min_ratio <= box_area(s.bbox) / total <= max_ratio])


def top_k(segs: Segs, k: int, by: str = "area") -> Segs:
    """Keep the ``k`` largest (or most confident) segments, best first; ``k`` = 0 keeps all.

    Raises:
        ValidationError: negative ``k`` or unknown ``by``.
    """
    if k < 0:
        raise ValidationError(f"`k` must be ≥ 0, got {k}")
    if by not in TOP_K_BY:
        raise ValidationError(f"`by` must be one of {list(TOP_K_BY)}, got {by!r}")
    if k == 0:
        return segs
    key = (lambda s: box_area(s.bbox)) if by == "area" else (lambda s: s.confidence)
    ranked = sorted(segs.segments, key=key, reverse=True)  # stable: ties keep detector order
    return _with(segs, ranked[:k])


def sort_segs(segs: Segs, order: str = "none") -> Segs:
    """Order segments: ``none``, ``left_to_right`` (bbox x1), ``center_to_edge`` (distance of the
    bbox centre to the image centre) or ``area`` (largest first).

    Raises:
        ValidationError: unknown ``order``.
    """
    if order not in SORT_ORDERS:
        raise ValidationError(f"`order` must be one of {list(SORT_ORDERS)}, got {order!r}")
    if order == "none":
        return segs
    h, w = segs.shape
    keys = {
        "left_to_right": lambda s: s.bbox[0],
        "center_to_edge": lambda s: math.dist((w / 2, h / 2), ((s.bbox[0] + s.bbox[2]) / 2, (s.bbox[1] + s.bbox[3]) / 2)),
        "area": lambda s: -box_area(s.bbox),
    }
    return _with(segs, sorted(segs.segments, key=keys[order]))


def offset_mask(mask: np.ndarray, x: int = 0, y: int = 0) -> np.ndarray:
    """Shift a 2-D mask ``x`` px right and ``y`` px **up**; what leaves the frame is lost.

    (ADetailer wraps around; a face mask re-entering on the opposite edge is never wanted.)
    """
    out = np.zeros_like(mask)
    h, w = mask.shape
    dy = -y
    src_y = slice(max(0, -dy), min(h, h - dy))
    dst_y = slice(max(0, dy), min(h, h + dy))
    src_x = slice(max(0, -x), min(w, w - x))
    dst_x = slice(max(0, x), min(w, w + x))
    if src_y.start < src_y.stop and src_x.start < src_x.stop:
        out[dst_y, dst_x] = mask[src_y, src_x]
    return out


def dilate_erode(mask: np.ndarray, value: int) -> np.ndarray:
    """Dilate (``value`` > 0) or erode (``value`` < 0) with a ``|value|`` x ``|value|`` square kernel."""
    import cv2

    if value == 0:
        return mask.copy()
    kernel = np.ones((abs(value), abs(value)), np.uint8)
    src = mask.astype(np.float32)
    return cv2.dilate(src, kernel) if value > 0 else cv2.erode(src, kernel, borderType=cv2.BORDER_REFLECT)


def transform_masks(
    segs: Segs,
    x_offset: int = 0,
    y_offset: int = 0,
    dilation: int = 0,
    crop_factor: float = 3.0,
    padding: int | None = None,
) -> Segs:
    """Offset then dilate/erode every segment's mask; drop segments left empty.

    Crop regions and bboxes are recomputed from the moved masks.
    """
    if x_offset == 0 and y_offset == 0 and dilation == 0:
        return segs
    out: list[Segment] = []
    for seg in segs.segments:
        full = segment_full_mask(seg, segs.shape)
        full = dilate_erode(offset_mask(full, x_offset, y_offset), dilation)
        new = segment_from_full_mask(seg, full, crop_factor, padding)
        if new is not None:
            out.append(new)
    return _with(segs, out)


def merge_invert(segs: Segs, mode: str = "none") -> Segs:
    """``merge``: one segment, the union of all; ``merge_invert``: everything but that union.

    The merged segment covers the whole frame as its crop region; its confidence is the
    highest of the parts and its label joins theirs.

    Raises:
        ValidationError: unknown ``mode``.
    """
    if mode not in MERGE_MODES:
        raise ValidationError(f"`mode` must be one of {list(MERGE_MODES)}, got {mode!r}")
    if mode == "none" or not segs.segments:
        return segs
    h, w = segs.shape
    union = np.zeros((h, w), np.float32)
    for seg in segs.segments:
        union = np.maximum(union, segment_full_mask(seg, (h, w)))
    if mode == "merge_invert":
        union = 1.0 - union
    ys, xs = np.nonzero(union > 0)
    if len(xs) == 0:
        return _with(segs, [])
    bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    labels = sorted({s.label for s in segs.segments})
    conf = max(s.confidence for s in segs.segments)
    return _with(segs, [Segment(None, union, conf, (0, 0, w, h), bbox, "+".join(labels))])


@dataclass(frozen=True)
class SegmentProcessing:
    """Settings of :func:`process_segs` (ADetailer's defaults, dilation 4)."""

    confidence: float = 0.3
    drop_size: int = 1
    min_ratio: float = 0.0
    max_ratio: float = 1.0
    top_k: int = 0
    top_k_by: str = "area"
    sort_by: str = "none"
    x_offset: int = 0
    y_offset: int = 0
    dilation: int = 4
    merge: str = "none"
    crop_factor: float = 3.0
    padding: int | None = None


def process_segs(segs: Segs, cfg: SegmentProcessing = SegmentProcessing()) -> Segs:
    """Run every processing step in ADetailer's order (see the module docstring)."""
    segs = filter_confidence(segs, cfg.confidence)
    segs = drop_small(segs, cfg.drop_size)
    segs = filter_area_ratio(segs, cfg.min_ratio, cfg.max_ratio)
    segs = top_k(segs, cfg.top_k, cfg.top_k_by)
    segs = sort_segs(segs, cfg.sort_by)
    segs = transform_masks(segs, cfg.x_offset, cfg.y_offset, cfg.dilation, cfg.crop_factor, cfg.padding)
    return merge_invert(segs, cfg.merge)
