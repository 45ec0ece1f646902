"""Samplers on sigmas, under ComfyUI's ``sampler_name`` values (all of ComfyUI's list).

Every sampler has one signature: ``sampler(denoise, x, sigmas, noise, callback) -> x`` where
``denoise(x, sigma)`` returns the model's clean-image estimate, ``x`` starts noised at
``sigmas[0]``, ``noise(x, sigma, sigma_next)`` draws seeded standard-normal noise for the stretch
from ``sigma`` to ``sigma_next`` (stochastic samplers only; a Brownian source uses the pair) and
``callback(i, x, denoised)`` runs after each step (progress, previews, interruption). CFG++
samplers also read ``denoise.uncond``, the unguided estimate of the last call (see
:func:`_unguided`). Written from the published update rules (Karras et al. 2022; DPM-Solver and
DPM-Solver++; UniPC; LCM; iPNDM; DEIS; RES; ER-SDE; SEEDS; SA-Solver; CFG++), with ComfyUI's
step-placement and end-point conventions; ``tools/comfy_samplers/compare.py`` checks each against
ComfyUI's. Pure torch/numpy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np
import torch

from nodeloom.diffusion.schedules import ModelSampling

__all__ = ["BROWNIAN", "CFG_PP", "DISCARD_PENULTIMATE", "ER_SDE_SOLVERS", "SAMPLERS", "SAMPLER_NAMES",
           "euler_cfg_pp_alternative", "void_ddim"]

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Noise = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[int, torch.Tensor, torch.Tensor], None]

#: samplers whose schedule drops the smallest non-zero sigma (as ComfyUI does).
DISCARD_PENULTIMATE = frozenset({"dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"})
#: where UniPC stops instead of σ = 0 (ComfyUI's choice; the result is then practically clean)
UNIPC_FINAL_SIGMA = 0.001


def _d(x: torch.Tensor, sigma: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    return (x - den) / sigma


def _ancestral(s_from: torch.Tensor, s_to: torch.Tensor, eta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a step into a deterministic part down to ``sigma_down`` and fresh noise ``sigma_up``."""
    if not eta:
        return s_to, torch.zeros_like(s_to)
    s_up = torch.minimum(s_to, eta * (s_to ** 2 * (s_from ** 2 - s_to ** 2) / s_from ** 2) ** 0.5)
    return (s_to ** 2 - s_up ** 2) ** 0.5, s_up


def _unguided(denoise: Denoise, den: torch.Tensor) -> torch.Tensor:
    """The unguided (negative-prompt) estimate of ``denoise``'s last call, kept by the guidance as
    ``denoise.uncond``; a denoiser without one has no guidance, so its estimate is both."""
    uncond = getattr(denoise, "uncond", None)
    return den if uncond is None else uncond


def euler(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        x = x + _d(x, sigmas[i], den) * (sigmas[i + 1] - sigmas[i])
        callback(i, x, den)
    return x


def euler_ancestral(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback,
                    eta: float = 1.0, s_noise: float = 1.0) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        s_down, s_up = _ancestral(sigmas[i], sigmas[i + 1], eta)
        x = x + _d(x, sigmas[i], den) * (s_down - sigmas[i])
        x = x + noise(x, sigmas[i], sigmas[i + 1]) * s_noise * s_up  # drawn every step: the stream stays aligned
        callback(i, x, den)
    return x


def heun(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        d = _d(x, sigmas[i], den)
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = x + d * dt
        else:
            x2 = x + d * dt
            d2 = _d(x2, sigmas[i + 1], denoise(x2, sigmas[i + 1]))
            x = x + (d + d2) / 2 * dt
        callback(i, x, den)
    return x


def _dpm2_step(denoise: Denoise, x: torch.Tensor, sigma: torch.Tensor, target: torch.Tensor,
               den: torch.Tensor) -> torch.Tensor:
    d = _d(x, sigma, den)
    if target == 0:
        return x + d * (target - sigma)
    s_mid = ((sigma.log() + target.log()) / 2).exp()
    x2 = x + d * (s_mid - sigma)
    return x + _d(x2, s_mid, denoise(x2, s_mid)) * (target - sigma)


def dpm_2(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        x = _dpm2_step(denoise, x, sigmas[i], sigmas[i + 1], den)
        callback(i, x, den)
    return x


def dpm_2_ancestral(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        s_down, s_up = _ancestral(sigmas[i], sigmas[i + 1])
        x = _dpm2_step(denoise, x, sigmas[i], s_down, den) + noise(x, sigmas[i], sigmas[i + 1]) * s_up
        callback(i, x, den)
    return x


def _lms_coefficient(sig: np.ndarray, i: int, j: int, order: int) -> float:
    """∫ over [σ_i, σ_{i+1}] of the Lagrange basis polynomial of point i-j (exact polynomial integral)."""
    poly = np.poly1d([1.0])
    for k in range(order):
        if k != j:
            poly *= np.poly1d([1.0, -sig[i - k]]) / (sig[i - j] - sig[i - k])
    integral = poly.integ()
    return float(integral(sig[i + 1]) - integral(sig[i]))


def lms(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback,
        order: int = 4) -> torch.Tensor:
    sig = sigmas.double().cpu().numpy()
    ds: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        ds = (ds + [_d(x, sigmas[i], den)])[-order:]
        if sigmas[i + 1] == 0:
            x = den  # the last step lands on the denoised estimate, as in k-diffusion
            callback(i, x, den)
            break
        cur = min(i + 1, order)
        coeffs = [_lms_coefficient(sig, i, j, cur) for j in range(cur)]
        x = x + sum(c * d for c, d in zip(coeffs, reversed(ds)))
        callback(i, x, den)
    return x


def dpmpp_2s_ancestral(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback,
                       eta: float = 1.0, s_noise: float = 1.0) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        s_down, s_up = _ancestral(sigmas[i], sigmas[i + 1], eta)
        if s_down == 0:
            x = x + _d(x, sigmas[i], den) * (s_down - sigmas[i])
        else:
            t, t_next = -sigmas[i].log(), -s_down.log()
            h = t_next - t
            s = t + h / 2
            x2 = ((-s).exp() / (-t).exp()) * x - torch.expm1(-h / 2) * den
            den2 = denoise(x2, (-s).exp())
            x = ((-t_next).exp() / (-t).exp()) * x - torch.expm1(-h) * den2
        x = x + noise(x, sigmas[i], sigmas[i + 1]) * s_noise * s_up
        callback(i, x, den)
    return x


def dpmpp_sde(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback,
              eta: float = 1.0, r: float = 0.5, s_noise: float = 1.0) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = x + _d(x, sigmas[i], den) * (sigmas[i + 1] - sigmas[i])
        else:
            t, t_next = -sigmas[i].log(), -sigmas[i + 1].log()
            h = t_next - t
            s = t + h * r
            sd, su = _ancestral((-t).exp(), (-s).exp(), eta)
            s_ = -sd.log()
            x2 = ((-s_).exp() / (-t).exp()) * x - torch.expm1(t - s_) * den + noise(x, sigmas[i], (-s).exp()) * s_noise * su
            den2 = denoise(x2, (-s).exp())
            sd, su = _ancestral((-t).exp(), (-t_next).exp(), eta)
            t_next_ = -sd.log()
            fac = 1 / (2 * r)
            den_d = (1 - fac) * den + fac * den2
            x = (((-t_next_).exp() / (-t).exp()) * x - torch.expm1(t - t_next_) * den_d
                 + noise(x, sigmas[i], sigmas[i + 1]) * s_noise * su)
        callback(i, x, den)
    return x


def dpmpp_2m(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback) -> torch.Tensor:
    old = None
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = den
        else:
            t, t_next = -sigmas[i].log(), -sigmas[i + 1].log()
            h = t_next - t
            den_d = den
            if old is not None:
                r = (t + sigmas[i - 1].log()) / h
                den_d = (1 + 1 / (2 * r)) * den - (1 / (2 * r)) * old
            x = (sigmas[i + 1] / sigmas[i]) * x - torch.expm1(-h) * den_d
        old = den
        callback(i, x, den)
    return x


def dpmpp_2m_sde(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback,
                 eta: float = 1.0, solver: str = "midpoint", s_noise: float = 1.0) -> torch.Tensor:
    old, h_last = None, None
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = den
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            eta_h = eta * h
            x = sigmas[i + 1] / sigmas[i] * (-eta_h).exp() * x - torch.expm1(-h - eta_h) * den
            if old is not None:
                r = h_last / h
                if solver == "heun":
                    x = x + (-torch.expm1(-h - eta_h) / (-h - eta_h) + 1) * (1 / r) * (den - old)
                else:
                    x = x - 0.5 * torch.expm1(-h - eta_h) * (1 / r) * (den - old)
            x = x + noise(x, sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-torch.expm1(-2 * eta_h)).sqrt() * s_noise
            h_last = h
        old = den
        callback(i, x, den)
    return x


def dpmpp_2m_sde_heun(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise,
                      callback: Callback, eta: float = 1.0, s_noise: float = 1.0) -> torch.Tensor:
    return dpmpp_2m_sde(denoise, x, sigmas, noise, callback, eta=eta, solver="heun", s_noise=s_noise)


def dpmpp_3m_sde(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback,
                 eta: float = 1.0, s_noise: float = 1.0) -> torch.Tensor:
    den1 = den2 = None
    h1 = h2 = None
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = den
        else:
            h = -sigmas[i + 1].log() + sigmas[i].log()
            h_eta = h * (eta + 1)
            x = (-h_eta).exp() * x - torch.expm1(-h_eta) * den
            phi_2 = torch.expm1(-h_eta) / h_eta + 1
            if h2 is not None:
                r0, r1 = h1 / h, h2 / h
                d1_0, d1_1 = (den - den1) / r0, (den1 - den2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                x = x + phi_2 * d1 - (phi_2 / h_eta - 0.5) * d2
            elif h1 is not None:
                x = x + phi_2 * (den - den1) / (h1 / h)
            x = x + noise(x, sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-torch.expm1(-2 * h * eta)).sqrt() * s_noise
            h1, h2 = h, h1
        den1, den2 = den, den1
        callback(i, x, den)
    return x


def ddpm(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback) -> torch.Tensor:
    """Ancestral DDPM posterior steps, taken in the variance-preserving frame."""
    for i in range(len(sigmas) - 1):
        s, s_prev = sigmas[i], sigmas[i + 1]
        den = denoise(x, s)
        eps = (x - den) / s
        xv = x / (1 + s ** 2).sqrt()
        a_cum, a_prev = 1 / (s * s + 1), 1 / (s_prev * s_prev + 1)
        alpha = a_cum / a_prev
        mu = (1 / alpha).sqrt() * (xv - (1 - alpha) * eps / (1 - a_cum).sqrt())
        n = noise(x, sigmas[i], sigmas[i + 1])
        if s_prev > 0:
            mu = mu + ((1 - alpha) * (1 - a_prev) / (1 - a_cum)).sqrt() * n
            mu = mu * (1 + s_prev ** 2).sqrt()
        x = mu
        callback(i, x, den)
    return x


def lcm(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback,
        flow: bool = False, s_noise: float = 1.0, s_noise_end: float | None = None,
        noise_clip_std: float = 0.0) -> torch.Tensor:
    """LCM: jump to the estimate, re-noise to the next sigma (``flow``: as ``σ·n + (1 − σ)·x0``).

    SamplerLCM's options: the fresh noise is scaled by ``s_noise`` at the first step, moving
    linearly to ``s_noise_end`` at the last (None: constant), after being clamped to
    ± ``noise_clip_std`` times its own standard deviation (0: no clamp).
    """
    steps = len(sigmas) - 1
    end = s_noise if s_noise_end is None else s_noise_end
    for i in range(steps):
        den = denoise(x, sigmas[i])
        x = den
        if sigmas[i + 1] > 0:
            fresh = noise(x, sigmas[i], sigmas[i + 1])
            if noise_clip_std > 0:
                limit = noise_clip_std * float(fresh.std())
                fresh = fresh.clamp(-limit, limit)
            scale = s_noise + (end - s_noise) * (i / (steps - 1) if steps > 1 else 0.0)
            if scale != 1.0:
                fresh = fresh * scale
            x = sigmas[i + 1] * fresh + (1 - sigmas[i + 1]) * den if flow else x + fresh * sigmas[i + 1]
        callback(i, x, den)
    return x


def _unipc(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, callback: Callback, bh2: bool,
           max_order: int = 3) -> torch.Tensor:
    """UniPC (Zhao et al. 2023), data prediction, predictor + corrector sharing one model call per step.

    As in ComfyUI, a schedule ending at 0 ends at σ = 0.001 instead, and the last step is the
    predictor alone (no corrector, no model call at the end point).
    """
    n = len(sigmas) - 1
    if sigmas[-1] == 0:
        sigmas = torch.cat([sigmas[:-1], sigmas.new_tensor([UNIPC_FINAL_SIGMA])])
    lam = [-s.log() for s in sigmas]
    history: list[tuple[torch.Tensor, torch.Tensor]] = []  # (lambda, model output)
    model = denoise(x, sigmas[0])
    history.append((lam[0], model))
    for i in range(n):
        order = min(max_order, len(history), n - i)
        h = lam[i + 1] - lam[i]
        hh = -h
        h_phi_1 = torch.expm1(hh)
        b_h = h_phi_1 if bh2 else hh
        rks, d1s = [], []
        for k in range(1, order):
            lam_k, m_k = history[-(k + 1)]
            rk = (lam_k - lam[i]) / h
            rks.append(rk)
            d1s.append((m_k - model) / rk)
        rks.append(torch.ones_like(h))
        rows, b = [], []
        h_phi_k = h_phi_1 / hh - 1
        fact = 1
        for j in range(1, order + 1):
            rows.append(torch.stack([r ** (j - 1) for r in rks]))
            b.append(h_phi_k * fact / b_h)
            fact *= j + 1
            h_phi_k = h_phi_k / hh - 1 / fact
        R, bv = torch.stack(rows).double(), torch.stack(b).double()
        x_base = (sigmas[i + 1] / sigmas[i]) * x - h_phi_1 * model
        x_pred = x_base
        if d1s:
            rhos_p = torch.linalg.solve(R[:-1, :-1], bv[:-1]).float() if order > 2 else torch.tensor([0.5])
            x_pred = x_base - b_h * sum(r * d for r, d in zip(rhos_p, d1s))
        if i == n - 1:
            x = x_pred
            callback(i, x, model)
            break
        model_t = denoise(x_pred, sigmas[i + 1])
        rhos_c = torch.linalg.solve(R, bv).float() if order > 1 else torch.tensor([0.5])
        corr = sum(r * d for r, d in zip(rhos_c[:-1], d1s)) if d1s else 0
        x = x_base - b_h * (corr + rhos_c[-1] * (model_t - model))
        callback(i, x, model)
        model = model_t
        history.append((lam[i + 1], model))
    return x


def uni_pc(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback) -> torch.Tensor:
    return _unipc(denoise, x, sigmas, callback, bh2=False)


def uni_pc_bh2(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback) -> torch.Tensor:
    return _unipc(denoise, x, sigmas, callback, bh2=True)


# --- Heun++ and the Adams–Bashforth family (iPNDM, iPNDM-v, DEIS) -------------------------------------


def heunpp2(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback) -> torch.Tensor:
    """Heun++: the step's slope is a σ-weighted mix of the slopes at up to three Euler look-ahead points.

    The look-ahead points carry weight σ_{i+k} / (K·σ_0) each (K points in all), so their say fades
    as the noise goes; the last two steps fall back to two points and then to plain Euler.
    """
    end = sigmas[-1]
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        d = _d(x, sigmas[i], den)
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == end:
            x = x + d * dt
        else:
            slopes, weights = [d], []
            xk = x
            ahead = 1 if sigmas[i + 2] == end else 2
            for k in range(1, ahead + 1):
                xk = xk + slopes[-1] * (sigmas[i + k] - sigmas[i + k - 1])
                slopes.append(_d(xk, sigmas[i + k], denoise(xk, sigmas[i + k])))
                weights.append(sigmas[i + k] / ((ahead + 1) * sigmas[0]))
            mixed = (1 - sum(weights)) * d + sum(w * s for w, s in zip(weights, slopes[1:]))
            x = x + mixed * dt
        callback(i, x, den)
    return x


#: Adams–Bashforth weights for equal steps, newest slope first
_ADAMS_BASHFORTH = {1: (1.0,), 2: (3 / 2, -1 / 2), 3: (23 / 12, -16 / 12, 5 / 12), 4: (55 / 24, -59 / 24, 37 / 24, -9 / 24)}


def ipndm(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback,
          max_order: int = 4) -> torch.Tensor:
    """Improved PNDM (Zhang & Chen 2023): Adams–Bashforth on the σ-slopes with the equal-step weights,
    warming up from Euler; the step to σ = 0 lands on the denoised estimate."""
    slopes: list[torch.Tensor] = []  # newest last, at most max_order
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        slopes = (slopes + [_d(x, sigmas[i], den)])[-max_order:]
        if sigmas[i + 1] == 0:
            x = den
        else:
            weights = _ADAMS_BASHFORTH[len(slopes)]
            x = x + (sigmas[i + 1] - sigmas[i]) * sum(w * s for w, s in zip(weights, reversed(slopes)))
        callback(i, x, den)
    return x


def ipndm_v(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback,
            max_order: int = 4) -> torch.Tensor:
    """iPNDM with variable steps (the zju-pi diff-sampler weights ComfyUI uses): the equal-step
    Adams–Bashforth correction terms, rescaled by ratios of the past step sizes.

    Written as increments on the newest slope: ``Δ1`` (first difference), ``Δ2`` (second) and ``Δ3``
    (third), each weighted by its step-size factor. The fourth-order term follows those published
    weights exactly, including their use of h_{n−1}/h_{n−2} on the oldest slope.
    """
    slopes: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        slopes = (slopes + [_d(x, sigmas[i], den)])[-max_order:]
        h = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = den
        elif len(slopes) == 1:
            x = x + h * slopes[-1]
        else:
            d = slopes[::-1]  # newest first
            h1 = sigmas[i] - sigmas[i - 1]
            step = d[0] + h / (2 * h1) * (d[0] - d[1])
            if len(d) >= 3:
                h2 = sigmas[i - 1] - sigmas[i - 2]
                rho1 = h1 / h2
                delta2 = d[0] - (1 + rho1) * d[1] + rho1 * d[2]
                w2 = 0.5 - h ** 2 / (6 * h1 * (h1 + h2))
                step = step + w2 * delta2
                if len(d) >= 4:
                    h3 = sigmas[i - 2] - sigmas[i - 3]
                    q = h1 * (h1 + h2) / (h2 * (h2 + h3))
                    delta3 = delta2 - q * (d[1] - (1 + h2 / h3) * d[2] + rho1 * d[3])
                    a = h + h1
                    w3 = ((1 - h / (3 * a)) / 2 + (1 - h / (2 * a)) * h / (6 * (a + h2))) \
                        * h * a * (a + h2) / (h1 * (h1 + h2) * (h1 + h2 + h3))
                    step = step + w3 * delta3
            x = x + h * step
        callback(i, x, den)
    return x


# DEIS ("tab" variant, Zhang & Chen 2022): the σ-slope is interpolated by a polynomial in the time t
# of a variance-preserving SDE and integrated exactly in σ. The VP parametrisation is EDM's (its
# σ_min = 0.002, σ_max = 80, ε_s = 1e-3), which is what ComfyUI's DEIS uses for every model.
_DEIS_EPS_S, _DEIS_SIGMA_MIN, _DEIS_SIGMA_MAX = 1e-3, 0.002, 80.0
_DEIS_BETA_D = 2 * (math.log(_DEIS_SIGMA_MIN ** 2 + 1) / _DEIS_EPS_S - math.log(_DEIS_SIGMA_MAX ** 2 + 1)) / (_DEIS_EPS_S - 1)
_DEIS_BETA_MIN = math.log(_DEIS_SIGMA_MAX ** 2 + 1) - 0.5 * _DEIS_BETA_D


def _deis_time(sigma: np.ndarray) -> np.ndarray:
    """VP time t of σ: the root of ½β_d t² + β_min t = log(1 + σ²)."""
    return (np.sqrt(_DEIS_BETA_MIN ** 2 + 2 * _DEIS_BETA_D * np.log1p(sigma ** 2)) - _DEIS_BETA_MIN) / _DEIS_BETA_D


def _deis_dsigma_dt(t: np.ndarray) -> np.ndarray:
    g = 0.5 * _DEIS_BETA_D * t ** 2 + _DEIS_BETA_MIN * t
    return (_DEIS_BETA_D * t + _DEIS_BETA_MIN) * np.exp(g) / (2 * np.sqrt(np.expm1(g)))


def _deis_coefficients(sig: np.ndarray, i: int, order: int) -> list[float]:
    """∫ from σ_i to σ_{i+1} of the Lagrange basis (in t) of each of the last ``order`` points, newest first."""
    ts = _deis_time(sig)
    nodes, gw = np.polynomial.legendre.leggauss(32)
    a, b = ts[i], ts[i + 1]
    tau = (b - a) / 2 * nodes + (a + b) / 2
    measure = gw * (b - a) / 2 * _deis_dsigma_dt(tau)
    past = [ts[i - k] for k in range(order)]
    out = []
    for j in range(order):
        basis = np.ones_like(tau)
        for k in range(order):
            if k != j:
                basis *= (tau - past[k]) / (past[j] - past[k])
        out.append(float(np.sum(basis * measure)))
    return out


def deis(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback,
         max_order: int = 3) -> torch.Tensor:
    sig = sigmas.double().cpu().numpy()
    slopes: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        slopes = (slopes + [_d(x, sigmas[i], den)])[-max_order:]
        if sigmas[i + 1] <= 0 or len(slopes) == 1:
            x = x + slopes[-1] * (sigmas[i + 1] - sigmas[i])
        else:
            coeffs = _deis_coefficients(sig, i, len(slopes))
            x = x + sum(c * s for c, s in zip(coeffs, reversed(slopes)))
        callback(i, x, den)
    return x


# --- RES, gradient estimation, ER-SDE and SEEDS ------------------------------------------------------


def _phi1(z: torch.Tensor) -> torch.Tensor:
    return torch.expm1(z) / z


def _res_multistep(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback,
                   eta: float, cfg_pp: bool = False) -> torch.Tensor:
    """RES second-order multistep (Zhang et al. 2023, "Improved order analysis of exponential
    integrators"), in log-σ time; with ``eta`` > 0 each step ends with ancestral noise, with
    ``cfg_pp`` the history and the step direction use the unguided estimate (CFG++)."""
    old_den = old_down = None
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        base = _unguided(denoise, den) if cfg_pp else den
        s_down, s_up = _ancestral(sigmas[i], sigmas[i + 1], eta)
        if s_down == 0 or old_den is None:
            d = _d(x, sigmas[i], base)
            x = den + d * s_down if cfg_pp else x + d * (s_down - sigmas[i])
        else:
            h = sigmas[i].log() - s_down.log()
            c2 = (old_down.log() - sigmas[i - 1].log()) / h
            phi1 = _phi1(-h)
            phi2 = (phi1 - 1) / -h
            b2 = torch.nan_to_num(phi2 / c2, nan=0.0)
            b1 = torch.nan_to_num(phi1 - phi2 / c2, nan=0.0)
            if cfg_pp:
                x = x + (den - base)
            x = (-h).exp() * x + h * (b1 * base + b2 * old_den)
        if sigmas[i + 1] > 0 and eta:
            x = x + noise(x, sigmas[i], sigmas[i + 1]) * s_up
        old_den, old_down = base, s_down
        callback(i, x, den)
    return x


def gradient_estimation(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback,
                        gamma: float = 2.0, cfg_pp: bool = False) -> torch.Tensor:
    """Euler plus a correction from the change of the slope between steps (Permenter & Yuan,
    "Interpreting and improving diffusion models from an optimization perspective"); with
    ``cfg_pp`` the slope comes from the unguided estimate (CFG++)."""
    old_d = None
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        d = _d(x, sigmas[i], _unguided(denoise, den) if cfg_pp else den)
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = den
        else:
            x = den + d * sigmas[i + 1] if cfg_pp else x + d * dt
            if old_d is not None:
                x = x + (gamma - 1) * (d - old_d) * dt
        old_d = d
        callback(i, x, den)
    return x


def _er_default_scale(v: torch.Tensor) -> torch.Tensor:
    """ER-SDE's default noise-scale function of λ = σ/α."""
    return v * ((v ** 0.3).exp() + 10.0)


ER_SDE_SOLVERS = ("ER-SDE", "Reverse-time SDE", "ODE")


def er_sde(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback,
           max_stage: int = 3, points: int = 200, solver_type: str = "ER-SDE", eta: float = 1.0,
           s_noise: float = 1.0) -> torch.Tensor:
    """ER-SDE-Solver-3 (Cui et al. 2023), VP data prediction; for SD models λ = σ and α = 1.

    The two integrals of the higher stages use ``points`` samples of a left Riemann sum from
    σ_{i+1} to σ_i, the discretisation ComfyUI uses, so the same noise gives the same result.
    ``solver_type`` picks the noise-scale function: "ER-SDE" the paper's default, "Reverse-time
    SDE" λ^(η+1) (``eta`` its stochastic strength), "ODE" λ with no noise at all (as is a
    reverse-time SDE with η = 0). ``s_noise`` scales the injected noise.
    """
    if solver_type not in ER_SDE_SOLVERS:
        raise ValueError(f"`solver_type` must be one of {list(ER_SDE_SOLVERS)}, got {solver_type!r}")
    if solver_type == "ODE" or (solver_type == "Reverse-time SDE" and eta == 0):
        eta, s_noise = 0.0, 0.0
    power = eta + 1

    def scale_fn(v: torch.Tensor) -> torch.Tensor:
        return _er_default_scale(v) if solver_type == "ER-SDE" else v ** power

    old_den = old_dd = None
    ks = torch.arange(points, dtype=sigmas.dtype, device=sigmas.device)
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        stage = min(max_stage, i + 1)
        if sigmas[i + 1] == 0:
            x = den
        else:
            ls, lt = sigmas[i], sigmas[i + 1]
            r = scale_fn(lt) / scale_fn(ls)
            x = r * x + (1 - r) * den
            if stage >= 2:
                dt = lt - ls
                step = -dt / points
                pos = lt + ks * step
                scaled = scale_fn(pos)
                dd = (den - old_den) / (ls - sigmas[i - 1])
                x = x + (dt + (1 / scaled).sum() * step * scale_fn(lt)) * dd
                if stage >= 3:
                    du = (dd - old_dd) / ((ls - sigmas[i - 2]) / 2)
                    x = x + (dt ** 2 / 2 + ((pos - ls) / scaled).sum() * step * scale_fn(lt)) * du
                old_dd = dd
            if s_noise > 0:
                x = x + noise(x, sigmas[i], sigmas[i + 1]) * s_noise * torch.nan_to_num((lt ** 2 - ls ** 2 * r ** 2).sqrt(), nan=0.0)
        old_den = den
        callback(i, x, den)
    return x


def _phi2(z: torch.Tensor) -> torch.Tensor:
    """h·φ₂(h) in the exponential-integrator convention: (e^z − 1 − z) / z."""
    return (torch.expm1(z) - z) / z


def _seeds(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback,
           stages: int, eta: float = 1.0, s_noise: float = 1.0, r: float = 0.5,
           solver_type: str = "phi_1") -> torch.Tensor:
    """SEEDS-2 / SEEDS-3 (Gonzalez et al. 2023), stochastic exponential solvers in log-σ time.

    Stage points sit at fractions of each step in λ = −log σ (``r`` for two stages, ⅓ and ⅔ for
    three). The noise of one step is built incrementally, so the sub-steps share one Brownian path,
    scaled by ``s_noise``. Two stages combine the estimates by ``solver_type``: "phi_1" mixes them
    at 1/(2r), "phi_2" weighs the second by φ₂/r (with r = 1 and η = 0, the exponential Heun step).
    """
    if solver_type not in ("phi_1", "phi_2"):
        raise ValueError(f"`solver_type` must be 'phi_1' or 'phi_2', got {solver_type!r}")
    if not 0 < r <= 1:
        raise ValueError(f"`r` must lie in (0, 1], got {r}")
    rs = (r,) if stages == 2 else (1 / 3, 2 / 3)
    stochastic = eta > 0 and s_noise > 0
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = den
            callback(i, x, den)
            continue
        s0, s1 = sigmas[i], sigmas[i + 1]
        h = s0.log() - s1.log()
        h_eta = h * (eta + 1)

        def advance(frac: float, mixed: torch.Tensor, path: torch.Tensor | None, last: float) -> tuple[torch.Tensor, torch.Tensor | None]:
            sig = (s0.log() - frac * h).exp()
            out = sig / s0 * (-frac * h * eta).exp() * x - torch.expm1(-frac * h_eta) * mixed
            if stochastic:
                seg = (last - frac) * h * eta
                fresh = (-torch.expm1(2 * seg)).sqrt() * noise(x, (s0.log() - last * h).exp(), sig)
                path = fresh if path is None else path * seg.exp() + fresh
                out = out + path * sig * s_noise
            return out, path

        if stages == 2:
            r1 = rs[0]
            x1, path = advance(r1, den, None, 0.0)
            den1 = denoise(x1, (s0.log() - r1 * h).exp())
            if solver_type == "phi_1":
                mixed = torch.lerp(den, den1, 1 / (2 * r1))
            else:
                a = _phi2(-h_eta) / r1 / torch.expm1(-h_eta)
                mixed = (1 - a) * den + a * den1
            x, _ = advance(1.0, mixed, path, r1)
        else:
            r1, r2 = rs
            x1, path = advance(r1, den, None, 0.0)
            den1 = denoise(x1, (s0.log() - r1 * h).exp())
            a2 = r2 / r1 * _phi2(-r2 * h_eta) / torch.expm1(-r2 * h_eta)
            x2, path = advance(r2, (1 - a2) * den + a2 * den1, path, r1)
            den2 = denoise(x2, (s0.log() - r2 * h).exp())
            b3 = _phi2(-h_eta) / r2 / torch.expm1(-h_eta)
            x, _ = advance(1.0, (1 - b3) * den + b3 * den2, path, r2)
        callback(i, x, den)
    return x


# --- DPM-Solver with its own step placement (Lu et al. 2022) -------------------------------------
# Both walk log-σ time from the first sigma to the smallest non-zero one and ignore the rest of the
# schedule (as in k-diffusion and ComfyUI); the result keeps that last small noise level.


class _DPMSolver:
    """DPM-Solver-1/2/3 single steps on ε = (x − D(x, σ)) / σ in t = −log σ; ε at a step's start is cached."""

    def __init__(self, denoise: Denoise) -> None:
        self.denoise = denoise
        self.calls = 0

    def eps(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        sigma = (-t).exp()
        self.calls += 1
        return (x - self.denoise(x, sigma)) / sigma

    @staticmethod
    def first(x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return x - (-t_next).exp() * torch.expm1(t_next - t) * eps

    def second(self, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor, eps: torch.Tensor, r1: float = 0.5,
               cache: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        h = t_next - t
        eps1 = self._stage(x, t, h, eps, r1, cache)
        return x - (-t_next).exp() * torch.expm1(h) * (eps + (eps1 - eps) / (2 * r1))

    def _stage(self, x: torch.Tensor, t: torch.Tensor, h: torch.Tensor, eps: torch.Tensor, r1: float,
               cache: dict[str, torch.Tensor] | None) -> torch.Tensor:
        if cache is not None and "r1" in cache:
            return cache["r1"]
        s1 = t + r1 * h
        eps1 = self.eps(x - (-s1).exp() * torch.expm1(r1 * h) * eps, s1)
        if cache is not None:
            cache["r1"] = eps1
        return eps1

    def third(self, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor, eps: torch.Tensor,
              cache: dict[str, torch.Tensor] | None = None, r1: float = 1 / 3, r2: float = 2 / 3) -> torch.Tensor:
        h = t_next - t
        eps1 = self._stage(x, t, h, eps, r1, cache)
        s2 = t + r2 * h
        u2 = x - (-s2).exp() * (torch.expm1(r2 * h) * eps + (r2 / r1) * (torch.expm1(r2 * h) / (r2 * h) - 1) * (eps1 - eps))
        eps2 = self.eps(u2, s2)
        return x - (-t_next).exp() * (torch.expm1(h) * eps + (torch.expm1(h) / h - 1) / r2 * (eps2 - eps))


def _dpm_span(sigmas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    smallest = sigmas[-1] if sigmas[-1] > 0 else sigmas[-2]
    return -sigmas[0].log(), -smallest.log()


def dpm_fast(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback) -> torch.Tensor:
    """DPM-Solver-fast: as many model calls as the schedule has steps, spent as third-order steps on
    equal log-σ intervals (the remainder as one lower-order step at the end)."""
    nfe = len(sigmas) - 1
    if nfe < 1 or (sigmas[-1] == 0 and nfe < 2):
        return x
    t_start, t_end = _dpm_span(sigmas)
    m = nfe // 3 + 1
    orders = [3] * (m - 2) + [2, 1] if nfe % 3 == 0 else [3] * (m - 1) + [nfe % 3]
    ts = torch.linspace(float(t_start), float(t_end), len(orders) + 1, dtype=sigmas.dtype, device=sigmas.device)
    solver = _DPMSolver(denoise)
    done = 0
    for k, order in enumerate(orders):
        t, t_next = ts[k], ts[k + 1]
        eps = solver.eps(x, t)
        den = x - (-t).exp() * eps
        step = solver.first if order == 1 else solver.second if order == 2 else solver.third
        x = step(x, t, t_next, eps)
        done += order
        callback(done - 1, x, den)
    return x


def dpm_adaptive(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback,
                 order: int = 3, rtol: float = 0.05, atol: float = 0.0078, h_init: float = 0.05, pcoeff: float = 0.0,
                 icoeff: float = 1.0, dcoeff: float = 0.0, accept_safety: float = 0.81, eta: float = 0.0,
                 s_noise: float = 1.0) -> torch.Tensor:
    """DPM-Solver-12 or -23 with adaptive steps: a step of ``order``, its embedded lower-order
    estimate for the error, and a PID step-size controller (``pcoeff``/``icoeff``/``dcoeff``; the
    default is pure integral control) whose factor is softened by 1 + atan(f − 1). ``eta`` > 0
    makes each accepted step ancestral (it ends at the step's σ_down and adds σ_up of fresh noise).
    The number of model calls depends on the image, not on ``steps``; progress is reported as the
    share of log-σ time covered."""
    if order not in (2, 3):
        raise ValueError(f"`order` of dpm_adaptive must be 2 or 3, got {order}")
    if len(sigmas) < 2 or (sigmas[-1] == 0 and len(sigmas) < 3):
        return x
    t_start, t_end = _dpm_span(sigmas)
    total = len(sigmas) - 1
    solver = _DPMSolver(denoise)
    s, h, x_prev = t_start, h_init, x
    # PID exponents on the last three inverse errors; an ancestral step counts as order 1.5
    effective = 1.5 if eta else order
    b1, b2, b3 = (pcoeff + icoeff + dcoeff) / effective, -(pcoeff + 2 * dcoeff) / effective, dcoeff / effective
    inv_errors: list[float] = []
    eps = None
    reported = -1
    while s < t_end - 1e-5:
        t = torch.minimum(t_end, s + h)
        s_up = None
        if eta:
            s_down, _ = _ancestral((-s).exp(), (-t).exp(), eta)
            t_step = torch.minimum(t_end, -s_down.log())
            s_up = ((-t).exp() ** 2 - (-t_step).exp() ** 2) ** 0.5
        else:
            t_step = t
        if eps is None:
            eps = solver.eps(x, s)
        cache: dict[str, torch.Tensor] = {}
        if order == 2:
            low = solver.first(x, s, t_step, eps)
            high = solver.second(x, s, t_step, eps, cache=cache)
        else:
            low = solver.second(x, s, t_step, eps, r1=1 / 3, cache=cache)
            high = solver.third(x, s, t_step, eps, cache=cache)
        scale = torch.clamp(rtol * torch.maximum(low.abs(), x_prev.abs()), min=atol)
        error = float(torch.linalg.norm((low - high) / scale) / low.numel() ** 0.5)
        inv = 1 / (error + 1e-8)
        if not inv_errors:
            inv_errors = [inv, inv, inv]
        inv_errors[0] = inv
        factor = 1 + math.atan(inv_errors[0] ** b1 * inv_errors[1] ** b2 * inv_errors[2] ** b3 - 1)
        if factor >= accept_safety:
            inv_errors[1:] = inv_errors[:2]
            den = x - (-s).exp() * eps
            x_prev, x = low, high
            if s_up is not None:
                x = x + noise(x, (-s).exp(), (-t).exp()) * s_noise * s_up
            s, eps = t, None
            step = min(int(total * float((s - t_start) / (t_end - t_start))), total) - 1
            if step > reported:
                reported = step
                callback(step, x, den)
        h = h * factor
    return x


# --- CFG++ (Chung et al. 2024): the renoising direction comes from the unguided estimate --------------


def _euler_cfg_pp(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback,
                  eta: float, s_noise: float = 1.0) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = den
        else:
            s_down, s_up = _ancestral(sigmas[i], sigmas[i + 1], eta)
            x = den + _d(x, sigmas[i], _unguided(denoise, den)) * s_down
            if eta and s_noise:
                x = x + noise(x, sigmas[i], sigmas[i + 1]) * s_noise * s_up
        callback(i, x, den)
    return x


def euler_cfg_pp_alternative(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise,
                             callback: Callback) -> torch.Tensor:
    """SamplerEulerCFG++'s "alternative" version: a plain Euler step along the slope of
    x − 2·D_guided + D_unguided (the guided estimate's pull counted twice, the unguided one's
    push-back once), never jumping to the estimate at the last step."""
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        x = x + _d(x - den + _unguided(denoise, den), sigmas[i], den) * (sigmas[i + 1] - sigmas[i])
        callback(i, x, den)
    return x


def dpmpp_2s_ancestral_cfg_pp(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise,
                              callback: Callback) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        uncond = _unguided(denoise, den)
        s_down, s_up = _ancestral(sigmas[i], sigmas[i + 1])
        if s_down == 0:
            x = den
        else:
            h = sigmas[i].log() - s_down.log()
            s_mid = (sigmas[i].log() - h / 2).exp()
            shifted = x + (den - uncond)
            x2 = (s_mid / sigmas[i]) * shifted - torch.expm1(-h / 2) * den
            den2 = denoise(x2, s_mid)
            # as in ComfyUI, the second shift takes the unguided estimate of the midpoint call
            x = (s_down / sigmas[i]) * (x + (den - _unguided(denoise, den2))) - torch.expm1(-h) * den2
        if sigmas[i + 1] > 0:
            x = x + noise(x, sigmas[i], sigmas[i + 1]) * s_up
        callback(i, x, den)
    return x


def dpmpp_2m_cfg_pp(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback) -> torch.Tensor:
    old_uncond = None
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        uncond = _unguided(denoise, den)
        if sigmas[i + 1] == 0:
            x = den
        else:
            h = sigmas[i].log() - sigmas[i + 1].log()
            mix = -(-h).exp() * uncond
            if old_uncond is not None:
                r = (sigmas[i - 1].log() - sigmas[i].log()) / h
                mix = mix - torch.expm1(-h) / (2 * r) * (den - old_uncond)
            x = den + mix + (-h).exp() * x
        old_uncond = uncond
        callback(i, x, den)
    return x


# --- SA-Solver (Xue et al. 2023): stochastic Adams predictor-corrector in λ = −log σ -----------------


def _sa_coefficients(lams: list[float], lam_s: float, lam_t: float, tau: float) -> list[float]:
    """∫ from λ_s to λ_t of (1+τ²)·e^{(1+τ²)(λ−λ_t)}·ℓ_j(λ) dλ for the Lagrange basis ℓ_j on ``lams``
    (oldest first); Gauss–Legendre is exact to rounding for these smooth integrands."""
    k = 1.0 + tau * tau
    nodes, gw = np.polynomial.legendre.leggauss(24)
    half = (lam_t - lam_s) / 2
    lam = half * nodes + (lam_s + lam_t) / 2
    measure = gw * half * k * np.exp(k * (lam - lam_t))
    out = []
    for j, lj in enumerate(lams):
        basis = np.ones_like(lam)
        for m, lm in enumerate(lams):
            if m != j:
                basis *= (lam - lm) / (lj - lm)
        out.append(float(np.sum(basis * measure)))
    return out


def _sa_simple_order_2(lams: list[float], lam_s: float, lam_t: float, tau: float, corrector: bool) -> list[float]:
    """The simplified two-point coefficients of the SA-Solver paper (appendix D), oldest first:
    the exact exponential weight (1 − e^{−(1+τ²)h}) split so the newer estimate's share is the
    trapezoid term ½(1+τ²)h (corrector) or the older one's ½(1+τ²)h²/(λ_older − λ_s) (predictor)."""
    k = 1.0 + tau * tau
    h = lam_t - lam_s
    total = -math.expm1(-k * h)
    if corrector:
        newer = 0.5 * k * h
        return [total - newer, newer]
    older = 0.5 * k * h * h / (lams[-2] - lam_s)
    return [older, total - older]


def _sa_solver(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback,
               pece: bool, predictor_order: int = 3, corrector_order: int = 4,
               stochastic: tuple[float, float] = (0.2, 0.8), eta: float = 1.0, s_noise: float = 1.0,
               sde_sigmas: tuple[float, float] | None = None, simple_order_2: bool = False) -> torch.Tensor:
    """SA-Solver: a stochastic Adams predictor (``predictor_order`` past estimates) and corrector
    (``corrector_order``). Noise strength τ = ``eta`` while σ lies between the sigmas at the
    ``stochastic`` percents of the model's schedule, 0 outside (ComfyUI's default interval, 20–80 %).
    ``pece`` evaluates the model again on each corrected state. Orders drop near the end of a
    schedule that ends at 0. Every SD family shares one training schedule, so the percents are read
    from it unless ``sde_sigmas`` gives the interval's (high, low) sigmas directly (SamplerSASolver
    reads them from its model). ``s_noise`` scales the noise (0: none); ``simple_order_2`` uses the
    paper's simplified coefficients where a step has exactly two points."""
    if len(sigmas) < 2:
        return x
    if sde_sigmas is not None:
        hi, lo = (float(v) for v in sde_sigmas)
    else:
        ms = ModelSampling()
        hi, lo = ms.percent_to_sigma(stochastic[0]), ms.percent_to_sigma(stochastic[1])

    def coefficients(lams: list[float], lam_s: float, lam_t: float, tau_: float, corrector: bool) -> list[float]:
        if simple_order_2 and len(lams) == 2:
            return _sa_simple_order_2(lams, lam_s, lam_t, tau_, corrector)
        return _sa_coefficients(lams, lam_s, lam_t, tau_)

    sig = sigmas.double().cpu().numpy()
    lam = [-math.log(v) if v > 0 else math.inf for v in sig]
    n = len(sigmas)
    to_zero = sig[-1] == 0
    history: list[torch.Tensor] = []
    x_pred, tau, h, step_noise = x, 0.0, 0.0, None
    for i in range(n - 1):
        den = denoise(x_pred, sigmas[i])
        history = (history + [den])[-max(predictor_order, corrector_order):]
        p_order = min(predictor_order, len(history))
        c_order = 0 if i == 0 or (sig[i + 1] == 0 and not pece) else min(corrector_order, len(history))
        if to_zero:
            p_order, c_order = min(p_order, n - 2 - i), min(c_order, n - 1 - i)
        if c_order == 0:
            x = x_pred
        else:
            b = coefficients(lam[i - c_order + 1:i + 1], lam[i - 1], lam[i], tau, True)
            x = (sigmas[i] / sigmas[i - 1]) * math.exp(-tau * tau * h) * x + sum(c * d for c, d in zip(b, history[-c_order:]))
            if step_noise is not None:
                x = x + step_noise
            if pece:
                den = denoise(x, sigmas[i])
                history[-1] = den
        if sig[i + 1] == 0:
            x = den
        else:
            tau = eta if lo <= sig[i + 1] <= hi else 0.0
            b = coefficients(lam[i - p_order + 1:i + 1], lam[i], lam[i + 1], tau, False)
            h = lam[i + 1] - lam[i]
            x_pred = (sigmas[i + 1] / sigmas[i]) * math.exp(-tau * tau * h) * x + sum(c * d for c, d in zip(b, history[-p_order:]))
            step_noise = None
            if tau > 0 and s_noise > 0:
                step_noise = noise(x, sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * math.sqrt(-math.expm1(-2 * tau * tau * h)) * s_noise
                x_pred = x_pred + step_noise
        callback(i, x, den)
    return x


def void_ddim(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback) -> torch.Tensor:
    """VOIDSampler's deterministic DDIM walk in α-space (α = 1 / (1 + σ²)), for models trained on
    inputs of unit scale: ``x`` is the raw initial noise (the sampler marks itself ``raw_start`` so
    the latent is neither scaled by σ nor mixed in), each step re-noises the clean estimate to the
    next α with the implied ε, and the last step to σ = 0 returns the clean estimate."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        den = denoise(x, sigma)
        if float(sigma_next) == 0.0:
            x = den
        else:
            a, a_next = 1.0 / (1.0 + sigma ** 2), 1.0 / (1.0 + sigma_next ** 2)
            eps = (x - a.sqrt() * den) / (1.0 - a).sqrt()
            x = a_next.sqrt() * den + (1.0 - a_next).sqrt() * eps
        callback(i, x, den)
    return x


#: the walk starts from the unscaled noise and ignores the latent and its mask (ComfyUI's VOID sampler)
void_ddim.raw_start = True  # type: ignore[attr-defined]


# In ComfyUI's menu order. Its "_gpu" variants differ only in where their Brownian noise is drawn;
# one seeded generator serves both here, so they map to the same samplers.
SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "euler": euler,
    "euler_cfg_pp": partial(_euler_cfg_pp, eta=0.0),
    "euler_ancestral": euler_ancestral,
    "euler_ancestral_cfg_pp": partial(_euler_cfg_pp, eta=1.0),
    "heun": heun,
    "heunpp2": heunpp2,
    "dpm_2": dpm_2,
    "dpm_2_ancestral": dpm_2_ancestral,
    "lms": lms,
    "dpm_fast": dpm_fast,
    "dpm_adaptive": dpm_adaptive,
    "dpmpp_2s_ancestral": dpmpp_2s_ancestral,
    "dpmpp_2s_ancestral_cfg_pp": dpmpp_2s_ancestral_cfg_pp,
    "dpmpp_sde": dpmpp_sde,
    "dpmpp_sde_gpu": dpmpp_sde,
    "dpmpp_2m": dpmpp_2m,
    "dpmpp_2m_cfg_pp": dpmpp_2m_cfg_pp,
    "dpmpp_2m_sde": dpmpp_2m_sde,
    "dpmpp_2m_sde_gpu": dpmpp_2m_sde,
    "dpmpp_2m_sde_heun": dpmpp_2m_sde_heun,
    "dpmpp_2m_sde_heun_gpu": dpmpp_2m_sde_heun,
    "dpmpp_3m_sde": dpmpp_3m_sde,
    "dpmpp_3m_sde_gpu": dpmpp_3m_sde,
    "ddpm": ddpm,
    "lcm": lcm,
    "ipndm": ipndm,
    "ipndm_v": ipndm_v,
    "deis": deis,
    "res_multistep": partial(_res_multistep, eta=0.0),
    "res_multistep_cfg_pp": partial(_res_multistep, eta=0.0, cfg_pp=True),
    "res_multistep_ancestral": partial(_res_multistep, eta=1.0),
    "res_multistep_ancestral_cfg_pp": partial(_res_multistep, eta=1.0, cfg_pp=True),
    "gradient_estimation": gradient_estimation,
    "gradient_estimation_cfg_pp": partial(gradient_estimation, cfg_pp=True),
    "er_sde": er_sde,
    "seeds_2": partial(_seeds, stages=2),
    "seeds_3": partial(_seeds, stages=3),
    "sa_solver": partial(_sa_solver, pece=False),
    "sa_solver_pece": partial(_sa_solver, pece=True),
    "ddim": euler,  # ComfyUI's "ddim" is the deterministic Euler step; pair it with "ddim_uniform"
    "uni_pc": uni_pc,
    "uni_pc_bh2": uni_pc_bh2,
}
#: samplers whose noise ComfyUI draws from a Brownian tree over the schedule's sigma range (the
#: "_gpu" names keep the tree on the latent's device instead of the CPU)
BROWNIAN = frozenset(name for name in SAMPLERS if name.startswith(("dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde")))
#: samplers that need the unguided estimate next to the guided one (see :func:`_unguided`)
CFG_PP = frozenset(name for name in SAMPLERS if name.endswith("_cfg_pp"))
SAMPLER_NAMES = tuple(SAMPLERS)
