"""Drawing OpenPose keypoint frames the way pose ControlNets were trained on: coloured limb
ellipses and joint dots for the 18-point body on black, white face dots, hand skeletons
coloured by finger, foot points joined to the ankles. Pure numpy + OpenCV."""

from __future__ import annotations

import colorsys
import math
from typing import Any

import numpy as np

from nodeloom.errors import ValidationError

__all__ = ["draw_pose_frame"]

#: body limbs as 0-based point pairs (neck = 1) and the colour of each joint
LIMBS = [(1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
         (1, 0), (0, 14), (14, 16), (0, 15), (15, 17)]
COLORS = [(255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
          (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
          (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85)]
HEAD = {0, 14, 15, 16, 17}
HAND_EDGES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11), (11, 12),
              (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20)]
FEET = {18: 13, 19: 13, 20: 13, 21: 10, 22: 10, 23: 10}  # BODY_25-style foot points → their ankle


def _points(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values or [], np.float32)
    if arr.size % 3:
        raise ValidationError(f"`{name}` must hold x, y, score triples, got {arr.size} values")
    return arr.reshape(-1, 3)


def _limb(canvas: np.ndarray, a: np.ndarray, b: np.ndarray, color: tuple[int, ...], width: int) -> None:
    import cv2

    (x1, y1), (x2, y2) = a[:2], b[:2]
    length = math.hypot(x2 - x1, y2 - y1)
    angle = math.degrees(math.atan2(y2 - y1, x2 - x1))
    poly = cv2.ellipse2Poly((int((x1 + x2) / 2), int((y1 + y2) / 2)), (int(length / 2), width), int(angle), 0, 360, 1)
    cv2.fillConvexPoly(canvas, poly, [int(c * 0.6) for c in color])  # limbs at 60 %, joints at full colour


def _body(canvas: np.ndarray, pose: np.ndarray, thr: float, body: bool, head: bool, feet: bool, width: int) -> None:
    import cv2

    def shown(i: int) -> bool:
        if i >= len(pose) or pose[i, 2] < thr or not pose[i, :2].any():
            return False
        return (head if i in HEAD else body or i == 1) if i < 18 else feet

    for n, (i, j) in enumerate(LIMBS):
        if shown(i) and shown(j) and (body or {i, j} & HEAD and head):
            _limb(canvas, pose[i], pose[j], COLORS[n], width)
    for i, ankle in FEET.items():
        if shown(i) and shown(ankle):
            _limb(canvas, pose[ankle], pose[i], COLORS[i % 18], max(1, width // 2))
    for i in range(len(pose)):
        if shown(i):
            cv2.circle(canvas, (int(pose[i, 0]), int(pose[i, 1])), width, COLORS[i % 18], -1)


def _hand(canvas: np.ndarray, hand: np.ndarray, thr: float, width: int) -> None:
    import cv2

    ok = (hand[:, 2] >= thr) & hand[:, :2].any(axis=1)
    for n, (i, j) in enumerate(HAND_EDGES):
        if i < len(hand) and j < len(hand) and ok[i] and ok[j]:
            rgb = [int(c * 255) for c in colorsys.hsv_to_rgb(n / len(HAND_EDGES), 1.0, 1.0)]
            cv2.line(canvas, tuple(int(v) for v in hand[i, :2]), tuple(int(v) for v in hand[j, :2]), rgb, max(1, width // 2))
    for p in hand[ok]:
        cv2.circle(canvas, (int(p[0]), int(p[1])), max(1, width // 2), (0, 0, 255), -1)


def draw_pose_frame(frame: dict[str, Any], *, draw_body: bool = True, draw_hands: bool = True,
                    draw_face: bool = True, draw_feet: bool = False, stick_width: int = 4,
                    face_point_size: int = 3, score_threshold: float = 0.3, draw_head: bool = True) -> np.ndarray:
    """One OpenPose frame → an RGB uint8 canvas of its size with every person drawn."""
    import cv2

    try:
        w, h = int(frame["canvas_width"]), int(frame["canvas_height"])
    except (KeyError, TypeError, ValueError):
        raise ValidationError("`keypoints` frames need `canvas_width` and `canvas_height`") from None
    canvas = np.zeros((h, w, 3), np.uint8)
    for person in frame.get("people", []):
        pose = _points(person.get("pose_keypoints_2d"), "pose_keypoints_2d")
        _body(canvas, pose, score_threshold, draw_body, draw_head, draw_feet, stick_width)
        if draw_hands:
            for key in ("hand_left_keypoints_2d", "hand_right_keypoints_2d"):
                _hand(canvas, _points(person.get(key), key), score_threshold, stick_width)
        if draw_face:
            for x, y, s in _points(person.get("face_keypoints_2d"), "face_keypoints_2d"):
                if s >= score_threshold and (x or y):
                    cv2.circle(canvas, (int(x), int(y)), face_point_size, (255, 255, 255), -1)
    return canvas
