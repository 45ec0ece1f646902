"""Face landmarks: a 68-point ONNX landmark model run on face boxes, and the result in
OpenPose's keypoint frame format (``canvas_width``, ``canvas_height``, ``people`` with
``face_keypoints_2d`` of 70 points — the 68 iBUG points and two pupils — and the head points
of ``pose_keypoints_2d``), with face boxes and hull masks computed from it.

The model contract (what the user places under ``models/landmarks``): one float32 NCHW RGB
input in 0..1 at a fixed size, one output holding 68 ``(x, y)`` pairs in 0..1 of the crop
(shape ``[1, 136]`` or ``[1, 68, 2]``; a third column, if any, is read as a score).
onnxruntime is optional (the ``detail-onnx`` extra). Imports no node code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nodeloom.errors import ValidationError, require

__all__ = ["BODY_POINTS", "LandmarkModel", "face_boxes", "face_hull_mask", "landmarks_to_person", "pose_frame"]

BODY_POINTS = 18  # OpenPose COCO body: nose, neck, shoulders, elbows, wrists, hips, knees, ankles, eyes, ears
_NOSE, _REYE, _LEYE, _REAR, _LEAR = 0, 14, 15, 16, 17


class LandmarkModel:
    """A 68-point landmark model in ONNX, run with onnxruntime on CPU.

    Raises:
        ValidationError: the model's input is not ``[1, 3, H, W]`` with a fixed size.
    """

    def __init__(self, path: str | Path) -> None:
        ort = require("onnxruntime", "detail-onnx")
        self.path = Path(path)
        self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        shape = list(inp.shape)
        if len(shape) != 4 or shape[1] != 3 or not all(isinstance(s, int) for s in shape[2:]):
            raise ValidationError(f"landmark model `{self.path.name}` must take a [1, 3, H, W] image with a fixed "
                                  f"H and W, its input is {shape}")
        self.input_name, self.size = inp.name, (int(shape[3]), int(shape[2]))

    def predict(self, crop: np.ndarray) -> np.ndarray:
        """``crop`` (H, W, 3 float 0..1, any size) → ``(68, 3)``: x, y in 0..1 of the crop, score."""
        import cv2

        x = cv2.resize(crop.astype(np.float32), self.size, interpolation=cv2.INTER_AREA)
        out = np.asarray(self.session.run(None, {self.input_name: x.transpose(2, 0, 1)[None]})[0], np.float32)
        if out.size in (136, 204):
            pts = out.reshape(68, -1)
        else:
            raise ValidationError(f"landmark model `{self.path.name}` must give 68 points (136 or 204 values), "
                                  f"gave shape {list(out.shape)}")
        score = pts[:, 2] if pts.shape[1] == 3 else np.ones(68, np.float32)
        return np.column_stack([pts[:, :2], score])


def _square(box: tuple[float, float, float, float], margin: float, w: int, h: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box
    cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * (1 + margin)
    return (int(max(0, cx - side / 2)), int(max(0, cy - side / 2)), int(min(w, cx + side / 2)), int(min(h, cy + side / 2)))


def landmarks_to_person(points: np.ndarray) -> dict[str, list[float]]:
    """68 pixel points ``(x, y, score)`` → an OpenPose person: 70 face points (the pupils are the
    eye-contour centres) and the head of the body (nose tip, eyes, ears at the jaw's ends)."""
    right_eye, left_eye = points[36:42].mean(axis=0), points[42:48].mean(axis=0)
    face = np.vstack([points, right_eye, left_eye])
    body = np.zeros((BODY_POINTS, 3), np.float32)
    for idx, p in ((_NOSE, points[30]), (_REYE, right_eye), (_LEYE, left_eye), (_REAR, points[0]), (_LEAR, points[16])):
        body[idx] = p
    return {"pose_keypoints_2d": [round(float(v), 2) for v in body.ravel()],
            "face_keypoints_2d": [round(float(v), 2) for v in face.ravel()],
            "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": []}


def pose_frame(rgb: np.ndarray, boxes: list[tuple[float, float, float, float]], model: LandmarkModel,
               margin: float = 0.2) -> dict[str, Any]:
    """Landmarks for each face box of one frame (``rgb`` H, W, 3 float 0..1) as an OpenPose frame;
    no boxes gives no people."""
    h, w = rgb.shape[:2]
    people = []
    for box in boxes:
        x1, y1, x2, y2 = _square(box, margin, w, h)
        if x2 - x1 < 4 or y2 - y1 < 4:
            continue
        pts = model.predict(rgb[y1:y2, x1:x2])
        pts[:, 0] = x1 + np.clip(pts[:, 0], 0, 1) * (x2 - x1)
        pts[:, 1] = y1 + np.clip(pts[:, 1], 0, 1) * (y2 - y1)
        people.append(landmarks_to_person(pts))
    return {"canvas_width": w, "canvas_height": h, "people": people}


def _face_points(person: dict[str, Any], min_score: float = 0.0) -> np.ndarray:
    pts = np.asarray(person.get("face_keypoints_2d") or [], np.float32).reshape(-1, 3)
    return pts[(pts[:, 2] > min_score) & (pts[:, :2].sum(axis=1) > 0)]


def face_boxes(frame: dict[str, Any], scale: float = 1.5, force_square: bool = True) -> list[dict[str, int]]:
    """Each person's face box from their face points, grown ``scale`` times about its centre
    (and made square), clipped to the canvas: ``{x, y, width, height}`` in pixels."""
    if scale < 1.0:
        raise ValidationError(f"`scale` must be ≥ 1, got {scale}")
    w, h = int(frame["canvas_width"]), int(frame["canvas_height"])
    out = []
    for person in frame.get("people", []):
        pts = _face_points(person)
        if len(pts) < 2:
            continue
        (x1, y1), (x2, y2) = pts[:, :2].min(axis=0), pts[:, :2].max(axis=0)
        bw, bh = (x2 - x1) * scale, (y2 - y1) * scale
        if force_square:
            bw = bh = max(bw, bh)
        cx, cy, bw, bh = (x1 + x2) / 2, (y1 + y2) / 2, int(round(bw)), int(round(bh))
        left, top = int(round(cx - bw / 2)), int(round(cy - bh / 2))
        left, top, right, bottom = max(0, left), max(0, top), min(w, left + bw), min(h, top + bh)
        if right > left and bottom > top:
            out.append({"x": left, "y": top, "width": right - left, "height": bottom - top})
    return out


def face_hull_mask(frame: dict[str, Any], grow: int = 0) -> np.ndarray:
    """A mask (H, W float 0..1) filling the convex hull of every face's points, grown by ``grow`` px."""
    import cv2

    h, w = int(frame["canvas_height"]), int(frame["canvas_width"])
    mask = np.zeros((h, w), np.uint8)
    for person in frame.get("people", []):
        pts = _face_points(person)
        if len(pts) >= 3:
            cv2.fillConvexPoly(mask, cv2.convexHull(np.round(pts[:, :2]).astype(np.int32)), 255)
    if grow > 0:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    return mask.astype(np.float32) / 255.0
