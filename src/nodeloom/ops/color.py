"""Colour spaces and colour distances on whole arrays.

Conversions sRGB ↔ linear RGB ↔ CIE XYZ ↔ CIELAB (D65, 2°) and sRGB ↔ HSV; distances in RGB
(Euclidean, Manhattan), HSV (weighted, hue wrap-around) and CIELAB (ΔE76, ΔE94, CMC l:c,
CIEDE2000 — those live in :mod:`nodeloom.ops.delta_e` and are re-exported here). Every
function takes numpy arrays or torch tensors with channels last and returns the same kind.
``precision="exact"`` computes in float64, ``"fast"`` in float32; ``device="auto"`` uses CUDA
when present. No nodes and no graph here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from nodeloom.errors import ValidationError
from nodeloom.ops._arrays import Array, as_tensor, check_channels, like
from nodeloom.ops.delta_e import delta_e_76, delta_e_94, delta_e_2000, delta_e_cmc

__all__ = [
    "D65_WHITE",
    "METHODS",
    "color_distance",
    "delta_e_2000",
    "delta_e_76",
    "delta_e_94",
    "delta_e_cmc",
    "hsv_distance",
    "hsv_to_rgb",
    "lab_to_rgb",
    "lab_to_xyz",
    "linear_to_srgb",
    "linear_rgb_to_xyz",
    "rgb_euclidean",
    "rgb_manhattan",
    "rgb_to_hsv",
    "rgb_to_lab",
    "srgb_to_linear",
    "xyz_to_lab",
    "xyz_to_linear_rgb",
]

# sRGB primaries with a D65 white (IEC 61966-2-1), linear RGB -> XYZ, Y of white = 1.
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
D65_WHITE = (0.95047, 1.0, 1.08883)
_EPS = (6.0 / 29.0) ** 3
_KAPPA_INV = 1.0 / (3.0 * (6.0 / 29.0) ** 2)

#: Names accepted by :func:`color_distance` (inputs are sRGB 0..1).
METHODS = (
    "ciede2000",
    "cie94_graphic_arts",
    "cie94_textiles",
    "cmc_2_1",
    "cmc_1_1",
    "cie76",
    "rgb_euclidean",
    "rgb_manhattan",
    "hsv_weighted",
)


def srgb_to_linear(rgb: Array, precision: str | None = None, device: str | None = None) -> Array:
    """Undo the sRGB transfer curve (0..1 in, linear light 0..1 out).

    Args:
        rgb: array of any shape with sRGB values.
        precision: ``None`` keeps float32/float64, ``"exact"``, ``"fast"``.
        device: ``None``, ``"auto"`` or a torch device.

    Returns:
        Linear RGB, same shape and array kind.
    """
    c = as_tensor(rgb, precision, device)
    out = torch.where(c <= 0.04045, c / 12.92, ((c.clamp(min=0.0) + 0.055) / 1.055) ** 2.4)
    return like(out, rgb)


def linear_to_srgb(lin: Array, precision: str | None = None, device: str | None = None) -> Array:
    """Apply the sRGB transfer curve (linear 0..1 in, sRGB 0..1 out).

    Args:
        lin: linear RGB values.
        precision: see :func:`srgb_to_linear`.
        device: see :func:`srgb_to_linear`.

    Returns:
        sRGB values, same shape and array kind.
    """
    c = as_tensor(lin, precision, device)
    # The break point is 0.04045 / 12.92 (not the rounded 0.0031308) so this is the exact
    # inverse of srgb_to_linear on both sides of the joint.
    out = torch.where(c <= 0.04045 / 12.92, c * 12.92, 1.055 * c.clamp(min=0.0) ** (1.0 / 2.4) - 0.055)
    return like(out, lin)


def _matmul3(x: torch.Tensor, m: np.ndarray) -> torch.Tensor:
    return x @ torch.as_tensor(m.T, dtype=x.dtype, device=x.device)


def linear_rgb_to_xyz(lin: Array, precision: str | None = None, device: str | None = None) -> Array:
    """Linear sRGB → CIE XYZ (D65, Y of white = 1). Channels last.

    Raises:
        ValidationError: the last axis is not 3.
    """
    check_channels("lin", lin)
    return like(_matmul3(as_tensor(lin, precision, device), _RGB_TO_XYZ), lin)


def xyz_to_linear_rgb(xyz: Array, precision: str | None = None, device: str | None = None) -> Array:
    """CIE XYZ (D65) → linear sRGB, unclipped. Channels last.

    Raises:
        ValidationError: the last axis is not 3.
    """
    check_channels("xyz", xyz)
    return like(_matmul3(as_tensor(xyz, precision, device), _XYZ_TO_RGB), xyz)


def xyz_to_lab(
    xyz: Array,
    white: Sequence[float] = D65_WHITE,
    precision: str | None = None,
    device: str | None = None,
) -> Array:
    """CIE XYZ → CIELAB relative to ``white`` (default D65, 2° observer).

    Raises:
        ValidationError: the last axis is not 3.
    """
    check_channels("xyz", xyz)
    t = as_tensor(xyz, precision, device)
    t = t / torch.tensor(tuple(white), dtype=t.dtype, device=t.device)
    f = torch.where(t > _EPS, t.clamp(min=_EPS) ** (1.0 / 3.0), t * _KAPPA_INV + 4.0 / 29.0)
    fx, fy, fz = f.unbind(-1)
    lab = torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-1)
    return like(lab, xyz)


def lab_to_xyz(
    lab: Array,
    white: Sequence[float] = D65_WHITE,
    precision: str | None = None,
    device: str | None = None,
) -> Array:
    """CIELAB → CIE XYZ relative to ``white`` (inverse of :func:`xyz_to_lab`).

    Raises:
        ValidationError: the last axis is not 3.
    """
    check_channels("lab", lab)
    L, a, b = as_tensor(lab, precision, device).unbind(-1)
    fy = (L + 16.0) / 116.0
    f = torch.stack((fy + a / 500.0, fy, fy - b / 200.0), dim=-1)
    t = torch.where(f > 6.0 / 29.0, f**3, (f - 4.0 / 29.0) / _KAPPA_INV)
    w = torch.tensor(tuple(white), dtype=t.dtype, device=t.device)
    return like(t * w, lab)


def rgb_to_lab(rgb: Array, precision: str | None = None, device: str | None = None) -> Array:
    """sRGB (0..1) → CIELAB D65.

    Args:
        rgb: ``[..., 3]`` sRGB values.
        precision: see :func:`srgb_to_linear`.
        device: see :func:`srgb_to_linear`.

    Returns:
        ``[..., 3]`` L* a* b*.

    Raises:
        ValidationError: the last axis is not 3.
    """
    check_channels("rgb", rgb)
    t = as_tensor(rgb, precision, device)
    return like(xyz_to_lab(linear_rgb_to_xyz(srgb_to_linear(t))), rgb)


def lab_to_rgb(lab: Array, precision: str | None = None, device: str | None = None) -> Array:
    """CIELAB D65 → sRGB (unclipped: out-of-gamut colours fall outside 0..1).

    Raises:
        ValidationError: the last axis is not 3.
    """
    check_channels("lab", lab)
    t = as_tensor(lab, precision, device)
    return like(linear_to_srgb(xyz_to_linear_rgb(lab_to_xyz(t))), lab)


def rgb_to_hsv(rgb: Array, precision: str | None = None, device: str | None = None) -> Array:
    """RGB (0..1) → HSV with hue in degrees [0, 360), saturation and value in 0..1.

    Grey pixels (max = min) get hue 0 and saturation 0.

    Raises:
        ValidationError: the last axis is not 3.
    """
    check_channels("rgb", rgb)
    t = as_tensor(rgb, precision, device)
    r, g, b = t.unbind(-1)
    v, _ = t.max(dim=-1)
    mn, _ = t.min(dim=-1)
    delta = v - mn
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    h = torch.where(
        v == r,
        torch.remainder((g - b) / safe, 6.0),
        torch.where(v == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0),
    )
    h = torch.where(delta > 0, h * 60.0, torch.zeros_like(h))
    s = torch.where(v > 0, delta / torch.where(v > 0, v, torch.ones_like(v)), torch.zeros_like(v))
    return like(torch.stack((h, s, v), dim=-1), rgb)


def hsv_to_rgb(hsv: Array, precision: str | None = None, device: str | None = None) -> Array:
    """HSV (hue in degrees, s and v in 0..1) → RGB 0..1.

    Raises:
        ValidationError: the last axis is not 3.
    """
    check_channels("hsv", hsv)
    h, s, v = as_tensor(hsv, precision, device).unbind(-1)
    hp = torch.remainder(h, 360.0) / 60.0
    k = torch.stack((hp + 5.0, hp + 3.0, hp + 1.0), dim=-1).remainder(6.0)
    # Each channel follows v - v*s*clamp(min(k, 4-k), 0, 1), the standard piecewise-linear form.
    ramp = torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)
    out = v.unsqueeze(-1) - (v * s).unsqueeze(-1) * ramp
    return like(out, hsv)


def rgb_euclidean(rgb1: Array, rgb2: Array, precision: str | None = None, device: str | None = None) -> Array:
    """Euclidean distance between RGB triples (units of the input; 0..√3 for 0..1 input).

    Raises:
        ValidationError: the last axis is not 3.
    """
    check_channels("rgb1", rgb1)
    check_channels("rgb2", rgb2)
    d = as_tensor(rgb1, precision, device) - as_tensor(rgb2, precision, device)
    return like(torch.linalg.vector_norm(d, dim=-1), rgb1)


def rgb_manhattan(rgb1: Array, rgb2: Array, precision: str | None = None, device: str | None = None) -> Array:
    """Manhattan (L1) distance between RGB triples.

    Raises:
        ValidationError: the last axis is not 3.
    """
    check_channels("rgb1", rgb1)
    check_channels("rgb2", rgb2)
    d = as_tensor(rgb1, precision, device) - as_tensor(rgb2, precision, device)
    return like(d.abs().sum(dim=-1), rgb1)


def hsv_distance(
    hsv1: Array,
    hsv2: Array,
    weights: Sequence[float] = (1.0, 1.0, 1.0),
    precision: str | None = None,
    device: str | None = None,
) -> Array:
    """Weighted HSV distance with hue wrap-around.

    The hue term is ``min(|Δh|, 360 − |Δh|) / 180`` (0..1), so 350° and 10° are 20° apart;
    saturation and value differences are used as they are (0..1). The result is
    ``sqrt(wh·Δh² + ws·Δs² + wv·Δv²)``.

    Args:
        hsv1, hsv2: ``[..., 3]`` HSV with hue in degrees.
        weights: ``(wh, ws, wv)``, each ≥ 0.

    Returns:
        The distance, shape ``[...]``.

    Raises:
        ValidationError: bad shape or negative weights.
    """
    check_channels("hsv1", hsv1)
    check_channels("hsv2", hsv2)
    if len(weights) != 3 or any(w < 0 for w in weights):
        raise ValidationError(f"`weights` must be three numbers ≥ 0 (hue, saturation, value), got {tuple(weights)}")
    a = as_tensor(hsv1, precision, device)
    b = as_tensor(hsv2, precision, device)
    dh = torch.remainder(a[..., 0] - b[..., 0], 360.0)
    dh = torch.minimum(dh, 360.0 - dh) / 180.0
    ds = a[..., 1] - b[..., 1]
    dv = a[..., 2] - b[..., 2]
    wh, ws, wv = (float(w) for w in weights)
    return like(torch.sqrt(wh * dh * dh + ws * ds * ds + wv * dv * dv), hsv1)


def color_distance(
    rgb1: Array,
    rgb2: Array,
    method: str = "ciede2000",
    *,
    hsv_weights: Sequence[float] = (1.0, 1.0, 1.0),
    precision: str | None = None,
    device: str | None = None,
) -> Array:
    """Distance between two sRGB arrays (0..1, channels last) by a named method.

    ``rgb1`` is the reference for the asymmetric methods (CIE94, CMC). Shapes broadcast.

    Args:
        rgb1: reference sRGB values ``[..., 3]``.
        rgb2: sample sRGB values ``[..., 3]``.
        method: one of :data:`METHODS`.
        hsv_weights: weights for ``"hsv_weighted"``.
        precision: ``"exact"`` (float64), ``"fast"`` (float32) or ``None`` (input dtype).
        device: ``None``, ``"auto"`` or a torch device.

    Returns:
        Distances, shape ``[...]``, the array kind of ``rgb1``.

    Raises:
        ValidationError: unknown method or bad shapes.
    """
    if method not in METHODS:
        raise ValidationError(f"`method` must be one of {list(METHODS)}, got {method!r}")
    a = as_tensor(rgb1, precision, device)
    b = as_tensor(rgb2, precision, device).to(a.dtype)
    if method == "rgb_euclidean":
        return like(rgb_euclidean(a, b), rgb1)
    if method == "rgb_manhattan":
        return like(rgb_manhattan(a, b), rgb1)
    if method == "hsv_weighted":
        return like(hsv_distance(rgb_to_hsv(a), rgb_to_hsv(b), hsv_weights), rgb1)
    la, lb = rgb_to_lab(a), rgb_to_lab(b)
    if method == "cie76":
        out = delta_e_76(la, lb)
    elif method.startswith("cie94_"):
        out = delta_e_94(la, lb, application=method[len("cie94_"):])
    elif method.startswith("cmc_"):
        lv, cv = method[len("cmc_"):].split("_")
        out = delta_e_cmc(la, lb, l=float(lv), c=float(cv))
    else:
        out = delta_e_2000(la, lb)
    return like(out, rgb1)

