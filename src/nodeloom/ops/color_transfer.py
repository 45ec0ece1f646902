"""Colour transfer between images: Reinhard mean/spread matching and the Monge–Kantorovich
linear map in CIELAB, and per-channel histogram (quantile) matching in RGB.

Each method fits a transform from source pixels to reference pixels; the caller chooses which
source pixels (one frame, each frame, or all frames pooled) the transform is fitted on.
"""

from __future__ import annotations

from typing import Callable

import torch

from nodeloom.errors import ValidationError
from nodeloom.ops.color import lab_to_rgb, rgb_to_lab

__all__ = ["METHODS", "SOURCE_STATS", "transfer"]

METHODS = ("reinhard_lab", "mkl_lab", "histogram")
SOURCE_STATS = ("per_frame", "uniform", "target_frame")
_QUANTILES = 256
_EPS = 1e-6

Transform = Callable[[torch.Tensor], torch.Tensor]


def _reinhard(src: torch.Tensor, ref: torch.Tensor) -> Transform:
    mu_s, sd_s = src.mean(0), src.std(0, unbiased=False).clamp_min(_EPS)
    mu_r, sd_r = ref.mean(0), ref.std(0, unbiased=False)
    return lambda x: (x - mu_s) / sd_s * sd_r + mu_r


def _sqrtm(m: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(m)
    return vecs @ torch.diag(vals.clamp_min(0).sqrt()) @ vecs.T


def _mkl(src: torch.Tensor, ref: torch.Tensor) -> Transform:
    mu_s, mu_r = src.mean(0), ref.mean(0)
    eye = torch.eye(3, dtype=src.dtype) * _EPS
    cov_s = torch.cov((src - mu_s).T) + eye
    cov_r = torch.cov((ref - mu_r).T) + eye
    root_s = _sqrtm(cov_s)
    inv_root_s = torch.linalg.inv(root_s)
    t = inv_root_s @ _sqrtm(root_s @ cov_r @ root_s) @ inv_root_s
    return lambda x: (x - mu_s) @ t.T + mu_r


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear ``np.interp`` for increasing ``xp`` (ties collapsed by a tiny ramp)."""
    xp = xp + torch.arange(xp.numel(), dtype=xp.dtype) * 1e-9
    i = torch.searchsorted(xp, x.contiguous()).clamp(1, xp.numel() - 1)
    x0, x1, f0, f1 = xp[i - 1], xp[i], fp[i - 1], fp[i]
    w = ((x - x0) / (x1 - x0)).clamp(0, 1)
    return f0 + w * (f1 - f0)


def _histogram(src: torch.Tensor, ref: torch.Tensor) -> Transform:
    q = torch.linspace(0, 1, _QUANTILES, dtype=src.dtype)
    src_q = torch.quantile(_sample(src), q, dim=0)
    ref_q = torch.quantile(_sample(ref), q, dim=0)
    return lambda x: torch.stack([_interp(x[:, c], src_q[:, c], ref_q[:, c]) for c in range(3)], dim=1)


def _sample(pixels: torch.Tensor, limit: int = 1 << 22) -> torch.Tensor:
    """At most ``limit`` evenly spaced rows (torch.quantile's input size is bounded)."""
    step = max(1, pixels.shape[0] // limit + (pixels.shape[0] % limit > 0))
    return pixels[::step]


_FITS = {"reinhard_lab": _reinhard, "mkl_lab": _mkl, "histogram": _histogram}


def _space(method: str, rgb: torch.Tensor) -> torch.Tensor:
    return rgb if method == "histogram" else rgb_to_lab(rgb)


def _back(method: str, values: torch.Tensor) -> torch.Tensor:
    return values if method == "histogram" else lab_to_rgb(values)


def transfer(target: torch.Tensor, ref: torch.Tensor, method: str, source_stats: str, target_index: int = 0,
             strength: float = 1.0) -> torch.Tensor:
    """``target`` ``[B,H,W,C]`` with the colours of ``ref`` ``[R,H',W',C]``, blended by ``strength``.

    ``per_frame`` fits one transform per target frame (the histogram method pairs frame i with
    reference frame i when the reference has several), ``uniform`` one on all frames pooled,
    ``target_frame`` one on frame ``target_index`` (clipped); the latter two apply it to all.
    """
    if method not in _FITS:
        raise ValidationError(f"`method` must be one of {list(METHODS)}, got {method!r}")
    if source_stats not in SOURCE_STATS:
        raise ValidationError(f"`source_stats` must be one of {list(SOURCE_STATS)}, got {source_stats!r}")
    fit = _FITS[method]
    rgb = target[..., :3].double()
    src = _space(method, rgb.reshape(rgb.shape[0], -1, 3))
    ref_px = _space(method, ref[..., :3].double().reshape(ref.shape[0], -1, 3))
    if source_stats == "per_frame":
        pair = method == "histogram" and ref_px.shape[0] > 1
        frames = [fit(s, ref_px[min(i, ref_px.shape[0] - 1)] if pair else ref_px.reshape(-1, 3))(s)
                  for i, s in enumerate(src)]
        mapped = torch.stack(frames)
    else:
        base = src.reshape(-1, 3) if source_stats == "uniform" else src[min(max(target_index, 0), src.shape[0] - 1)]
        mapped = fit(base, ref_px.reshape(-1, 3))(src.reshape(-1, 3)).reshape(src.shape)
    out = _back(method, mapped).reshape(rgb.shape)
    out = (rgb + float(strength) * (out - rgb)).clamp(0, 1).to(target.dtype)
    return torch.cat([out, target[..., 3:]], dim=-1) if target.shape[-1] > 3 else out
