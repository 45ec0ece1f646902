"""User-supplied YOLO detectors: ``.pt`` weights via ultralytics, ``.onnx`` via onnxruntime.

Both runtimes are optional — ``detail-onnx`` brings onnxruntime, ``detail-yolo`` adds
ultralytics (which pulls in torchvision) — and a missing one raises
:class:`~nodeloom.errors.MissingDependencyError` naming its extra. The ONNX path expects
ultralytics' YOLOv8 export layout (head ``[1, 4 + classes, anchors]``, names in metadata).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nodeloom.errors import ValidationError, require
from nodeloom.ops.detail.detect import Detection, Detector, non_max_suppression

__all__ = ["ONNX_EXTRA", "YOLO_EXTRA", "YoloDetector", "decode_yolo_output"]

YOLO_EXTRA = "detail-yolo"
ONNX_EXTRA = "detail-onnx"


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
    return [k for group in by_label.values() for k in non_max_suppression(group, iou, containment=False)]


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
            ort = require("onnxruntime", ONNX_EXTRA)
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
