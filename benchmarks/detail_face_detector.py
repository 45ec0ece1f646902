"""Offline face detector: ours (frontal + mirrored profile cascades, NMS, eye check) vs the
anchor, OpenCV's default frontal cascade with its default parameters (what a plain
``detectMultiScale`` gives). Same images, same run.

Prints one row per detector: IoU with the astronaut's face box, false positives over
skimage photos that hold no human face, and milliseconds per image.
Run: ``PYTHONPATH=src python benchmarks/detail_face_detector.py``
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import skimage.data

from nodeloom.ops.detail.detect import HaarFaceDetector
from nodeloom.ops.detail.segs import box_iou

FACE = (177, 82, 272, 177)
NO_FACE = ("coffee", "chelsea", "rocket", "immunohistochemistry", "retina", "coins", "brick", "grass", "gravel")


def _rgb(name: str) -> np.ndarray:
    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def _anchor() -> callable:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def detect(rgb: np.ndarray) -> list[tuple[float, float, float, float]]:
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return [(x, y, x + w, y + h) for x, y, w, h in cascade.detectMultiScale(gray)]

    return detect


def _ours() -> callable:
    det = HaarFaceDetector()
    return lambda rgb: [d.bbox for d in det.detect_raw(rgb) if d.confidence >= 0.3]


def _measure(detect: callable) -> tuple[float, int, float]:
    images = {n: _rgb(n) for n in ("astronaut", *NO_FACE)}
    t0 = time.perf_counter()
    found = {n: detect(img) for n, img in images.items()}
    ms = (time.perf_counter() - t0) * 1000 / len(images)
    iou = max((box_iou(b, FACE) for b in found["astronaut"]), default=0.0)
    extra = max(0, len(found["astronaut"]) - 1)
    false_pos = extra + sum(len(found[n]) for n in NO_FACE)
    return iou, false_pos, ms


def main() -> None:
    print(f"{'detector':<40} {'astronaut IoU':>14} {'false pos':>10} {'ms/img':>8}")
    for name, detect in (("ours (frontal+profile+eyes, NMS)", _ours()), ("anchor (OpenCV default frontal cascade)", _anchor())):
        iou, fp, ms = _measure(detect)
        print(f"{name:<40} {iou:>14.3f} {fp:>10d} {ms:>8.1f}")


if __name__ == "__main__":
    main()
