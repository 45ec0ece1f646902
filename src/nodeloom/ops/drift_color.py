"""Colour conversions the drift tools need: sRGB ↔ CIELAB / HSV and CIEDE2000.

CIEDE2000 comes from the colour module (``nodeloom.ops.color``) when it is importable, so
the whole project measures colour differences one way; otherwise from the numpy formula
here (Sharma, Wu & Dalal 2005). The conversions (sRGB D65, 2° observer; HSV with hue in
degrees) are the standard closed forms in plain numpy: they run per frame at full
resolution in the drift fixes, where speed matters, and the tests check they agree with
the colour module. Arrays are float ``[..., 3]``. numpy only.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from nodeloom.errors import ValidationError

__all__ = ["anchor_image", "delta_e_2000", "hsv_to_rgb", "lab_to_rgb", "rgb_to_hsv", "rgb_to_lab"]

_D65 = np.array([0.95047, 1.0, 1.08883])
_RGB2XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                     [0.2126729, 0.7151522, 0.0721750],
                     [0.0193339, 0.1191920, 0.9503041]])
_XYZ2RGB = np.linalg.inv(_RGB2XYZ)
_EPS, _KAPPA = 216 / 24389, 24389 / 27


def _shared() -> Any:
    try:
        return importlib.import_module("nodeloom.ops.color")
    except ImportError:
        return None


def _from_shared(name: str, *args: Any) -> np.ndarray | None:
    mod = _shared()
    func = getattr(mod, name, None) if mod is not None else None
    if func is None:
        return None
    return np.asarray(func(*args), dtype=np.float64)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in 0..1 → CIELAB (L* 0..100)."""
    c = np.asarray(rgb, dtype=np.float64)
    lin = np.where(c <= 0.04045, c / 12.92, ((np.maximum(c, 0) + 0.055) / 1.055) ** 2.4)
    xyz = lin @ _RGB2XYZ.T / _D65
    f = np.where(xyz > _EPS, np.cbrt(xyz), (_KAPPA * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB → sRGB (not clipped)."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f**3 > _EPS, f**3, (116 * f - 16) / _KAPPA) * _D65
    lin = xyz @ _XYZ2RGB.T
    return np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * np.abs(lin) ** (1 / 2.4) * np.sign(lin) - 0.055)


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """RGB 0..1 → HSV with hue in degrees [0, 360)."""
    c = np.asarray(rgb, dtype=np.float64)
    v, mn = c.max(-1), c.min(-1)
    d = v - mn
    safe = np.where(d > 0, d, 1.0)
    r, g, b = c[..., 0], c[..., 1], c[..., 2]
    h = np.where(v == r, np.mod((g - b) / safe, 6), np.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4))
    h = np.where(d > 0, h * 60.0, 0.0)
    s = np.where(v > 0, d / np.where(v > 0, v, 1.0), 0.0)
    return np.stack([h, s, v], axis=-1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """HSV (hue in degrees) → RGB 0..1."""
    hsv = np.asarray(hsv, dtype=np.float64)
    hp = np.mod(hsv[..., 0], 360.0)[..., None] / 60.0
    k = np.mod(hp + np.array([5.0, 3.0, 1.0]), 6.0)
    ramp = np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return hsv[..., 2:3] - (hsv[..., 2:3] * hsv[..., 1:2]) * ramp


def delta_e_2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 between Lab arrays (broadcastable), shape ``[...]``."""
    shared = _from_shared("delta_e_2000", np.asarray(lab1, np.float64), np.asarray(lab2, np.float64))
    if shared is not None:
        return shared
    l1, a1, b1 = np.moveaxis(np.asarray(lab1, np.float64), -1, 0)
    l2, a2, b2 = np.moveaxis(np.asarray(lab2, np.float64), -1, 0)
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    zero = (c1p * c2p) == 0
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(zero, 0.0, dh)
    d_l, d_c = l2 - l1, c2p - c1p
    d_h = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    l_bar, cp_bar = (l1 + l2) / 2, (c1p + c2p) / 2
    hsum = h1p + h2p
    h_bar = np.where(zero, hsum, np.where(np.abs(h1p - h2p) <= 180, hsum / 2,
                                          np.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2)))
    t = (1 - 0.17 * np.cos(np.radians(h_bar - 30)) + 0.24 * np.cos(np.radians(2 * h_bar))
         + 0.32 * np.cos(np.radians(3 * h_bar + 6)) - 0.20 * np.cos(np.radians(4 * h_bar - 63)))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / np.sqrt(20 + (l_bar - 50) ** 2)
    s_c = 1 + 0.045 * cp_bar
    s_h = 1 + 0.015 * cp_bar * t
    r_t = (-2 * np.sqrt(cp_bar**7 / (cp_bar**7 + 25.0**7))
           * np.sin(np.radians(60 * np.exp(-(((h_bar - 275) / 25) ** 2)))))
    return np.sqrt((d_l / s_l) ** 2 + (d_c / s_c) ** 2 + (d_h / s_h) ** 2 + r_t * (d_c / s_c) * (d_h / s_h))


def anchor_image(frames: np.ndarray, anchor: int | np.ndarray) -> np.ndarray:
    """The reference image for colour comparisons: a frame index or an image.

    Raises:
        ValidationError: an index outside the sequence or an image that is not ``[H,W,3]``.
    """
    if isinstance(anchor, (int, np.integer)):
        if not 0 <= int(anchor) < len(frames):
            raise ValidationError(f"`anchor` frame must be within 0..{len(frames) - 1}, got {anchor}")
        return np.asarray(frames[int(anchor)], dtype=np.float32)[..., :3]
    ref = np.asarray(anchor, dtype=np.float32)
    if ref.ndim == 4 and ref.shape[0] == 1:
        ref = ref[0]
    if ref.ndim != 3 or ref.shape[-1] < 3:
        raise ValidationError(f"the `anchor` image must be [H,W,3], got shape {ref.shape}")
    return ref[..., :3]
