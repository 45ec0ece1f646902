"""Align Your Steps schedules (NVIDIA's optimised 10-step noise levels for SD 1.x, SDXL and Stable
Video Diffusion, published on the project's how-to page), stretched to other step counts by
log-linear interpolation, with ComfyUI's denoise rule. Pure numpy/torch, no models."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["AYS_NOISE_LEVELS", "ays_sigmas", "loglinear_interp"]

#: the published 10-step noise levels (σ, highest first), per model type
AYS_NOISE_LEVELS: dict[str, list[float]] = {
    "SD1": [14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092, 0.9642583904,
            0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582],
    "SDXL": [14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769, 1.3405244945, 0.8620721141, 0.5550693289,
             0.3798540708, 0.2332364134, 0.1114188177, 0.0291671582],
    "SVD": [700.00, 54.5, 15.886, 7.977, 4.248, 1.789, 0.981, 0.403, 0.173, 0.034, 0.002],
}


def loglinear_interp(levels: list[float], count: int) -> np.ndarray:
    """``count`` decreasing values whose logarithms interpolate ``levels``' linearly (ends kept)."""
    log_rising = np.log(np.asarray(levels, dtype=np.float64)[::-1])
    rising = np.interp(np.linspace(0, 1, count), np.linspace(0, 1, len(levels)), log_rising)
    return np.exp(rising)[::-1].copy()


def ays_sigmas(model_type: str, steps: int, denoise: float) -> torch.Tensor:
    """``steps`` steps of the schedule (the last σ set to 0); below ``denoise`` 1 only the last
    ``round(steps·denoise)`` of them; ``denoise`` 0 gives no sigmas."""
    total = steps
    if denoise < 1.0:
        if denoise <= 0.0:
            return torch.FloatTensor([])
        total = round(steps * denoise)
    levels = AYS_NOISE_LEVELS[model_type]
    sigmas = np.asarray(levels if steps + 1 == len(levels) else loglinear_interp(levels, steps + 1), dtype=np.float64)
    sigmas = sigmas[-(total + 1):].copy()
    sigmas[-1] = 0
    return torch.FloatTensor(sigmas)
