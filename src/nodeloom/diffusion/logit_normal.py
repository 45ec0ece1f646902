"""Ideogram 4's reference noise schedule (the Ideogram4Scheduler node): steps spaced evenly in the
quantiles of a logit-normal distribution over time, shifted with the image's resolution.
Model code: imports no node class, engine or adapter.
"""

from __future__ import annotations

import math

import torch

__all__ = ["LOGSNR_RANGE", "ideogram4_sigmas"]

#: the log-SNR window the reference schedule is clamped to (min, max)
LOGSNR_RANGE = (-15.0, 18.0)
#: the resolution the schedule's ``mu`` refers to
_REFERENCE_PIXELS = 512 * 512


def ideogram4_sigmas(steps: int, width: int, height: int, mu: float, std: float) -> torch.Tensor:
    """``steps + 1`` descending sigmas ending at 0.

    With m = ``mu`` + ½·ln(w·h / 512²) and u_i = i / ``steps``, the reference time is
    t_i = 1 − sigmoid(m + ``std``·Φ⁻¹(u_i)), clamped to the times of log-SNR 18 … −15
    (1 / (1 + e^{±log-SNR/2})); σ_i = 1 − t_i read from u = 1 down, the last forced to 0.
    """
    if steps < 1:
        raise ValueError(f"`steps` must be >= 1, got {steps}")
    mean = float(mu) + 0.5 * math.log((int(width) * int(height)) / _REFERENCE_PIXELS)
    u = torch.linspace(0.0, 1.0, int(steps) + 1, dtype=torch.float64)
    t = 1.0 - torch.special.expit(mean + float(std) * torch.special.ndtri(u))
    low, high = LOGSNR_RANGE
    t = t.clamp(1.0 / (1.0 + math.exp(0.5 * high)), 1.0 / (1.0 + math.exp(0.5 * low)))
    sigmas = (1.0 - t).flip(0)
    sigmas[-1] = 0.0
    return sigmas.to(torch.float32)
