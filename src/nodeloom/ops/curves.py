"""Tone curves and histograms of the colour-adjustment nodes: a CURVE value (``{"points":
[[x, y], ...], "interpolation": "monotone_cubic" | "linear"}``, x and y in 0..1, as the
frontend's curve widget stores it) checked and sampled into a lookup table, and 256-bin
histograms of an image's channels. Pure numpy/torch; no nodes."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nodeloom.errors import ValidationError

__all__ = ["INTERPOLATIONS", "apply_curve", "check_curve", "curve_lut", "histogram"]

INTERPOLATIONS = ("monotone_cubic", "linear")


def check_curve(value: Any, name: str = "curve") -> dict[str, Any]:
    """``value`` as a CURVE dict with its points sorted by x.

    Raises:
        ValidationError: not a dict with at least one ``[x, y]`` number pair and a known
            ``interpolation``; the message names ``name``.
    """
    points = value.get("points") if isinstance(value, dict) else None
    ok = isinstance(points, list) and points and all(
        isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(c, (int, float)) and not isinstance(c, bool)
                                                             for c in p) for p in points)
    if not ok or value.get("interpolation") not in INTERPOLATIONS:
        raise ValidationError(f"`{name}` must be a curve {{\"points\": [[x, y], ...], \"interpolation\": "
                              f"{' | '.join(INTERPOLATIONS)}}}, got {str(value)[:120]!r}")
    return {"points": sorted([float(x), float(y)] for x, y in points), "interpolation": value["interpolation"]}


def _slopes(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Fritsch–Carlson tangents: averaged secants, zero at extrema, limited so the curve stays monotone."""
    dx = np.diff(xs)
    secant = np.divide(np.diff(ys), dx, out=np.zeros_like(dx), where=dx != 0)
    m = np.empty(len(xs))
    m[0], m[-1] = secant[0], secant[-1]
    inner = (secant[:-1] + secant[1:]) / 2
    m[1:-1] = np.where(secant[:-1] * secant[1:] <= 0, 0.0, inner)
    for k, s in enumerate(secant):
        if s == 0:
            m[k] = m[k + 1] = 0.0
            continue
        a, b = m[k] / s, m[k + 1] / s
        r = a * a + b * b
        if r > 9:
            t = 3 / np.sqrt(r)
            m[k], m[k + 1] = t * a * s, t * b * s
    return m


def curve_lut(curve: dict[str, Any], size: int = 256) -> np.ndarray:
    """The curve sampled at ``size`` evenly spaced x in 0..1 (float32); flat beyond the end points."""
    pts = np.asarray(check_curve(curve)["points"], dtype=np.float64)
    xs, ys = pts[:, 0], pts[:, 1]
    t = np.linspace(0.0, 1.0, size)
    if len(xs) == 1:
        return np.full(size, ys[0], dtype=np.float32)
    if curve["interpolation"] == "linear":
        return np.interp(t, xs, ys).astype(np.float32)
    m = _slopes(xs, ys)
    k = np.clip(np.searchsorted(xs, t, side="right") - 1, 0, len(xs) - 2)
    h = xs[k + 1] - xs[k]
    u = np.divide(t - xs[k], h, out=np.zeros_like(t), where=h != 0)
    u2, u3 = u * u, u * u * u
    out = ((2 * u3 - 3 * u2 + 1) * ys[k] + (u3 - 2 * u2 + u) * h * m[k]
           + (-2 * u3 + 3 * u2) * ys[k + 1] + (u3 - u2) * h * m[k + 1])
    out = np.where(t <= xs[0], ys[0], np.where(t >= xs[-1], ys[-1], out))
    return out.astype(np.float32)


def apply_curve(values: torch.Tensor, curve: dict[str, Any], size: int = 256) -> torch.Tensor:
    """``values`` (0..1) mapped through the curve, linearly between its ``size`` samples."""
    lut = torch.from_numpy(curve_lut(curve, size)).to(values.device, values.dtype)
    pos = values.clamp(0, 1) * (size - 1)
    lo = pos.floor().long().clamp(max=size - 2)
    frac = pos - lo
    return lut[lo] * (1 - frac) + lut[lo + 1] * frac


def histogram(values: torch.Tensor, bins: int = 256) -> list[int]:
    """Counts of ``values`` (0..1) in ``bins`` levels; ``v`` counts in level ``⌊(bins − 1)·v⌋``
    (as an 8-bit conversion truncates)."""
    levels = (values.detach().float().clamp(0, 1) * (bins - 1)).floor().long().reshape(-1)
    return torch.bincount(levels, minlength=bins).tolist()
