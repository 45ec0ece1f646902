"""Pasting a re-drawn crop back: Gaussian-feathered alpha, seam colour matching, seam ΔE.

Colour matching is a Reinhard-style transfer in CIE Lab measured only in the feather ring
(where the new and old pixels meet), so a re-drawn patch whose tint drifted does not show
as a grey or tinted square. Imports numpy and OpenCV.
"""

from __future__ import annotations

import math

import numpy as np

from nodeloom.errors import ValidationError

__all__ = ["feather_mask", "feather_ring", "match_seam_colors", "paste_crop", "rgb_to_lab", "seam_delta_e", "seam_step"]


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """float RGB 0..1 ``[..., 3]`` (sRGB) → CIE Lab (L 0..100)."""
    import cv2

    flat = np.ascontiguousarray(np.clip(rgb, 0, 1).astype(np.float32).reshape(-1, 1, 3))
    return cv2.cvtColor(flat, cv2.COLOR_RGB2LAB).reshape(rgb.shape)


def _lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    import cv2

    flat = np.ascontiguousarray(lab.astype(np.float32).reshape(-1, 1, 3))
    return np.clip(cv2.cvtColor(flat, cv2.COLOR_LAB2RGB).reshape(lab.shape), 0.0, 1.0)


def feather_mask(
    mask: np.ndarray, blur: float = 4.0, image_edges: tuple[bool, bool, bool, bool] = (False, False, False, False)
) -> np.ndarray:
    """Gaussian-feather a ``[h, w]`` mask with sigma ``blur`` px.

    The kernel is cut at 3 sigma, so the alpha is exactly 0 farther than that from the mask.

    Args:
        mask: float mask 0..1.
        blur: sigma in px (0: no feathering).
        image_edges: ``(top, bottom, left, right)`` sides that lie on the image border; there
            the mask is treated as continuing (no fade towards a border that has no seam).

    Raises:
        ValidationError: negative ``blur``.
    """
    import cv2

    if blur < 0:
        raise ValidationError(f"`feather` must be ≥ 0, got {blur}")
    m = np.clip(mask.astype(np.float32), 0.0, 1.0)
    if blur == 0:
        return m
    r = int(math.ceil(3 * blur))
    top, bottom, left, right = (r if e else 0 for e in image_edges)
    padded = cv2.copyMakeBorder(m, top, bottom, left, right, cv2.BORDER_REPLICATE) if any(image_edges) else m
    out = cv2.GaussianBlur(padded, (2 * r + 1, 2 * r + 1), sigmaX=blur, sigmaY=blur, borderType=cv2.BORDER_CONSTANT)
    out = np.ascontiguousarray(out[top : top + m.shape[0], left : left + m.shape[1]])
    out[out < 1e-4] = 0.0  # float round-off of a cut kernel must not leak past its support
    return np.clip(out, 0.0, 1.0)


def feather_ring(alpha: np.ndarray, low: float = 0.02, high: float = 0.98) -> np.ndarray:
    """Boolean ``[h, w]``: where the feathered alpha is strictly between old and new."""
    return (alpha > low) & (alpha < high)


def match_seam_colors(new: np.ndarray, old: np.ndarray, alpha: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Shift ``new``'s Lab mean/std towards ``old``'s, both measured in the outer feather ring.

    Only the outer half of the ring (0 < alpha < 0.5, outside the mask itself) is measured:
    there the old pixels are surroundings that stay, so they say what colour the seam needs,
    whereas inside the mask the old content is meant to change.

    Args:
        new: re-drawn crop, float ``[h, w, 3]``.
        old: original crop, same shape.
        alpha: feathered paste alpha ``[h, w]``.
        strength: 0 (off) .. 1 (full transfer).

    Returns:
        The corrected crop (``new`` unchanged when the ring is under 8 pixels).
    """
    ring = feather_ring(alpha, high=0.5)
    if ring.sum() < 8 or strength <= 0:
        return new.copy()
    lab_new, lab_old = rgb_to_lab(new), rgb_to_lab(old)
    mu_n, mu_o = lab_new[ring].mean(axis=0), lab_old[ring].mean(axis=0)
    sd_n, sd_o = lab_new[ring].std(axis=0), lab_old[ring].std(axis=0)
    ratio = np.clip((sd_o + 1e-3) / (sd_n + 1e-3), 0.5, 2.0)
    ratio = 1.0 + strength * (ratio - 1.0)
    corrected = (lab_new - mu_n) * ratio + mu_n + strength * (mu_o - mu_n)
    return _lab_to_rgb(corrected)


def paste_crop(image: np.ndarray, crop: np.ndarray, alpha: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    """Blend ``crop`` into ``image`` at ``region`` with ``alpha``; pixels with alpha 0 stay exact.

    Args:
        image: float ``[H, W, 3]`` (not modified).
        crop: float ``[h, w, 3]`` matching the region.
        alpha: float ``[h, w]``.
        region: ``(x1, y1, x2, y2)``.

    Returns:
        A new image.
    """
    x1, y1, x2, y2 = region
    if crop.shape[:2] != (y2 - y1, x2 - x1) or alpha.shape != crop.shape[:2]:
        raise ValidationError(f"crop {crop.shape[:2]} / alpha {alpha.shape} do not fit region {region}")
    out = image.copy()
    patch = out[y1:y2, x1:x2]
    a = alpha[..., None].astype(np.float32)
    blended = patch * (1.0 - a) + crop.astype(np.float32) * a
    out[y1:y2, x1:x2] = np.where(a > 0, blended, patch)
    return out


def seam_step(image: np.ndarray, alpha: np.ndarray, width: int = 2) -> np.ndarray:
    """Mean Lab just inside minus just outside the feather ring (a Lab vector; zeros if a band is empty).

    Args:
        image: float ``[h, w, 3]`` after pasting.
        alpha: the paste alpha ``[h, w]``.
        width: band width in px taken on either side of the ring.
    """
    import cv2

    inside = (alpha >= 0.98).astype(np.uint8)
    outside = (alpha <= 0.02).astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    ring_in = inside & (1 - cv2.erode(inside, kernel, iterations=width))
    ring_out = outside & (1 - cv2.erode(outside, kernel, iterations=width, borderType=cv2.BORDER_CONSTANT, borderValue=1))
    if not ring_in.any() or not ring_out.any():
        return np.zeros(3, np.float32)
    lab = rgb_to_lab(image)
    return lab[ring_in.astype(bool)].mean(axis=0) - lab[ring_out.astype(bool)].mean(axis=0)


def seam_delta_e(image: np.ndarray, alpha: np.ndarray, width: int = 2) -> float:
    """ΔE76 between the mean Lab just inside and just outside the feather ring (see :func:`seam_step`)."""
    return float(np.linalg.norm(seam_step(image, alpha, width)))
