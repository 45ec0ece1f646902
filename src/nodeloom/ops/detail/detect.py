"""Detectors behind one interface: each turns an RGB image into SEGS.

* :class:`HaarFaceDetector` — offline faces with the Haar cascades that ship inside the
  ``opencv-python-headless`` wheel (frontal + mirrored profile, eyes for verification).
* :class:`~nodeloom.ops.detail.yolo.YoloDetector` (in ``yolo``) — user-supplied YOLO weights.
* :class:`MaskDetector` — a given mask used as segments.

Every detector has ``detect_raw(rgb_uint8) -> list[Detection]`` and the Impact Pack
``BBOX_DETECTOR`` call ``detect(image, threshold, dilation, crop_factor, drop_size=1,
detailer_hook=None) -> Segs``. No node code here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from nodeloom.errors import ValidationError
from nodeloom.ops.detail.process import dilate_erode, drop_small
from nodeloom.ops.detail.segs import Segment, Segs, box_iou, clamp_box, make_crop_region, mask_to_segs

__all__ = [
    "Detection",
    "Detector",
    "HaarFaceDetector",
    "MaskDetector",
    "detections_to_segs",
    "non_max_suppression",
    "to_rgb_uint8",
]


class Detection(NamedTuple):
    """A raw detection: float ``(x1, y1, x2, y2)`` box, confidence, label, optional full mask."""

    bbox: tuple[float, float, float, float]
    confidence: float
    label: str
    mask: np.ndarray | None = None


def to_rgb_uint8(image: Any) -> np.ndarray:
    """An IMAGE tensor ``[1,H,W,C]``/``[H,W,C]`` (0..1) or uint8 array as ``[H,W,3]`` uint8 RGB.

    Raises:
        ValidationError: not an image of 1, 3 or 4 channels, or a batch of more than one.
    """
    arr = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if arr.ndim == 4:
        if arr.shape[0] != 1:
            raise ValidationError(f"`image` must hold one frame here, got a batch of {arr.shape[0]}")
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValidationError(f"`image` must be [H, W, C] with C in 1/3/4, got shape {tuple(arr.shape)}")
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[..., :3])


def non_max_suppression(dets: list[Detection], iou: float = 0.3, containment: bool = True) -> list[Detection]:
    """Greedy NMS: keep the most confident detection of each overlapping group.

    Two boxes overlap when their IoU exceeds ``iou`` or, with ``containment``, when most of
    the smaller one lies inside the larger (a profile box inside a frontal box is one face).
    """
    overlap = _overlap if containment else box_iou
    kept: list[Detection] = []
    for det in sorted(dets, key=lambda d: d.confidence, reverse=True):
        if all(overlap(det.bbox, k.bbox) <= iou for k in kept):
            kept.append(det)
    return kept


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    inside = ix * iy / small if small > 0 else 0.0
    return max(box_iou(a, b), 0.8 * inside)


def detections_to_segs(
    dets: list[Detection],
    shape: tuple[int, int],
    *,
    crop_factor: float = 3.0,
    dilation: int = 0,
    drop_size: int = 1,
) -> Segs:
    """Build SEGS from raw detections: the mask is the detection's own or its filled box.

    Args:
        dets: detections in source pixels.
        shape: source ``(h, w)``.
        crop_factor: crop region = bbox x factor.
        dilation: square-kernel dilate (> 0) / erode (< 0) of each mask; emptied ones drop.
        drop_size: drop detections whose box side is below this.
    """
    h, w = shape
    segments: list[Segment] = []
    for det in dets:
        bbox = clamp_box(det.bbox, h, w)
        if bbox[2] <= bbox[0] or bbox[3] <= bbox[1]:
            continue
        if det.mask is not None:
            full = np.clip(det.mask, 0.0, 1.0).astype(np.float32)
        else:
            full = np.zeros((h, w), np.float32)
            full[bbox[1] : bbox[3], bbox[0] : bbox[2]] = 1.0
        full = dilate_erode(full, dilation)
        if not full.any():
            continue
        region = make_crop_region(h, w, bbox, crop_factor)
        x1, y1, x2, y2 = region
        segments.append(Segment(None, full[y1:y2, x1:x2].copy(), float(det.confidence), region, bbox, det.label))
    return drop_small(Segs((h, w), segments), drop_size)


class Detector:
    """Base: subclasses implement ``detect_raw``; ``detect`` is Impact Pack's BBOX_DETECTOR call."""

    label = "object"

    def detect_raw(self, rgb: np.ndarray) -> list[Detection]:  # pragma: no cover - abstract
        raise NotImplementedError

    def detect(
        self,
        image: Any,
        threshold: float = 0.3,
        dilation: int = 0,
        crop_factor: float = 3.0,
        drop_size: int = 1,
        detailer_hook: Any = None,
    ) -> Segs:
        """Detect on one frame and return SEGS of detections with confidence ≥ ``threshold``."""
        rgb = to_rgb_uint8(image)
        dets = [d for d in self.detect_raw(rgb) if d.confidence >= threshold]
        return detections_to_segs(
            dets, rgb.shape[:2], crop_factor=crop_factor, dilation=dilation, drop_size=drop_size
        )


class HaarFaceDetector(Detector):
    """Faces with OpenCV's bundled Haar cascades (no download, runs on CPU).

    Candidates come from the frontal cascade and the profile cascade run on the image and
    its mirror; overlapping ones are merged by NMS. Confidence grows with the number of
    raw hits merged into a box (``1 - exp(-n / 10)``) and is halved when no eye is found
    in the upper part of the box.

    Args:
        scale_factor: image pyramid step (> 1).
        min_neighbors: raw hits a box needs to be reported at all.
        min_size: smallest face side in pixels, as a fraction of the short image side.
        use_profile: also run the profile cascade.
        verify_eyes: run the eye cascade inside each box.
        max_side: larger images are searched at this long side (boxes are mapped back).
    """

    label = "face"

    def __init__(
        self,
        scale_factor: float = 1.1,
        min_neighbors: int = 3,
        min_size: float = 0.04,
        use_profile: bool = True,
        verify_eyes: bool = True,
        max_side: int = 1024,
    ) -> None:
        import cv2

        if scale_factor <= 1.0:
            raise ValidationError(f"`scale_factor` must be > 1, got {scale_factor}")
        if min_neighbors < 1:
            raise ValidationError(f"`min_neighbors` must be ≥ 1, got {min_neighbors}")
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size
        self.use_profile, self.verify_eyes, self.max_side = use_profile, verify_eyes, max(64, int(max_side))
        root = Path(cv2.data.haarcascades)
        self._frontal = self._load(cv2, root / "haarcascade_frontalface_alt2.xml")
        self._profile = self._load(cv2, root / "haarcascade_profileface.xml")
        self._eyes = self._load(cv2, root / "haarcascade_eye.xml")

    @staticmethod
    def _load(cv2: Any, path: Path) -> Any:
        cascade = cv2.CascadeClassifier(str(path))
        if cascade.empty():
            raise FileNotFoundError(f"OpenCV cascade `{path.name}` is missing from the opencv wheel")
        return cascade

    def _run(self, cascade: Any, gray: np.ndarray, min_side: int) -> list[tuple[tuple[int, ...], int]]:
        rects, hits = cascade.detectMultiScale2(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_side, min_side)
        )
        return [(tuple(int(v) for v in r), int(n)) for r, n in zip(rects, hits)]

    def _has_eye(self, gray: np.ndarray, box: tuple[int, ...]) -> bool:
        import cv2

        x, y, w, h = box
        roi = cv2.equalizeHist(np.ascontiguousarray(gray[y : y + int(h * 0.6), x : x + w]))
        side = max(w // 10, 6)
        eyes, _ = self._eyes.detectMultiScale2(roi, scaleFactor=1.1, minNeighbors=3, minSize=(side, side))
        return len(eyes) > 0

    def detect_raw(self, rgb: np.ndarray) -> list[Detection]:
        """Face boxes in ``rgb`` (uint8 ``[H, W, 3]``)."""
        import cv2

        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        scale = min(1.0, self.max_side / max(gray.shape))
        if scale < 1.0:
            gray = cv2.resize(gray, (round(gray.shape[1] * scale), round(gray.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        eq = cv2.equalizeHist(gray)
        height, width = gray.shape
        min_side = max(12, int(self.min_size * min(height, width)))
        found = self._run(self._frontal, eq, min_side)
        if self.use_profile:
            found += self._run(self._profile, eq, min_side)
            for (x, y, w, h), n in self._run(self._profile, np.ascontiguousarray(eq[:, ::-1]), min_side):
                found.append(((width - x - w, y, w, h), n))
        dets = []
        for (x, y, w, h), hits in found:
            conf = 1.0 - math.exp(-hits / 10.0)
            if self.verify_eyes and not self._has_eye(gray, (x, y, w, h)):
                conf *= 0.5
            box = (x / scale, y / scale, (x + w) / scale, (y + h) / scale)
            dets.append(Detection(tuple(float(v) for v in box), conf, self.label))
        return non_max_suppression(dets)


class MaskDetector(Detector):
    """Use a given mask as the detections: one segment per connected component.

    Args:
        mask: float ``[H, W]`` (or ``[1, H, W]``) 0..1.
        label: label of the segments.
    """

    def __init__(self, mask: Any, label: str = "mask") -> None:
        arr = mask.detach().cpu().numpy() if hasattr(mask, "detach") else np.asarray(mask)
        if arr.ndim == 3 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 2:
            raise ValidationError(f"`mask` must be [H, W] or [1, H, W], got shape {tuple(arr.shape)}")
        self.mask, self.label = arr.astype(np.float32), label

    def detect_raw(self, rgb: np.ndarray) -> list[Detection]:
        """One detection per component of the mask (confidence 1)."""
        if rgb.shape[:2] != self.mask.shape:
            raise ValidationError(f"`mask` is {self.mask.shape} but the image is {rgb.shape[:2]}")
        segs = mask_to_segs(self.mask, label=self.label, crop_factor=1.0)
        out = []
        for seg in segs.segments:
            full = np.zeros(self.mask.shape, np.float32)
            x1, y1, x2, y2 = seg.crop_region
            full[y1:y2, x1:x2] = seg.cropped_mask
            out.append(Detection(tuple(float(v) for v in seg.bbox), 1.0, self.label, full))
        return out
