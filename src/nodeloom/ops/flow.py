"""Dense optical flow between frames, backward warping, and occlusion masks.

Owns the OpenCV flow wrappers (DIS and Farneback, from opencv-python-headless, the
``video`` extra) on float ``[H,W,C]`` arrays in 0..1, warping by a flow field and the
forward–backward consistency test used to mask occlusions. numpy + OpenCV only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nodeloom.errors import ValidationError, require

__all__ = ["FLOW_METHODS", "compute_flow", "flow_pair", "occlusion_mask", "to_gray_u8", "warp_by_flow"]

#: ``dis_fast`` / ``dis_medium`` / ``dis_fine`` are OpenCV's DIS presets; ``farneback`` is the classic.
FLOW_METHODS = ("dis_medium", "dis_fast", "dis_fine", "farneback")


def _cv2() -> Any:
    return require("cv2", "video")


def to_gray_u8(image: np.ndarray) -> np.ndarray:
    """A float ``[H,W,C]`` (or ``[H,W]``) image in 0..1 as 8-bit luma (Rec. 601 weights)."""
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3:
        img = img[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32) if img.shape[-1] >= 3 else img[..., 0]
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def compute_flow(source: np.ndarray, target: np.ndarray, method: str = "dis_medium") -> np.ndarray:
    """Flow from ``source`` to ``target``: ``target(x + flow(x)) ≈ source(x)``.

    Args:
        source: float ``[H,W,C]`` or ``[H,W]`` in 0..1.
        target: same shape.
        method: one of :data:`FLOW_METHODS`.

    Returns:
        float32 ``[H,W,2]`` displacement (dx, dy) in pixels.

    Raises:
        ValidationError: shapes differ or the method is unknown.
    """
    if source.shape[:2] != target.shape[:2]:
        raise ValidationError(f"flow frames must have the same size, got {source.shape[:2]} and {target.shape[:2]}")
    if method not in FLOW_METHODS:
        raise ValidationError(f"flow `method` must be one of {list(FLOW_METHODS)}, got `{method}`")
    cv2 = _cv2()
    a, b = to_gray_u8(source), to_gray_u8(target)
    if method == "farneback":
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 15, 3, 5, 1.2, 0)
    else:
        preset = {
            "dis_fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "dis_medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
            "dis_fine": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
        }[method]
        dis = cv2.DISOpticalFlow_create(preset)
        if method == "dis_fine":
            # the fine preset: small patches, dense stride, more refinement
            dis.setPatchSize(8)
            dis.setPatchStride(3)
            dis.setGradientDescentIterations(25)
            dis.setVariationalRefinementIterations(10)
        flow = dis.calc(a, b, None)
    return np.ascontiguousarray(flow, dtype=np.float32)


def warp_by_flow(image: np.ndarray, flow: np.ndarray, border: str = "replicate") -> np.ndarray:
    """Backward-warp: ``out(x) = image(x + flow(x))`` with bilinear sampling.

    With ``flow = compute_flow(a, b)`` this brings ``b`` onto ``a``'s pixel grid.

    Args:
        image: float ``[H,W,C]`` or ``[H,W]``.
        flow: ``[H,W,2]``.
        border: ``replicate`` or ``constant`` (zeros outside).

    Returns:
        The warped image, same shape and dtype float32.
    """
    cv2 = _cv2()
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
    img = np.ascontiguousarray(image, dtype=np.float32)
    out = cv2.remap(img, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=mode)
    return out.reshape(img.shape)


def occlusion_mask(forward: np.ndarray, backward: np.ndarray, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """Forward–backward consistency (Sundaram et al. 2010), as used by Lai et al. 2018.

    A pixel is *valid* when ``|f + b'|² < alpha (|f|² + |b'|²) + beta`` with ``b'`` the
    backward flow sampled at ``x + f(x)``, and its target stays inside the frame.

    Args:
        forward: flow from frame A to frame B, ``[H,W,2]``.
        backward: flow from frame B to frame A.
        alpha / beta: the tolerance terms.

    Returns:
        float32 ``[H,W]``: 1 where the pixel is visible in both frames, 0 where occluded.
    """
    h, w = forward.shape[:2]
    b_at = warp_by_flow(backward, forward)
    diff = np.sum((forward + b_at) ** 2, axis=-1)
    mag = np.sum(forward**2, axis=-1) + np.sum(b_at**2, axis=-1)
    valid = diff < alpha * mag + beta
    gx, gy = np.meshgrid(np.arange(w), np.arange(h))
    tx, ty = gx + forward[..., 0], gy + forward[..., 1]
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    return (valid & inside).astype(np.float32)


def flow_pair(a: np.ndarray, b: np.ndarray, method: str = "dis_medium") -> tuple[np.ndarray, np.ndarray]:
    """Flow a→b and b→a together (what warping error and smoothing need).

    Returns:
        ``(forward, backward)``, each ``[H,W,2]`` float32.
    """
    return compute_flow(a, b, method), compute_flow(b, a, method)
