"""Samplers on sigmas, under ComfyUI's ``sampler_name`` values.

Every sampler has one signature: ``sampler(denoise, x, sigmas, noise, callback) -> x`` where
``denoise(x, sigma)`` returns the model's clean-image estimate, ``x`` starts noised at
``sigmas[0]``, ``noise(x)`` draws seeded Gaussian noise (stochastic samplers only) and
``callback(i, x, denoised)`` runs after each step (progress, previews, interruption). Written from
the published update rules (Karras et al. 2022; DPM-Solver++; UniPC; LCM). Pure torch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

__all__ = ["DISCARD_PENULTIMATE", "SAMPLERS", "SAMPLER_NAMES"]

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Noise = Callable[[torch.Tensor], torch.Tensor]
Callback = Callable[[int, torch.Tensor, torch.Tensor], None]

#: samplers whose schedule drops the smallest non-zero sigma (as ComfyUI does).
DISCARD_PENULTIMATE = frozenset({"dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"})


def _d(x: torch.Tensor, sigma: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    return (x - den) / sigma


def _ancestral(s_from: torch.Tensor, s_to: torch.Tensor, eta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a step into a deterministic part down to ``sigma_down`` and fresh noise ``sigma_up``."""
    if not eta:
        return s_to, torch.zeros_like(s_to)
    s_up = torch.minimum(s_to, eta * (s_to ** 2 * (s_from ** 2 - s_to ** 2) / s_from ** 2) ** 0.5)
    return (s_to ** 2 - s_up ** 2) ** 0.5, s_up


def euler(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        x = x + _d(x, sigmas[i], den) * (sigmas[i + 1] - sigmas[i])
        callback(i, x, den)
    return x


def euler_ancestral(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        s_down, s_up = _ancestral(sigmas[i], sigmas[i + 1])
        x = x + _d(x, sigmas[i], den) * (s_down - sigmas[i])
        x = x + noise(x) * s_up  # drawn at every step, so the random stream stays aligned
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
        x = _dpm2_step(denoise, x, sigmas[i], s_down, den) + noise(x) * s_up
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
        cur = min(i + 1, order)
        coeffs = [_lms_coefficient(sig, i, j, cur) for j in range(cur)]
        x = x + sum(c * d for c, d in zip(coeffs, reversed(ds)))
        callback(i, x, den)
    return x


def dpmpp_2s_ancestral(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        s_down, s_up = _ancestral(sigmas[i], sigmas[i + 1])
        if s_down == 0:
            x = x + _d(x, sigmas[i], den) * (s_down - sigmas[i])
        else:
            t, t_next = -sigmas[i].log(), -s_down.log()
            h = t_next - t
            s = t + h / 2
            x2 = ((-s).exp() / (-t).exp()) * x - torch.expm1(-h / 2) * den
            den2 = denoise(x2, (-s).exp())
            x = ((-t_next).exp() / (-t).exp()) * x - torch.expm1(-h) * den2
        x = x + noise(x) * s_up
        callback(i, x, den)
    return x


def dpmpp_sde(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback,
              eta: float = 1.0, r: float = 0.5) -> torch.Tensor:
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
            x2 = ((-s_).exp() / (-t).exp()) * x - torch.expm1(t - s_) * den + noise(x) * su
            den2 = denoise(x2, (-s).exp())
            sd, su = _ancestral((-t).exp(), (-t_next).exp(), eta)
            t_next_ = -sd.log()
            fac = 1 / (2 * r)
            den_d = (1 - fac) * den + fac * den2
            x = ((-t_next_).exp() / (-t).exp()) * x - torch.expm1(t - t_next_) * den_d + noise(x) * su
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
                 eta: float = 1.0, solver: str = "midpoint") -> torch.Tensor:
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
            x = x + noise(x) * sigmas[i + 1] * (-torch.expm1(-2 * eta_h)).sqrt()
            h_last = h
        old = den
        callback(i, x, den)
    return x


def dpmpp_2m_sde_heun(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise,
                      callback: Callback) -> torch.Tensor:
    return dpmpp_2m_sde(denoise, x, sigmas, noise, callback, solver="heun")


def dpmpp_3m_sde(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback,
                 eta: float = 1.0) -> torch.Tensor:
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
            x = x + noise(x) * sigmas[i + 1] * (-torch.expm1(-2 * h * eta)).sqrt()
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
        n = noise(x)
        if s_prev > 0:
            mu = mu + ((1 - alpha) * (1 - a_prev) / (1 - a_cum)).sqrt() * n
            mu = mu * (1 + s_prev ** 2).sqrt()
        x = mu
        callback(i, x, den)
    return x


def lcm(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        x = den
        if sigmas[i + 1] > 0:
            x = x + noise(x) * sigmas[i + 1]
        callback(i, x, den)
    return x


def _unipc(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, callback: Callback, bh2: bool,
           max_order: int = 3) -> torch.Tensor:
    """UniPC (Zhao et al. 2023), data prediction, predictor + corrector sharing one model call per step."""
    n = len(sigmas) - 1
    lam = [-s.log() if s > 0 else None for s in sigmas]
    history: list[tuple[torch.Tensor, torch.Tensor]] = []  # (lambda, model output)
    model = denoise(x, sigmas[0])
    history.append((lam[0], model))
    for i in range(n):
        if sigmas[i + 1] == 0:
            x = model
            callback(i, x, model)
            break
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


# In ComfyUI's menu order. Its "_gpu" variants differ only in where their Brownian noise is drawn;
# one seeded generator serves both here, so they map to the same samplers.
SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "euler": euler,
    "euler_ancestral": euler_ancestral,
    "heun": heun,
    "dpm_2": dpm_2,
    "dpm_2_ancestral": dpm_2_ancestral,
    "lms": lms,
    "dpmpp_2s_ancestral": dpmpp_2s_ancestral,
    "dpmpp_sde": dpmpp_sde,
    "dpmpp_sde_gpu": dpmpp_sde,
    "dpmpp_2m": dpmpp_2m,
    "dpmpp_2m_sde": dpmpp_2m_sde,
    "dpmpp_2m_sde_gpu": dpmpp_2m_sde,
    "dpmpp_2m_sde_heun": dpmpp_2m_sde_heun,
    "dpmpp_2m_sde_heun_gpu": dpmpp_2m_sde_heun,
    "dpmpp_3m_sde": dpmpp_3m_sde,
    "dpmpp_3m_sde_gpu": dpmpp_3m_sde,
    "ddpm": ddpm,
    "lcm": lcm,
    "ddim": euler,  # ComfyUI's "ddim" is the deterministic Euler step; pair it with "ddim_uniform"
    "uni_pc": uni_pc,
    "uni_pc_bh2": uni_pc_bh2,
}
SAMPLER_NAMES = tuple(SAMPLERS)
