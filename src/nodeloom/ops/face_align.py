"""Face detection decoding and alignment for InsightFace-format models (the ``buffalo_l`` /
``antelopev2`` folders): SCRFD's anchor-free outputs → boxes, scores and five keypoints; the
similarity transform that puts the five keypoints on ArcFace's template; the aligned crop.

Plain functions on numpy arrays; the ONNX sessions live in :mod:`nodeloom.diffusion.insightface`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ARCFACE_POINTS", "align_face", "decode_scrfd", "letterbox", "nms", "similarity_transform"]

#: ArcFace's five reference points (left eye, right eye, nose, left and right mouth corner) in a 112² crop
ARCFACE_POINTS = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                           [70.7299, 92.2041]], dtype=np.float32)


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """``image`` (H×W×3) scaled to fit a ``size``² square, placed at its top left on black; the scale."""
    import cv2

    h, w = image.shape[:2]
    scale = min(size / h, size / w)
    nh, nw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    out = np.zeros((size, size, 3), dtype=image.dtype)
    out[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return out, nh / h


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float = 0.4) -> list[int]:
    """Indices of the boxes kept by greedy non-maximum suppression, best score first."""
    order = scores.argsort()[::-1]
    keep: list[int] = []
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    while order.size:
        i = int(order[0])
        keep.append(i)
        xx1 = np.maximum(boxes[i, 0], boxes[order[1:], 0])
        yy1 = np.maximum(boxes[i, 1], boxes[order[1:], 1])
        xx2 = np.minimum(boxes[i, 2], boxes[order[1:], 2])
        yy2 = np.minimum(boxes[i, 3], boxes[order[1:], 3])
        inter = np.maximum(0.0, xx2 - xx1 + 1) * np.maximum(0.0, yy2 - yy1 + 1)
        overlap = inter / (area[i] + area[order[1:]] - inter)
        order = order[1:][overlap <= threshold]
    return keep


def decode_scrfd(outputs: list[np.ndarray], size: int, threshold: float = 0.5,
                 strides: tuple[int, ...] = (8, 16, 32)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes ``[N, 4]`` (x1, y1, x2, y2), scores ``[N]`` and keypoints ``[N, 5, 2]`` in the
    ``size``² input's pixels from SCRFD's outputs: per stride a score, a box-distance and a
    keypoint-offset map (scores first, then boxes, then keypoints), anchors on each cell's corner,
    distances and offsets in stride units; best first, overlaps suppressed.

    Raises:
        ValueError: the outputs are not SCRFD's nine (three strides with keypoints).
    """
    n = len(strides)
    if len(outputs) != 3 * n:
        raise ValueError(f"an SCRFD detector with keypoints has {3 * n} outputs; this one has {len(outputs)}")
    boxes, scores, points = [], [], []
    for k, stride in enumerate(strides):
        score = outputs[k].reshape(-1)
        cells = (size // stride) ** 2
        anchors = score.shape[0] // cells
        if anchors < 1 or anchors * cells != score.shape[0]:
            raise ValueError(f"SCRFD stride {stride}: {score.shape[0]} scores do not fit a {size}² input")
        ys, xs = np.mgrid[: size // stride, : size // stride]
        centers = np.repeat(np.stack([xs, ys], axis=-1).reshape(-1, 2) * stride, anchors, axis=0).astype(np.float32)
        dist = outputs[n + k].reshape(-1, 4) * stride
        kps = outputs[2 * n + k].reshape(-1, 5, 2) * stride
        hit = score >= threshold
        boxes.append(np.concatenate([centers - dist[:, :2], centers + dist[:, 2:]], axis=1)[hit])
        scores.append(score[hit])
        points.append((centers[:, None, :] + kps)[hit])
    all_boxes, all_scores, all_points = np.concatenate(boxes), np.concatenate(scores), np.concatenate(points)
    keep = nms(all_boxes, all_scores) if all_scores.size else []
    return all_boxes[keep], all_scores[keep], all_points[keep]


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 rotation + uniform scale + translation that best maps points ``src`` onto ``dst``
    (least squares, Umeyama's closed form)."""
    src, dst = src.astype(np.float64), dst.astype(np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    flip = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        flip[1, 1] = -1
    rot = u @ flip @ vt
    scale = (sig * np.diag(flip)).sum() / s.var(0).sum()
    t = mu_d - scale * rot @ mu_s
    return np.concatenate([scale * rot, t[:, None]], axis=1).astype(np.float32)


def align_face(image: np.ndarray, keypoints: np.ndarray, size: int = 112) -> np.ndarray:
    """The ``size``² crop of ``image`` with the five ``keypoints`` on ArcFace's template (scaled
    by size/112, or by size/128 and moved right by 8·that for sizes not a multiple of 112)."""
    import cv2

    if size % 112 == 0:
        ratio, shift = size / 112.0, 0.0
    else:
        ratio = size / 128.0
        shift = 8.0 * ratio
    dst = ARCFACE_POINTS * ratio + np.array([shift, 0.0], dtype=np.float32)
    matrix = similarity_transform(np.asarray(keypoints, dtype=np.float32), dst)
    return cv2.warpAffine(image, matrix, (size, size), borderValue=0.0)
