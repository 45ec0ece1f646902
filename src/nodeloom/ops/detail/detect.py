"""Detectors behind one interface: each turns an RGB image into SEGS.

* :class:`HaarFaceDetector` — offline faces with the Haar cascades that ship inside the
  ``opencv-python-headless`` wheel (frontal + mirrored profile, eyes for verification).
* :class:`YoloDetector` — user-supplied YOLO weights: ``.pt`` through ``ultralytics``,
  ``.onnx`` (ultralytics' YOLOv8 export layout) through ``onnxruntime``; both optional.
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

from nodeloom.errors import ValidationError, require
from nodeloom.ops.detail.process import dilate_erode, drop_small
from nodeloom.ops.detail.segs import Segment, Segs, box_iou, clamp_box, make_crop_region, mask_to_segs

__all__ = [
    "Detection",
    "Detector",
    "HaarFaceDetector",
    "MaskDetector",
    "YoloDetector",
    "decode_yolo_output",
    "detections_to_segs",
    "non_max_suppression",
    "to_rgb_uint8",
]

YOLO_EXTRA = "detail-yolo"


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


def non_max_suppression(dets: list[Detection], iou: float = 0.3) -> list[Detection]:
    """Greedy NMS: keep the most confident detection of each overlapping group.

    Two boxes overlap when their IoU, or the share of the smaller one inside the larger,
    exceeds ``iou`` (a profile box inside a frontal box is the same face).
    """
    kept: list[Detection] = []
    for det in sorted(dets, key=lambda d: d.confidence, reverse=True):
        if all(_overlap(det.bbox, k.bbox) <= iou for k in kept):
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
    """

    label = "face"

    def __init__(
        self,
        scale_factor: float = 1.1,
        min_neighbors: int = 3,
        min_size: float = 0.04,
        use_profile: bool = True,
        verify_eyes: bool = True,
    ) -> None:
        import cv2

        if scale_factor <= 1.0:
            raise ValidationError(f"`scale_factor` must be > 1, got {scale_factor}")
        if min_neighbors < 1:
            raise ValidationError(f"`min_neighbors` must be ≥ 1, got {min_neighbors}")
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size
        self.use_profile, self.verify_eyes = use_profile, verify_eyes
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
            dets.append(Detection((float(x), float(y), float(x + w), float(y + h)), conf, self.label))
        return non_max_suppression(dets)


def decode_yolo_output(
    output: np.ndarray,
    names: list[str],
    *,
    scale: float,
    pad: tuple[float, float],
    shape: tuple[int, int],
    conf: float = 0.25,
    iou: float = 0.45,
) -> list[Detection]:
    """Decode a YOLOv8 ONNX head ``[1, 4 + classes, anchors]`` into boxes in source pixels.

    Args:
        output: raw head; rows 0..3 are ``cx, cy, w, h`` in network-input pixels.
        names: class names (index → label).
        scale / pad: the letterbox used on the way in (``src * scale + pad``).
        shape: source ``(h, w)`` to clamp into.
        conf / iou: score threshold and NMS IoU.

    Raises:
        ValidationError: the head has an unexpected shape.
    """
    pred = np.asarray(output, np.float32)
    if pred.ndim == 3:
        pred = pred[0]
    if pred.ndim != 2 or pred.shape[0] < 5:
        raise ValidationError(f"YOLO output must be [1, 4 + classes, anchors], got {tuple(np.shape(output))}")
    pred = pred.T
    scores = pred[:, 4:]
    cls = scores.argmax(axis=1)
    best = scores[np.arange(len(scores)), cls]
    keep = best >= conf
    boxes, best, cls = pred[keep, :4], best[keep], cls[keep]
    x1 = (boxes[:, 0] - boxes[:, 2] / 2 - pad[0]) / scale
    y1 = (boxes[:, 1] - boxes[:, 3] / 2 - pad[1]) / scale
    x2 = (boxes[:, 0] + boxes[:, 2] / 2 - pad[0]) / scale
    y2 = (boxes[:, 1] + boxes[:, 3] / 2 - pad[1]) / scale
    h, w = shape
    dets = []
    for i in range(len(best)):
        label = names[int(cls[i])] if int(cls[i]) < len(names) else str(int(cls[i]))
        box = (float(np.clip(x1[i], 0, w)), float(np.clip(y1[i], 0, h)), float(np.clip(x2[i], 0, w)), float(np.clip(y2[i], 0, h)))
        dets.append(Detection(box, float(best[i]), label))
    by_label: dict[str, list[Detection]] = {}
    for d in dets:
        by_label.setdefault(d.label, []).append(d)
    return [k for group in by_label.values() for k in _plain_nms(group, iou)]


def _plain_nms(dets: list[Detection], iou: float) -> list[Detection]:
    kept: list[Detection] = []
    for det in sorted(dets, key=lambda d: d.confidence, reverse=True):
        if all(box_iou(det.bbox, k.bbox) <= iou for k in kept):
            kept.append(det)
    return kept


def _letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[float, float]]:
    import cv2

    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    canvas = np.full((size, size, 3), 114, np.uint8)
    px, py = (size - nw) // 2, (size - nh) // 2
    canvas[py : py + nh, px : px + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return canvas, scale, (float(px), float(py))


class YoloDetector(Detector):
    """User-supplied YOLO weights (``models/adetailer``): ``.pt`` via ultralytics, ``.onnx`` via
    onnxruntime. Segmentation weights give per-instance masks (``.pt`` only).

    Args:
        path: the weights file.
        classes: comma-separated class names to keep (empty keeps all).
        device: torch device for ultralytics (``""`` lets it choose).

    Raises:
        MissingDependencyError: the runtime for that format is not installed.
        ValidationError: the file is neither ``.pt`` nor ``.onnx``.
    """

    def __init__(self, path: str | Path, classes: str = "", device: str = "") -> None:
        self.path = Path(path)
        self.classes = {c.strip() for c in classes.split(",") if c.strip()}
        self.device = device
        suffix = self.path.suffix.lower()
        if suffix in (".pt", ".pth"):
            ultralytics = require("ultralytics", YOLO_EXTRA)
            self._model, self._kind = ultralytics.YOLO(str(self.path)), "ultralytics"
        elif suffix == ".onnx":
            ort = require("onnxruntime", YOLO_EXTRA)
            self._model = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
            self._kind = "onnx"
        else:
            raise ValidationError(f"YOLO weights must be `.pt` or `.onnx`, got `{self.path.name}`")
        self.label = self.path.stem

    def detect_raw(self, rgb: np.ndarray) -> list[Detection]:
        """Detections of the kept classes in ``rgb`` (uint8 ``[H, W, 3]``)."""
        dets = self._ultralytics(rgb) if self._kind == "ultralytics" else self._onnx(rgb)
        return [d for d in dets if not self.classes or d.label in self.classes]

    def _ultralytics(self, rgb: np.ndarray) -> list[Detection]:
        import cv2

        result = self._model(rgb[..., ::-1], conf=0.01, device=self.device or None, verbose=False)[0]
        boxes = result.boxes.xyxy.cpu().numpy()
        confs = result.boxes.conf.cpu().numpy()
        cls = result.boxes.cls.cpu().numpy().astype(int)
        masks = None if result.masks is None else result.masks.data.cpu().numpy()
        h, w = rgb.shape[:2]
        out = []
        for i, box in enumerate(boxes):
            mask = None if masks is None else cv2.resize(masks[i].astype(np.float32), (w, h))
            out.append(Detection(tuple(float(v) for v in box), float(confs[i]), str(result.names[cls[i]]), mask))
        return out

    def _onnx(self, rgb: np.ndarray) -> list[Detection]:
        inp = self._model.get_inputs()[0]
        size = inp.shape[2] if isinstance(inp.shape[2], int) else 640
        canvas, scale, pad = _letterbox(rgb, size)
        tensor = canvas.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
        output = self._model.run(None, {inp.name: tensor})[0]
        meta = self._model.get_modelmeta().custom_metadata_map
        names = _parse_names(meta.get("names", ""), output.shape[1] - 4)
        return decode_yolo_output(output, names, scale=scale, pad=pad, shape=rgb.shape[:2], conf=0.01)


def _parse_names(raw: str, count: int) -> list[str]:
    """Class names from ultralytics' ONNX metadata (``"{0: 'face', 1: 'hand'}"``)."""
    import ast

    try:
        parsed = ast.literal_eval(raw) if raw else {}
    except (ValueError, SyntaxError):
        parsed = {}
    return [str(parsed.get(i, i)) for i in range(count)] if isinstance(parsed, dict) else [str(i) for i in range(count)]


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
