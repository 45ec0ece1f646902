"""The detail pass: for each segment in turn, crop → upscale → inpaint → scale back → paste.

Segments run sequentially and each crops from the image as already improved by the ones
before it. The inpainting itself is a callable (:data:`Inpainter`), so the same pass drives
a diffusion model (see the detail node pack) or the classical :func:`classical_inpainter`.
Imports numpy and OpenCV; no torch, no nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from nodeloom.errors import ValidationError
from nodeloom.ops.detail.blend import feather_mask, match_seam_colors, paste_crop
from nodeloom.ops.detail.crop import plan_upscale, resize_image, resize_mask
from nodeloom.ops.detail.prompts import box_seed, route_prompt
from nodeloom.ops.detail.segs import Segment, Segs, make_crop_region, segment_full_mask

__all__ = ["DetailResult", "DetailSettings", "InpaintJob", "Inpainter", "classical_inpainter", "detail_pass"]


class InpaintJob(NamedTuple):
    """What an inpainter is told about the segment it re-draws."""

    index: int
    segment: Segment
    prompt: str
    negative: str
    seed: int


#: ``(crop [h, w, 3] float, mask [h, w] float, job) -> new crop [h, w, 3]`` at the working size.
Inpainter = Callable[[np.ndarray, np.ndarray, InpaintJob], np.ndarray]


@dataclass(frozen=True)
class DetailSettings:
    """Settings of :func:`detail_pass` (defaults follow ADetailer / FaceDetailer)."""

    guide_size: float = 512
    guide_size_for_bbox: bool = True
    max_size: float = 1024
    inpaint_width: int = 0
    inpaint_height: int = 0
    force_inpaint: bool = True
    padding: int | None = None
    feather: float = 4.0
    seam_match: float = 1.0
    seed: int = 0
    seed_from_box: bool = True
    prompt: str = ""
    negative: str = ""
    main_prompt: str = ""
    main_negative: str = ""


@dataclass
class DetailResult:
    """The improved image plus what the pass did (debug outputs and notes)."""

    image: np.ndarray
    segs: Segs
    crops_before: list[np.ndarray] = field(default_factory=list)
    crops_after: list[np.ndarray] = field(default_factory=list)
    alphas: list[np.ndarray] = field(default_factory=list)
    combined_mask: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def _region_for(seg: Segment, shape: tuple[int, int], s: DetailSettings) -> tuple[Segment, tuple[int, int, int, int]]:
    """The crop region to use (re-made for padding / explicit aspect) and the segment re-cut to it."""
    aspect = s.inpaint_width / s.inpaint_height if s.inpaint_width > 0 and s.inpaint_height > 0 else None
    if s.padding is None and aspect is None:
        return seg, seg.crop_region
    h, w = shape
    if s.padding is None:
        base = seg.crop_region
        region = make_crop_region(h, w, base, crop_factor=1.0, aspect=aspect)
    else:
        region = make_crop_region(h, w, seg.bbox, padding=s.padding, aspect=aspect)
    full = segment_full_mask(seg, shape)
    x1, y1, x2, y2 = region
    return seg._replace(cropped_mask=full[y1:y2, x1:x2].copy(), crop_region=region), region


def _seed_for(index: int, seg: Segment, s: DetailSettings, seeds: list[int] | None) -> int:
    if seeds is not None:
        return int(seeds[index])
    return box_seed(s.seed, seg.bbox) if s.seed_from_box else s.seed + index


def detail_pass(
    image: np.ndarray,
    segs: Segs,
    inpainter: Inpainter,
    settings: DetailSettings = DetailSettings(),
    *,
    seeds: list[int] | None = None,
    on_step: Callable[[int, int, np.ndarray], None] | None = None,
) -> DetailResult:
    """Re-draw every segment of ``segs`` in ``image`` one after another.

    Args:
        image: float ``[H, W, 3]`` 0..1 (not modified).
        segs: segments whose ``shape`` equals the image size.
        inpainter: re-draws one upscaled crop.
        settings: sizes, feathering, seeds and prompt routing.
        seeds: explicit seed per segment (e.g. one per video track); overrides settings.
        on_step: ``(done, total, current_image)`` after each segment.

    Returns:
        A :class:`DetailResult`; with no segment the image comes back unchanged with a note.

    Raises:
        ValidationError: SEGS made for another image size, or ``seeds`` of the wrong length.
    """
    h, w = image.shape[:2]
    if tuple(segs.shape) != (h, w):
        raise ValidationError(f"`segs` were made for {segs.shape[1]}x{segs.shape[0]} but the image is {w}x{h}")
    if seeds is not None and len(seeds) != len(segs.segments):
        raise ValidationError(f"`seeds` has {len(seeds)} entries for {len(segs.segments)} segments")
    result = DetailResult(image.copy(), Segs((h, w), []), combined_mask=np.zeros((h, w), np.float32))
    if not segs.segments:
        result.notes.append("no segments detected; image passed through unchanged")
        return result
    total = len(segs.segments)
    for index, original in enumerate(segs.segments):
        _detail_one(result, index, original, inpainter, settings, seeds)
        if on_step is not None:
            on_step(index + 1, total, result.image)
    return result


def _detail_one(
    result: DetailResult, index: int, original: Segment, inpainter: Inpainter, s: DetailSettings, seeds: list[int] | None
) -> None:
    shape = result.image.shape[:2]
    prompt = route_prompt(s.prompt, index, s.main_prompt)
    if prompt is None:
        result.notes.append(f"segment {index} ({original.label}) skipped by [SKIP]")
        return
    negative = route_prompt(s.negative, index, s.main_negative) or ""
    seg, region = _region_for(original, shape, s)
    if not seg.cropped_mask.any():
        result.notes.append(f"segment {index} ({seg.label}) skipped: empty mask")
        return
    x1, y1, x2, y2 = region
    plan = plan_upscale(
        (x2 - x1, y2 - y1),
        (seg.bbox[2] - seg.bbox[0], seg.bbox[3] - seg.bbox[1]),
        guide_size=s.guide_size,
        guide_size_for_bbox=s.guide_size_for_bbox,
        max_size=s.max_size,
        inpaint_size=(s.inpaint_width, s.inpaint_height),
        force_inpaint=s.force_inpaint,
    )
    if plan.skip:
        result.notes.append(f"segment {index} ({seg.label}) skipped: {plan.reason}")
        return
    before = result.image[y1:y2, x1:x2].copy()
    job = InpaintJob(index, seg, prompt, negative, _seed_for(index, original, s, seeds))
    work = inpainter(resize_image(before, plan.width, plan.height), resize_mask(seg.cropped_mask, plan.width, plan.height), job)
    if work.shape[:2] != (plan.height, plan.width):
        raise ValidationError(f"inpainter returned {work.shape[:2]}, expected {(plan.height, plan.width)}")
    after = resize_image(work, x2 - x1, y2 - y1)
    h, w = shape
    alpha = feather_mask(seg.cropped_mask, s.feather, (y1 == 0, y2 == h, x1 == 0, x2 == w))
    if s.seam_match > 0:
        after = match_seam_colors(after, before, alpha, s.seam_match)
    result.image = paste_crop(result.image, after, alpha, region)
    result.crops_before.append(before)
    result.crops_after.append(after)
    result.alphas.append(alpha)
    result.combined_mask[y1:y2, x1:x2] = np.maximum(result.combined_mask[y1:y2, x1:x2], alpha)
    result.segs.segments.append(seg._replace(cropped_image=after))
    result.notes.append(f"segment {index} ({seg.label}) detailed at {plan.width}x{plan.height} ({plan.reason}), seed {job.seed}")


def classical_inpainter(method: str = "telea", radius: int = 5) -> Inpainter:
    """An inpainter without a model: OpenCV's Telea or Navier-Stokes fill of the masked area.

    Raises:
        ValidationError: unknown ``method`` or ``radius`` < 1.
    """
    import cv2

    flags = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
    if method not in flags:
        raise ValidationError(f"`method` must be one of {sorted(flags)}, got {method!r}")
    if radius < 1:
        raise ValidationError(f"`radius` must be ≥ 1, got {radius}")

    def run(crop: np.ndarray, mask: np.ndarray, job: InpaintJob) -> np.ndarray:
        src = np.clip(np.rint(crop * 255.0), 0, 255).astype(np.uint8)
        hole = (mask > 0.5).astype(np.uint8) * 255
        filled = cv2.inpaint(np.ascontiguousarray(src), hole, radius, flags[method])
        return filled.astype(np.float32) / 255.0

    return run
