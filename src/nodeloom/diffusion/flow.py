"""Flow-matching ("CONST") model sampling: the noise levels of rectified-flow transformers.

A flow model sees ``x_σ = σ·noise + (1 − σ)·x0`` for σ in [0, 1] and predicts the velocity
``v = noise − x0``, so the clean estimate is ``x − σ·v``. :class:`FlowSampling` is the shifted
schedule of SD3, AuraFlow, Z-Image, Lumina 2 and Qwen-Image (``σ = s·t / (1 + (s − 1)·t)``, with
the timestep multiplier the model family uses); :class:`FluxSampling` is Flux's exponential shift.
Both offer the interface the schedulers read (``sigmas``, ``sigma_min``/``sigma_max``,
``timestep``, ``sigma``, ``percent_to_sigma``) and ComfyUI's noise scaling. Pure torch, no models.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["FlowSampling", "accelerator_dtype", "FluxSampling", "flux2_mu", "flux2_sigmas", "flux_resolution_shift", "noise_scaling", "scale_of_noise",
           "time_snr_shift"]


def time_snr_shift(shift: float, t: torch.Tensor | float) -> torch.Tensor | float:
    """SD3's timestep shift: ``shift·t / (1 + (shift − 1)·t)`` (identity at shift 1)."""
    if shift == 1.0:
        return t
    return shift * t / (1 + (shift - 1) * t)


def _flux_time_shift(mu: float, t: torch.Tensor | float) -> torch.Tensor | float:
    """Flux's shift ``e^μ / (e^μ + (1/t − 1))``."""
    return math.exp(mu) / (math.exp(mu) + (1 / t - 1))


def flux_resolution_shift(width: int, height: int, max_shift: float = 1.15, base_shift: float = 0.5) -> float:
    """ModelSamplingFlux's μ for an image size: linear in the number of 2×2 latent patches, from
    ``base_shift`` at 256 patches to ``max_shift`` at 4096."""
    slope = (max_shift - base_shift) / (4096 - 256)
    return (width * height / (8 * 8 * 2 * 2)) * slope + (base_shift - slope * 256)


def flux2_mu(tokens: int, steps: int) -> float:
    """Flux.2's empirical μ (Black Forest Labs' fit): linear in the image's token count, and for
    up to 4300 tokens also in the step count, interpolating its fits at 10 and 200 steps."""
    at_200 = 0.00016927 * tokens + 0.45666666
    if tokens > 4300:
        return at_200
    at_10 = 8.73809524e-05 * tokens + 1.89833333
    slope = (at_200 - at_10) / 190.0
    return slope * steps + (at_200 - 200.0 * slope)


def flux2_sigmas(steps: int, tokens: int) -> torch.Tensor:
    """Flux2Scheduler's sigmas: ``steps + 1`` linear times from 1 to 0 through Flux's shift at
    :func:`flux2_mu` (ends at exactly 0)."""
    t = torch.linspace(1, 0, steps + 1)
    mu = math.exp(flux2_mu(tokens, steps))
    return mu / (mu + (1 / t - 1))


class _Flow:
    """What every flow schedule shares: σ in (0, 1], velocity prediction, linear noising."""

    prediction_type = "flow"
    is_flow = True
    sigmas: torch.Tensor

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def _shifted(self, t: torch.Tensor | float) -> torch.Tensor | float:
        raise NotImplementedError

    def percent_to_sigma(self, percent: float) -> float:
        """ComfyUI's start/end percent → sigma (0 % is pure noise, σ = 1)."""
        if percent <= 0.0:
            return 1.0
        if percent >= 1.0:
            return 0.0
        return float(self._shifted(1.0 - percent))


class FlowSampling(_Flow):
    """SD3-style shifted flow schedule (ModelSamplingSD3 / ModelSamplingAuraFlow).

    Args:
        shift: the timestep shift (SD3 3.0, AuraFlow/Z-Image 1.73–3, Qwen-Image 3.1).
        multiplier: the timestep scale the model's embedding expects (1000 for SD3, 1 for AuraFlow-like).
        steps: how many discrete levels the ``simple``/``beta``/``ddim_uniform`` schedulers index.
    """

    def __init__(self, shift: float = 1.0, multiplier: float = 1000.0, steps: int = 1000) -> None:
        self.shift = float(shift)
        self.multiplier = float(multiplier)
        self.sigmas = self.sigma(torch.arange(1, steps + 1, dtype=torch.float32) / steps * self.multiplier)

    def _shifted(self, t: torch.Tensor | float) -> torch.Tensor | float:
        return time_snr_shift(self.shift, t)

    def timestep(self, sigma: torch.Tensor | float) -> torch.Tensor:
        return torch.as_tensor(sigma, dtype=torch.float32) * self.multiplier

    def sigma(self, timestep: torch.Tensor | float) -> torch.Tensor:
        return torch.as_tensor(time_snr_shift(self.shift, torch.as_tensor(timestep, dtype=torch.float32)
                                              / self.multiplier), dtype=torch.float32)


class FluxSampling(_Flow):
    """Flux's flow schedule (ModelSamplingFlux): σ(t) = e^μ / (e^μ + 1/t − 1), μ = ``shift``."""

    def __init__(self, shift: float = 1.15, steps: int = 10000) -> None:
        self.shift = float(shift)
        self.multiplier = 1.0
        self.sigmas = self.sigma(torch.arange(1, steps + 1, dtype=torch.float32) / steps)

    def _shifted(self, t: torch.Tensor | float) -> torch.Tensor | float:
        return _flux_time_shift(self.shift, t)

    def timestep(self, sigma: torch.Tensor | float) -> torch.Tensor:
        return torch.as_tensor(sigma, dtype=torch.float32)

    def sigma(self, timestep: torch.Tensor | float) -> torch.Tensor:
        return torch.as_tensor(_flux_time_shift(self.shift, torch.as_tensor(timestep, dtype=torch.float32)),
                               dtype=torch.float32)


def noise_scaling(sampling: object, sigma: torch.Tensor | float, noise: torch.Tensor, latent: torch.Tensor,
                  max_denoise: bool = False) -> torch.Tensor:
    """The noised latent at ``sigma`` as ComfyUI forms it: ``σ·noise + (1 − σ)·latent`` for flow
    models; ``latent + σ·noise`` (or ``√(1 + σ²)·noise`` at full denoise) for the SD families. A
    schedule carrying a ``noise_scale`` (ModelNoiseScale: the model's absolute training noise scale)
    multiplies the noise by it first."""
    if scale_of_noise(sampling) != 1.0:
        noise = noise * scale_of_noise(sampling)
    if getattr(sampling, "is_flow", False):
        return sigma * noise + (1.0 - sigma) * latent
    scale = math.sqrt(1.0 + float(sigma) ** 2) if max_denoise else sigma
    return latent + noise * scale


def scale_of_noise(sampling: object) -> float:
    """The absolute noise scale a schedule samples with (ModelNoiseScale; 1 unless set)."""
    return float(getattr(sampling, "noise_scale", 1.0))


def accelerator_dtype(manager: Any) -> Any:
    """The dtype flow transformers and LLM encoders run in: bfloat16 on CUDA (they overflow in
    fp16; untested here, no GPU), None (the manager's float32) on the CPU."""
    if manager is not None and manager.device.type == "cuda":  # pragma: no cover - no GPU in CI
        return torch.bfloat16
    return None
