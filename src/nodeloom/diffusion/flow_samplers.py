"""The samplers whose update depends on the noise schedule, in their flow-matching (CONST) form.

On a flow model ``x_σ = (1 − σ)·x0 + σ·noise``: the ancestral samplers re-noise with the
rectified-flow step (``euler_ancestral``, ``dpm_2_ancestral``, ``dpmpp_2s_ancestral``), ``lcm``
re-noises as ``σ·n + (1 − σ)·x0``, and the exponential-integrator SDE and CFG++ samplers work on
the half-log-SNR ``λ = log((1 − σ)/σ)`` with ``α = 1 − σ`` (a first σ of 1 is moved to the 1e-4
percent point, where λ is finite) — ComfyUI's choices, written from the published rules. Same
signature as :mod:`nodeloom.diffusion.samplers`; the other samplers run unchanged on flow sigmas.
Pure torch.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from nodeloom.diffusion.samplers import BROWNIAN, Callback, Denoise, Noise, _ancestral, _d, _unguided, lcm
from nodeloom.errors import ValidationError

__all__ = ["FLOW_SAMPLERS", "FLOW_UNSUPPORTED", "flow_sampler"]


def _lam(sigma: torch.Tensor) -> torch.Tensor:
    return sigma.logit().neg()


def _lam_sigma(lam: torch.Tensor) -> torch.Tensor:
    return lam.neg().sigmoid()


def _offset_first(sigmas: torch.Tensor, top: float) -> torch.Tensor:
    """A first σ of 1 (λ = −∞) becomes ``top``, the model's σ at the 1e-4 percent point."""
    if len(sigmas) > 1 and sigmas[0] >= 1:
        sigmas = sigmas.clone()
        sigmas[0] = top
    return sigmas


def _rf_down(s: torch.Tensor, s_next: torch.Tensor, eta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """σ_down, the re-scaling α_next/α_down and the re-noise coefficient of a rectified-flow ancestral step."""
    s_down = s_next * (1 + (s_next / s - 1) * eta)
    a_next, a_down = 1 - s_next, 1 - s_down
    renoise = (s_next ** 2 - s_down ** 2 * a_next ** 2 / a_down ** 2) ** 0.5
    return s_down, a_next / a_down, renoise


def euler_ancestral_rf(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback,
                       eta: float = 1.0, s_noise: float = 1.0) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = den
        else:
            s_down, rescale, renoise = _rf_down(sigmas[i], sigmas[i + 1], eta)
            ratio = s_down / sigmas[i]
            x = ratio * x + (1 - ratio) * den
            if eta > 0:
                x = rescale * x + noise(x, sigmas[i], sigmas[i + 1]) * s_noise * renoise
        callback(i, x, den)
    return x


def dpm_2_ancestral_rf(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback,
                       eta: float = 1.0, s_noise: float = 1.0) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        s_down, rescale, renoise = _rf_down(sigmas[i], sigmas[i + 1], eta)
        d = _d(x, sigmas[i], den)
        if s_down == 0:
            x = x + d * (s_down - sigmas[i])
        else:
            s_mid = sigmas[i].log().lerp(s_down.log(), 0.5).exp()
            x2 = x + d * (s_mid - sigmas[i])
            x = x + _d(x2, s_mid, denoise(x2, s_mid)) * (s_down - sigmas[i])
            x = rescale * x + noise(x, sigmas[i], sigmas[i + 1]) * s_noise * renoise
        callback(i, x, den)
    return x


def dpmpp_2s_ancestral_rf(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback,
                          eta: float = 1.0, s_noise: float = 1.0) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        s_down, rescale, renoise = _rf_down(sigmas[i], sigmas[i + 1], eta)
        if sigmas[i + 1] == 0:
            x = x + _d(x, sigmas[i], den) * (s_down - sigmas[i])
        else:
            if sigmas[i] == 1.0:
                s_mid = torch.tensor(0.9999, dtype=sigmas.dtype, device=sigmas.device)
            else:
                lam_i, lam_down = ((1 - sigmas[i]) / sigmas[i]).log(), ((1 - s_down) / s_down).log()
                s_mid = 1 / ((lam_i + (lam_down - lam_i) / 2).exp() + 1)
            ratio = s_mid / sigmas[i]
            den2 = denoise(ratio * x + (1 - ratio) * den, s_mid)
            ratio = s_down / sigmas[i]
            x = ratio * x + (1 - ratio) * den2
        if sigmas[i + 1] > 0 and eta > 0:
            x = rescale * x + noise(x, sigmas[i], sigmas[i + 1]) * s_noise * renoise
        callback(i, x, den)
    return x


def dpmpp_sde_flow(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback,
                   eta: float = 1.0, r: float = 0.5, s_noise: float = 1.0, top: float = 0.9999) -> torch.Tensor:
    sigmas = _offset_first(sigmas, top)
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = den
        else:
            lam_s, lam_t = _lam(sigmas[i]), _lam(sigmas[i + 1])
            h = lam_t - lam_s
            lam_s1 = lam_s + r * h
            s_s1 = _lam_sigma(lam_s1)
            a_s, a_s1, a_t = sigmas[i] * lam_s.exp(), s_s1 * lam_s1.exp(), sigmas[i + 1] * lam_t.exp()
            sd, su = _ancestral(lam_s.neg().exp(), lam_s1.neg().exp(), eta)
            h_ = sd.log().neg() - lam_s
            x2 = (a_s1 / a_s) * (-h_).exp() * x - a_s1 * (-h_).expm1() * den
            if eta > 0 and s_noise > 0:
                x2 = x2 + a_s1 * noise(x, sigmas[i], s_s1) * s_noise * su
            den2 = denoise(x2, s_s1)
            sd, su = _ancestral(lam_s.neg().exp(), lam_t.neg().exp(), eta)
            h_ = sd.log().neg() - lam_s
            fac = 1 / (2 * r)
            x = (a_t / a_s) * (-h_).exp() * x - a_t * (-h_).expm1() * ((1 - fac) * den + fac * den2)
            if eta > 0 and s_noise > 0:
                x = x + a_t * noise(x, sigmas[i], sigmas[i + 1]) * s_noise * su
        callback(i, x, den)
    return x


def dpmpp_multistep_sde_flow(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise,
                             callback: Callback, eta: float = 1.0, s_noise: float = 1.0, solver: str = "midpoint",
                             third_order: bool = False, top: float = 0.9999) -> torch.Tensor:
    """DPM-Solver++(2M) SDE (``solver`` midpoint or heun) and, with ``third_order``, (3M) SDE."""
    sigmas = _offset_first(sigmas, top)
    den1 = den2 = h1 = h2 = None
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        h = None
        if sigmas[i + 1] == 0:
            x = den
        else:
            lam_s, lam_t = _lam(sigmas[i]), _lam(sigmas[i + 1])
            h = lam_t - lam_s
            h_eta = h * (eta + 1)
            a_t = sigmas[i + 1] * lam_t.exp()
            x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x + a_t * (-h_eta).expm1().neg() * den
            phi_2 = h_eta.neg().expm1() / h_eta + 1
            if third_order and h2 is not None:
                r0, r1 = h1 / h, h2 / h
                d1_0, d1_1 = (den - den1) / r0, (den1 - den2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                x = x + (a_t * phi_2) * d1 - (a_t * (phi_2 / h_eta - 0.5)) * ((d1_0 - d1_1) / (r0 + r1))
            elif third_order and h1 is not None:
                x = x + (a_t * phi_2) * (den - den1) / (h1 / h)
            elif den1 is not None and h1 is not None:
                r = h1 / h
                if solver == "heun":
                    x = x + a_t * ((-h_eta).expm1().neg() / (-h_eta) + 1) * (1 / r) * (den - den1)
                else:
                    x = x + 0.5 * a_t * (-h_eta).expm1().neg() * (1 / r) * (den - den1)
            if eta > 0 and s_noise > 0:
                x = x + noise(x, sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt() * s_noise
        den1, den2 = den, den1
        h1, h2 = h, h1
        callback(i, x, den)
    return x


def _ancestral_at(s_from: torch.Tensor, s_to: torch.Tensor, eta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The ancestral split where ``s_from`` may be infinite (σ = 1 on a flow model, α = 0): the whole
    step is then fresh noise (σ_up = σ_to), as ComfyUI's step works out there."""
    if not eta:
        return s_to, torch.zeros_like(s_to)
    cand = eta * (s_to ** 2 * (s_from ** 2 - s_to ** 2) / s_from ** 2) ** 0.5
    s_up = torch.where(cand < s_to, cand, s_to)
    return (s_to ** 2 - s_up ** 2) ** 0.5, s_up


def euler_cfg_pp_flow(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback,
                      eta: float = 1.0, s_noise: float = 1.0) -> torch.Tensor:
    """Euler (ancestral) CFG++: steps along the unguided estimate, in the flow frame (α = 1 − σ)."""
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = den
        else:
            a_s, a_t = 1 - sigmas[i], 1 - sigmas[i + 1]
            d = _d(x, sigmas[i], a_s * _unguided(denoise, den))
            s_down, s_up = _ancestral_at(sigmas[i] / a_s, sigmas[i + 1] / a_t, eta)
            x = a_t * den + a_t * s_down * d
            if eta > 0 and s_noise > 0:
                x = x + a_t * noise(x, sigmas[i], sigmas[i + 1]) * s_noise * s_up
        callback(i, x, den)
    return x


FLOW_SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "euler_ancestral": euler_ancestral_rf,
    "dpm_2_ancestral": dpm_2_ancestral_rf,
    "dpmpp_2s_ancestral": dpmpp_2s_ancestral_rf,
    "lcm": partial(lcm, flow=True),
    "dpmpp_sde": dpmpp_sde_flow,
    "dpmpp_sde_gpu": dpmpp_sde_flow,
    "dpmpp_2m_sde": dpmpp_multistep_sde_flow,
    "dpmpp_2m_sde_gpu": dpmpp_multistep_sde_flow,
    "dpmpp_2m_sde_heun": partial(dpmpp_multistep_sde_flow, solver="heun"),
    "dpmpp_2m_sde_heun_gpu": partial(dpmpp_multistep_sde_flow, solver="heun"),
    "dpmpp_3m_sde": partial(dpmpp_multistep_sde_flow, third_order=True),
    "dpmpp_3m_sde_gpu": partial(dpmpp_multistep_sde_flow, third_order=True),
    "euler_cfg_pp": partial(euler_cfg_pp_flow, eta=0.0, s_noise=0.0),
    "euler_ancestral_cfg_pp": euler_cfg_pp_flow,
}
#: samplers ComfyUI adapts to flow schedules in ways not reproduced here yet
FLOW_UNSUPPORTED = frozenset({"er_sde", "seeds_2", "seeds_3", "sa_solver", "sa_solver_pece"})


def flow_sampler(name: str, sampling: object) -> Callable[..., torch.Tensor] | None:
    """The flow form of sampler ``name`` for a flow model's ``sampling`` (None: the plain one applies).

    Raises:
        ValidationError: a sampler whose flow form nodeloom does not have yet.
    """
    if name in FLOW_UNSUPPORTED:
        raise ValidationError(f"`sampler_name` '{name}' is not available for flow-matching models yet; use e.g. euler,"
                              " res_multistep, dpmpp_2m or dpmpp_2m_sde", type="unsupported_sampler")
    fn = FLOW_SAMPLERS.get(name)
    if fn is not None and name in BROWNIAN:
        fn = partial(fn, top=float(sampling.percent_to_sigma(1e-4)))  # type: ignore[attr-defined]
    return fn
