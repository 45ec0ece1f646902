"""``comfy.k_diffusion.sampling``: k-diffusion's sampler functions and helpers, on nodeloom's samplers.

Packs call ``sample_<name>(model, x, sigmas, extra_args, callback, disable, noise_sampler, **options)``
with a k-diffusion denoiser ``model(x, sigma_batch, **extra_args)``; each such function here runs
nodeloom's sampler of that name (:data:`nodeloom.diffusion.samplers.SAMPLERS`) over the same
denoiser. The reverse direction — a pack's k-diffusion function used as a SAMPLER value — is
:func:`as_walk`. ``to_d``, ``append_dims``, ``get_ancestral_step``, ``default_noise_sampler`` and
``BrownianTreeNoiseSampler`` give the quantities k-diffusion defines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from nodeloom.diffusion.samplers import BROWNIAN, SAMPLERS
from nodeloom.diffusion.sampling import brownian_noise, step_noise

__all__ = ["BrownianTreeNoiseSampler", "append_dims", "as_walk", "default_noise_sampler", "get_ancestral_step",
           "to_d", *(f"sample_{name}" for name in SAMPLERS)]


def append_dims(x: torch.Tensor, target_dims: int) -> torch.Tensor:
    """``x`` with trailing singleton dimensions up to ``target_dims``."""
    missing = target_dims - x.ndim
    if missing < 0:
        raise ValueError(f"`append_dims`: input has {x.ndim} dims but target_dims is {target_dims}, which is less")
    return x[(...,) + (None,) * missing]


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """The Karras ODE derivative ``(x − denoised) / σ``."""
    return (x - denoised) / append_dims(torch.as_tensor(sigma, device=x.device, dtype=x.dtype), x.ndim)


def get_ancestral_step(sigma_from: Any, sigma_to: Any, eta: float = 1.0) -> tuple[Any, Any]:
    """``(sigma_down, sigma_up)``: where an ancestral step lands and how much fresh noise it adds."""
    if not eta:
        return sigma_to, 0.0
    sigma_up = min(sigma_to, eta * (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5)
    return (sigma_to ** 2 - sigma_up ** 2) ** 0.5, sigma_up


def default_noise_sampler(x: torch.Tensor, seed: int | None = None) -> Callable[[Any, Any], torch.Tensor]:
    """Standard-normal noise shaped like ``x`` for each step (seeded when ``seed`` is given)."""
    if seed is None:
        return lambda sigma, sigma_next: torch.randn_like(x)
    draw = step_noise(int(seed))
    return lambda sigma, sigma_next: draw(x, sigma, sigma_next)


class BrownianTreeNoiseSampler:
    """Noise from one Brownian path over ``[sigma_min, sigma_max]``: ``sampler(sigma, sigma_next)``
    gives the unit-variance increment between two noise levels (nodeloom's SDE noise)."""

    def __init__(self, x: torch.Tensor, sigma_min: Any, sigma_max: Any, seed: int | None = None,
                 transform: Callable[[torch.Tensor], torch.Tensor] = lambda t: t, cpu: bool = False) -> None:
        self.transform = transform
        bounds = torch.stack([torch.as_tensor(transform(torch.as_tensor(sigma_max))).float(),
                              torch.as_tensor(transform(torch.as_tensor(sigma_min))).float()])
        self._draw = brownian_noise(0 if seed is None else int(seed), x, bounds, on_cpu=cpu)
        self._like = x

    def __call__(self, sigma: Any, sigma_next: Any) -> torch.Tensor:
        a = torch.as_tensor(self.transform(torch.as_tensor(sigma))).float()
        b = torch.as_tensor(self.transform(torch.as_tensor(sigma_next))).float()
        return self._draw(self._like, a, b)


def _denoiser(model: Callable[..., torch.Tensor], extra_args: dict[str, Any]) -> Callable[..., torch.Tensor]:
    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s_in = x.new_ones([x.shape[0]])
        return model(x, torch.as_tensor(sigma, device=x.device, dtype=x.dtype) * s_in, **extra_args)

    return denoise


def _k_function(name: str) -> Callable[..., torch.Tensor]:
    walk = SAMPLERS[name]

    def sample(model: Callable[..., torch.Tensor], x: torch.Tensor, sigmas: torch.Tensor,
               extra_args: dict[str, Any] | None = None, callback: Callable[[dict[str, Any]], None] | None = None,
               disable: bool | None = None, noise_sampler: Callable[[Any, Any], torch.Tensor] | None = None,
               **options: Any) -> torch.Tensor:
        extra = dict(extra_args or {})
        seed = extra.get("seed")
        if noise_sampler is None and name in BROWNIAN:
            draw = brownian_noise(int(seed or 0), x, sigmas, on_cpu=not name.endswith("_gpu"))
        elif noise_sampler is None:
            draw = step_noise(int(seed or 0))
        else:
            draw = lambda like, s, sn: noise_sampler(s, sn)  # noqa: E731 - k-diffusion's two-argument form

        def step(i: int, x_now: torch.Tensor, denoised: torch.Tensor) -> None:
            if callback is not None:
                callback({"x": x_now, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})

        return walk(_denoiser(model, extra), x, sigmas, draw, step, **options)

    sample.__name__ = sample.__qualname__ = f"sample_{name}"
    sample.__doc__ = f"k-diffusion's ``sample_{name}`` signature over nodeloom's `{name}` sampler."
    return sample


globals().update({f"sample_{name}": _k_function(name) for name in SAMPLERS})


def as_walk(function: Callable[..., torch.Tensor], extra_options: dict[str, Any] | None = None) -> Callable[..., torch.Tensor]:
    """A pack's k-diffusion sampler function in nodeloom's sampler signature
    ``walk(denoise, x, sigmas, noise, callback, **options)`` (what ``comfy.samplers.KSAMPLER`` holds)."""
    fixed = dict(extra_options or {})

    def walk(denoise: Callable[..., torch.Tensor], x: torch.Tensor, sigmas: torch.Tensor, noise: Callable[..., torch.Tensor],
             callback: Callable[[int, torch.Tensor, torch.Tensor], None], **options: Any) -> torch.Tensor:
        like = x

        def model(x_in: torch.Tensor, sigma: torch.Tensor, **_: Any) -> torch.Tensor:
            return denoise(x_in, torch.as_tensor(sigma).reshape(-1)[0])

        return function(model, x, sigmas, extra_args={}, disable=False, noise_sampler=lambda s, sn: noise(like, s, sn),
                        callback=lambda d: callback(int(d["i"]), d["x"], d["denoised"]), **{**fixed, **options})

    return walk
