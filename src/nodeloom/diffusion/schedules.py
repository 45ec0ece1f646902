"""Noise levels: the discrete DDPM schedule of SD models and ComfyUI's named sigma schedulers.

A model is sampled in "sigma space" (``x = x0 + sigma * eps``). :class:`ModelSampling` holds the
training schedule (1000 scaled-linear betas for every SD family) and converts between sigmas and
(fractional) timesteps; :func:`calculate_sigmas` turns a scheduler name into the descending list
of sigmas a sampler walks, ending in 0. Pure torch/numpy, no models.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from nodeloom.errors import ValidationError, require

__all__ = [
    "SCHEDULER_NAMES", "ModelSampling", "beta_sigmas", "calculate_sigmas", "denoise_sigmas", "exponential_sigmas",
    "karras_sigmas", "laplace_sigmas", "polyexponential_sigmas", "vp_sigmas",
    "zero_terminal_snr_sigmas",
]


def zero_terminal_snr_sigmas(sigmas: torch.Tensor) -> torch.Tensor:
    """The schedule rescaled to zero terminal SNR (Lin et al. 2023), as ComfyUI's ``zsnr`` does:
    √ᾱ shifted so the last step is 0 and scaled so the first keeps its value; the last ᾱ is then
    set to 4.897e-08 (ComfyUI's constant), so the largest σ is finite (about 4519)."""
    root = (1.0 / (sigmas * sigmas + 1.0)).sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * (first / (first - last))
    alphas = root ** 2
    alphas[-1] = 4.8973451890853435e-08
    return ((1 - alphas) / alphas) ** 0.5


class ModelSampling:
    """The discrete schedule of an SD model.

    Args:
        beta_start / beta_end / steps: the scaled-linear beta schedule SD models are trained on.
        prediction_type: ``"epsilon"``, ``"v_prediction"``, ``"x0"`` or ``"img_to_img"`` (ComfyUI's
            IMG_TO_IMG, Lotus: x0, with the latent given to the UNet unscaled).
        zsnr: rescale the schedule to zero terminal SNR (:func:`zero_terminal_snr_sigmas`).
    """

    def __init__(self, beta_start: float = 0.00085, beta_end: float = 0.012, steps: int = 1000,
                 prediction_type: str = "epsilon", zsnr: bool = False) -> None:
        # float32 like the diffusers schedulers, so both walk bit-identical noise levels
        betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, steps, dtype=torch.float32) ** 2
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        self.sigmas = ((1 - alphas_cumprod) / alphas_cumprod).sqrt()
        if zsnr:
            self.sigmas = zero_terminal_snr_sigmas(self.sigmas)
            alphas_cumprod = 1.0 / (self.sigmas ** 2 + 1.0)
        self.alphas_cumprod = alphas_cumprod
        self.zsnr = zsnr
        self.log_sigmas = self.sigmas.log()
        self.prediction_type = prediction_type

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def timestep(self, sigma: torch.Tensor | float) -> torch.Tensor:
        """The fractional timestep whose log-sigma interpolates to ``sigma``."""
        log_sigma = torch.as_tensor(sigma, dtype=torch.float32).log()
        ls = self.log_sigmas.to(log_sigma.device)
        dists = log_sigma - ls[:, None] if log_sigma.ndim else log_sigma - ls
        low = (dists >= 0).cumsum(dim=0).argmax(dim=0).clamp(max=ls.shape[0] - 2)
        high = low + 1
        w = ((ls[low] - log_sigma) / (ls[low] - ls[high])).clamp(0, 1)
        return (1 - w) * low + w * high

    def sigma(self, timestep: torch.Tensor | float) -> torch.Tensor:
        """Sigma at a (fractional) timestep, interpolating log-sigma."""
        t = torch.as_tensor(timestep, dtype=torch.float32).clamp(0, len(self.sigmas) - 1)
        low = t.floor().long()
        high = t.ceil().long()
        w = t - low
        return ((1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]).exp()

    def percent_to_sigma(self, percent: float) -> float:
        """ComfyUI's start/end percent → sigma (0 % is the noisiest end)."""
        if percent <= 0.0:
            return 999999999.9
        if percent >= 1.0:
            return 0.0
        return float(self.sigma(torch.tensor((1.0 - percent) * 999.0)))


def _normal(ms: ModelSampling, steps: int, sgm: bool = False) -> torch.Tensor:
    start, end = float(ms.timestep(ms.sigma_max)), float(ms.timestep(ms.sigma_min))
    if sgm:
        ts = torch.linspace(start, end, steps + 1)[:-1]
    else:
        ts = torch.linspace(start, end, steps)
    return torch.cat([ms.sigma(ts), torch.zeros(1)])


def _simple(ms: ModelSampling, steps: int) -> torch.Tensor:
    stride = len(ms.sigmas) / steps
    sig = [float(ms.sigmas[-(1 + int(x * stride))]) for x in range(steps)]
    return torch.tensor(sig + [0.0])


def _ddim_uniform(ms: ModelSampling, steps: int) -> torch.Tensor:
    stride = max(len(ms.sigmas) // steps, 1)
    sig = [float(ms.sigmas[x]) for x in range(1, len(ms.sigmas), stride)]
    return torch.tensor(([0.0] + sig)[::-1])


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022): ``steps`` sigmas evenly spaced in σ^(1/ρ) from σ_max to σ_min, then 0."""
    ramp = torch.linspace(0, 1, steps)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return torch.cat([(hi + ramp * (lo - hi)) ** rho, torch.zeros(1)])


def exponential_sigmas(steps: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """``steps`` sigmas evenly spaced in log σ from σ_max to σ_min, then 0."""
    sig = torch.linspace(math.log(sigma_max), math.log(sigma_min), steps).exp()
    return torch.cat([sig, torch.zeros(1)])


def polyexponential_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> torch.Tensor:
    """log σ a polynomial of degree ``rho`` in the step fraction, from σ_max to σ_min, then 0."""
    ramp = torch.linspace(1, 0, steps) ** rho
    sig = torch.exp(ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min))
    return torch.cat([sig, torch.zeros(1)])


def laplace_sigmas(steps: int, sigma_min: float, sigma_max: float, mu: float = 0.0, beta: float = 0.5) -> torch.Tensor:
    """Log σ spaced by the Laplace quantile function (Hang et al. 2024), clamped to [σ_min, σ_max].

    As in k-diffusion and ComfyUI, no 0 is appended: the schedule ends at its smallest sigma.
    """
    x = torch.linspace(0, 1, steps)
    log_sigma = mu - beta * torch.sign(0.5 - x) * torch.log(1 - 2 * torch.abs(0.5 - x) + 1e-5)
    return torch.clamp(torch.exp(log_sigma), min=sigma_min, max=sigma_max)


def vp_sigmas(steps: int, beta_d: float = 19.9, beta_min: float = 0.1, eps_s: float = 1e-3) -> torch.Tensor:
    """The continuous variance-preserving schedule: σ(t) = √(exp(β_d t²/2 + β_min t) − 1), t from 1 to ε_s, then 0."""
    t = torch.linspace(1, eps_s, steps)
    return torch.cat([torch.sqrt(torch.special.expm1(beta_d * t ** 2 / 2 + beta_min * t)), torch.zeros(1)])


def _karras(ms: ModelSampling, steps: int) -> torch.Tensor:
    return karras_sigmas(steps, ms.sigma_min, ms.sigma_max)


def _exponential(ms: ModelSampling, steps: int) -> torch.Tensor:
    return exponential_sigmas(steps, ms.sigma_min, ms.sigma_max)


def beta_sigmas(ms: ModelSampling, steps: int, alpha: float = 0.6, beta: float = 0.6) -> torch.Tensor:
    """The "beta" scheduler with its shape parameters (timesteps at Beta(α, β) quantiles)."""
    return _beta(ms, steps, alpha, beta)


def _beta(ms: ModelSampling, steps: int, alpha: float = 0.6, beta: float = 0.6) -> torch.Tensor:
    beta_dist = require("scipy.stats", "diffusion").beta

    total = len(ms.sigmas) - 1
    ts = np.rint(beta_dist.ppf(1 - np.linspace(0, 1, steps, endpoint=False), alpha, beta) * total)
    sig: list[float] = []
    last = -1.0
    for t in ts:
        if t != last:
            sig.append(float(ms.sigmas[int(t)]))
        last = t
    return torch.tensor(sig + [0.0])


def _linear_quadratic(ms: ModelSampling, steps: int, threshold: float = 0.025) -> torch.Tensor:
    """Mochi's schedule in noise fraction u (σ = (1 − u)·σ_max): u rises linearly to ``threshold``
    over the first half of the steps, then along the parabola that continues that line with the
    same slope and reaches 1 at the end."""
    if steps == 1:
        return torch.tensor([ms.sigma_max, 0.0])
    lin = steps // 2
    slope = threshold / lin
    quad = (lin - threshold * steps) / (lin * (steps - lin) ** 2)
    u = [i * slope if i < lin else threshold + slope * (i - lin) + quad * (i - lin) ** 2 for i in range(steps)]
    return (1.0 - torch.tensor(u + [1.0], dtype=torch.float64)).float() * ms.sigma_max


def _kl_optimal(ms: ModelSampling, steps: int) -> torch.Tensor:
    idx = torch.arange(steps, dtype=torch.float32) / max(steps - 1, 1)
    sig = torch.zeros(steps + 1)
    sig[:-1] = (idx * math.atan(ms.sigma_min) + (1 - idx) * math.atan(ms.sigma_max)).tan()
    return sig


_SCHEDULERS: dict[str, Callable[[ModelSampling, int], torch.Tensor]] = {
    "simple": _simple,
    "sgm_uniform": lambda ms, n: _normal(ms, n, sgm=True),
    "karras": _karras,
    "exponential": _exponential,
    "ddim_uniform": _ddim_uniform,
    "beta": _beta,
    "normal": _normal,
    "linear_quadratic": _linear_quadratic,
    "kl_optimal": _kl_optimal,
}
SCHEDULER_NAMES = tuple(_SCHEDULERS)


def calculate_sigmas(ms: ModelSampling, scheduler: str, steps: int) -> torch.Tensor:
    """Descending sigmas (``steps + 1`` values ending in 0) for a named scheduler.

    Raises:
        ValidationError: an unknown scheduler name or ``steps`` < 1.
    """
    if scheduler not in _SCHEDULERS:
        raise ValidationError(f"`scheduler` '{scheduler}' is not supported; supported: {list(SCHEDULER_NAMES)}")
    if steps < 1:
        raise ValidationError(f"`steps` must be ≥ 1, got {steps}")
    return _SCHEDULERS[scheduler](ms, steps).float()


def denoise_sigmas(ms: ModelSampling, scheduler: str, steps: int, denoise: float = 1.0,
                   discard_penultimate: bool = False) -> torch.Tensor:
    """ComfyUI's KSampler schedule: ``denoise < 1`` keeps the last ``steps`` of a longer schedule.

    Returns:
        The sigmas; empty when ``denoise`` ≤ 0 (nothing to do).
    """
    if denoise is None or denoise > 0.9999:
        total = steps + 1 if discard_penultimate else steps
        sig = calculate_sigmas(ms, scheduler, total)
    elif denoise <= 0.0:
        return torch.zeros(0)
    else:
        total = int(steps / denoise)
        sig = calculate_sigmas(ms, scheduler, total + (1 if discard_penultimate else 0))
        sig = sig[-(steps + 1 + (1 if discard_penultimate else 0)):]
    if discard_penultimate:
        sig = torch.cat([sig[:-2], sig[-1:]])
    return sig
