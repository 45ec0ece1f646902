"""InsightFace-format face analysis for the FaceID IP-Adapters, without the ``insightface``
package: a model folder (``models/insightface/models/buffalo_l`` or ``antelopev2``, as the
InsightFace releases unpack) holds an SCRFD detector and an ArcFace recognizer as ONNX files,
run with onnxruntime (the ``detail-onnx`` extra). Owns finding the two models in the folder,
running them, and the FaceID reading of an image: the best face's normalised 512-value
identity embedding and its aligned crop. Decoding and alignment are in :mod:`nodeloom.ops.face_align`.
Imports no node code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nodeloom.errors import ValidationError, require

__all__ = ["Face", "InsightFaceModel", "load_insightface"]


@dataclass
class Face:
    """One detected face: its box (x1, y1, x2, y2), score, five keypoints and normed embedding."""

    box: np.ndarray
    score: float
    keypoints: np.ndarray
    embedding: np.ndarray


class InsightFaceModel:
    """An SCRFD detector and an ArcFace recognizer (the pack's ``INSIGHTFACE`` value)."""

    def __init__(self, detector: Any, recognizer: Any, name: str) -> None:
        self.detector, self.recognizer, self.name = detector, recognizer, name

    def _detect(self, image: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from nodeloom.ops.face_align import decode_scrfd, letterbox

        boxed, scale = letterbox(image, size)
        blob = ((boxed.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None]
        outputs = self.detector.run(None, {self.detector.get_inputs()[0].name: blob})
        boxes, scores, points = decode_scrfd(outputs, size)
        return boxes / scale, scores, points / scale

    def embed(self, crop: np.ndarray) -> np.ndarray:
        """The normalised identity embedding of a 112² aligned RGB crop (uint8)."""
        blob = ((crop.astype(np.float32) - 127.5) / 127.5).transpose(2, 0, 1)[None]
        vector = self.recognizer.run(None, {self.recognizer.get_inputs()[0].name: blob})[0].reshape(-1)
        return vector / max(float(np.linalg.norm(vector)), 1e-12)

    def faces(self, image: np.ndarray) -> list[Face]:
        """The faces in an RGB uint8 image, best first; the detector runs at 640² and, when it finds
        none, at smaller sizes down to 320² (as the IP-Adapter pack retries)."""
        from nodeloom.ops.face_align import align_face

        for size in range(640, 256, -64):
            boxes, scores, points = self._detect(image, size)
            if len(scores):
                return [Face(b, float(s), p, self.embed(align_face(image, p, 112)))
                        for b, s, p in zip(boxes, scores, points)]
        return []


def _kind(session: Any) -> str:
    outputs, shape = session.get_outputs(), session.get_inputs()[0].shape
    if len(outputs) >= 6:
        return "detector"
    if len(outputs) == 1 and list(shape[2:]) == [112, 112]:
        return "recognizer"
    return "other"  # landmark, gender/age models of the same folder


def load_insightface(folder: str | Path, provider: str = "CPU") -> InsightFaceModel:
    """Load the detector and recognizer of an InsightFace model folder.

    Raises:
        ValidationError: the folder is missing or lacks an SCRFD detector or an ArcFace recognizer.
    """
    ort = require("onnxruntime", "detail-onnx")
    folder = Path(folder)
    if not folder.is_dir():
        raise ValidationError(f"InsightFace model folder `{folder.name}` is not in models/insightface/models "
                              "(unpack buffalo_l or antelopev2 there)")
    providers = [f"{provider}ExecutionProvider", "CPUExecutionProvider"] if provider != "CPU" else ["CPUExecutionProvider"]
    providers = [p for p in providers if p in ort.get_available_providers()]
    found: dict[str, Any] = {}
    for path in sorted(folder.glob("*.onnx")):
        session = ort.InferenceSession(str(path), providers=providers)
        found.setdefault(_kind(session), session)
    missing = [k for k in ("detector", "recognizer") if k not in found]
    if missing:
        raise ValidationError(f"InsightFace folder `{folder.name}` has no {' and no '.join(missing)} ONNX model "
                              "(an SCRFD detector with 9 outputs; an ArcFace model reading 112×112 faces)")
    return InsightFaceModel(found["detector"], found["recognizer"], folder.name)
