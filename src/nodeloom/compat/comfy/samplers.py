"""``comfy.samplers``: sampler and scheduler names and the ``KSampler`` entry point, on nodeloom's loop.

``KSampler.SAMPLERS`` / ``SCHEDULERS`` are nodeloom's supported names (ComfyUI's names for the
same algorithms). ``KSampler(model, steps, device, sampler, scheduler, denoise).sample(...)``
and ``CFGGuider`` run :func:`nodeloom.diffusion.sampling.sample_sigmas` on a nodeloom MODEL,
under the engine's model manager and device lock. SAMPLER values are the ones nodeloom's
``KSamplerSelect`` makes, so they flow between pack nodes and built-in ones.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

from nodeloom.core.context import current_services
from nodeloom.diffusion.models import DiffusionModel
from nodeloom.diffusion.samplers import DISCARD_PENULTIMATE, SAMPLER_NAMES
from nodeloom.diffusion.sampling import sample_sigmas, sampler_sigmas
from nodeloom.diffusion.schedules import SCHEDULER_NAMES
from nodeloom.diffusion.schedules import calculate_sigmas as _calculate_sigmas
from nodeloom.nodes.diffusion.custom_sampling import SamplerChoice

__all__ = [
    "KSAMPLER_NAMES", "SAMPLER_NAMES", "SCHEDULER_NAMES", "CFGGuider", "KSampler", "calculate_sigmas",
    "check_model", "engine_manager", "ksampler", "run_sigmas", "sampler_object",
]

KSAMPLER_NAMES = list(SAMPLER_NAMES)


def check_model(model: Any, call: str) -> DiffusionModel:
    """``model`` if it is a nodeloom MODEL, else a TypeError naming ``call``."""
    if not isinstance(model, DiffusionModel):
        raise TypeError(f"`{call}` needs a nodeloom MODEL (from a nodeloom loader), got {type(model).__name__}")
    return model


@contextlib.contextmanager
def engine_manager() -> Iterator[Any]:
    """The active engine's model manager with its device lock held (None outside an engine)."""
    services = current_services(required=False)
    manager = getattr(services, "models", None) if services is not None else None
    if manager is None:
        yield None
        return
    with manager.device_lock:
        yield manager


def _step_callback(callback: Callable[..., Any] | None, total: int, disable_pbar: bool) -> Callable[..., Any] | None:
    """ComfyUI's ``callback(step, x0, x, total_steps)`` over nodeloom's ``(step, total, denoised)``.

    nodeloom's loop reports the denoised estimate only, so it is passed as both ``x0`` and ``x``.
    """
    if callback is None:
        if disable_pbar or total < 1:
            return None
        from nodeloom.compat.comfy.utils import ProgressBar

        bar = ProgressBar(total)
        return lambda step, steps, den: bar.update_absolute(step, steps)
    return lambda step, steps, den: callback(step - 1, den, den, steps)


def run_sigmas(model: DiffusionModel, noise: torch.Tensor, latent_image: torch.Tensor, sigmas: torch.Tensor, *,
               positive: list[Any], negative: list[Any] | None, cfg: float, sampler: SamplerChoice,
               denoise_mask: torch.Tensor | None = None, callback: Callable[..., Any] | None = None,
               disable_pbar: bool = False, seed: int | None = None) -> torch.Tensor:
    """Denoise raw ``latent_image`` from ``noise`` along ``sigmas``; returns raw samples."""
    latent: dict[str, Any] = {"samples": latent_image}
    if denoise_mask is not None:
        latent["noise_mask"] = denoise_mask
    total = max(len(sigmas) - 1, 0)
    with engine_manager() as manager:
        out, _ = sample_sigmas(model, latent, sigmas, seed=int(seed or 0), cfg=cfg, sampler_name=sampler.name,
                               positive=positive, negative=negative, manager=manager,
                               callback=_step_callback(callback, total, disable_pbar),
                               sampler_options=dict(sampler.options), noise=noise)
    return out["samples"]


def calculate_sigmas(model_sampling: Any, scheduler_name: str, steps: int) -> torch.Tensor:
    """The sigmas of a named scheduler for a MODEL's (or its ``sampling``'s) noise schedule."""
    sampling = getattr(model_sampling, "sampling", model_sampling)
    return _calculate_sigmas(sampling, scheduler_name, steps)


def sampler_object(name: str) -> SamplerChoice:
    """The SAMPLER value of a named algorithm (as KSamplerSelect outputs).

    Raises:
        ValueError: an unknown sampler name.
    """
    if name not in SAMPLER_NAMES:
        raise ValueError(f"`sampler_name` '{name}' is not supported; supported: {', '.join(SAMPLER_NAMES)}")
    return SamplerChoice(name)


def ksampler(sampler_name: str, extra_options: dict[str, Any] | None = None, inpaint_options: Any = None) -> SamplerChoice:
    """A SAMPLER value with keyword options (``eta``, ``s_noise``...)."""
    sampler_object(sampler_name)
    return SamplerChoice(sampler_name, tuple(sorted((extra_options or {}).items())))


_HONOURED_OPTIONS = {"sampler_pre_cfg_function", "sampler_cfg_function", "sampler_post_cfg_function",
                     "disable_cfg1_optimization"}


def _with_options(model: DiffusionModel, options: dict[str, Any]) -> DiffusionModel:
    """``model``, or a clone carrying the honoured entries of ``options``."""
    refused = sorted(k for k, v in options.items() if k not in _HONOURED_OPTIONS and v not in ({}, [], None))
    if refused:
        raise ValueError(f"`comfy.samplers.KSampler`: `model_options` {refused} cannot be applied by nodeloom "
                         f"(it honours {sorted(_HONOURED_OPTIONS)})")
    if not any(k in options for k in _HONOURED_OPTIONS):
        return model
    patched = model.clone()
    patched.model_options.update({k: v for k, v in options.items() if k in _HONOURED_OPTIONS})
    return patched


class KSampler:
    """ComfyUI's ``KSampler`` object: a schedule for ``steps`` and a ``sample`` method.

    Args:
        model: a nodeloom MODEL.
        steps: steps of the full schedule.
        device: accepted for compatibility (the engine's model manager places the model).
        sampler / scheduler: names from :attr:`SAMPLERS` / :attr:`SCHEDULERS`.
        denoise: share of the schedule to run (None: all).
        model_options: ComfyUI's patch dict: the CFG functions are honoured (see
            :func:`nodeloom.diffusion.sampling.apply_cfg_patches`), any other patch is refused.

    Raises:
        TypeError: ``model`` is not a nodeloom MODEL.
        ValueError: a ``model_options`` patch nodeloom cannot apply.
    """

    SCHEDULERS = list(SCHEDULER_NAMES)
    SAMPLERS = list(SAMPLER_NAMES)
    DISCARD_PENULTIMATE_SIGMA_SAMPLERS = set(DISCARD_PENULTIMATE)

    def __init__(self, model: Any, steps: int, device: Any = None, sampler: str | None = None,
                 scheduler: str | None = None, denoise: float | None = None, model_options: dict[str, Any] | None = None) -> None:
        self.model = _with_options(check_model(model, "comfy.samplers.KSampler"), model_options or {})
        self.device, self.steps = device, int(steps)
        self.sampler = sampler or SAMPLER_NAMES[0]
        self.scheduler = scheduler or SCHEDULER_NAMES[0]
        self.denoise = 1.0 if denoise is None else float(denoise)
        self.sigmas = sampler_sigmas(self.model, self.scheduler, self.sampler, self.steps, self.denoise)

    def sample(self, noise: torch.Tensor, positive: list[Any], negative: list[Any], cfg: float,
               latent_image: torch.Tensor | None = None, start_step: int | None = None, last_step: int | None = None,
               force_full_denoise: bool = False, denoise_mask: torch.Tensor | None = None,
               sigmas: torch.Tensor | None = None, callback: Callable[..., Any] | None = None,
               disable_pbar: bool = False, seed: int | None = None) -> torch.Tensor:
        """Denoise; returns the raw output samples (latent_image None: start from zeros)."""
        if sigmas is None:
            sigmas = sampler_sigmas(self.model, self.scheduler, self.sampler, self.steps, self.denoise,
                                    start_step, last_step, force_full_denoise)
        latent = torch.zeros_like(noise) if latent_image is None else latent_image
        if len(sigmas) < 2:
            return latent
        return run_sigmas(self.model, noise, latent, sigmas, positive=positive, negative=negative, cfg=cfg,
                          sampler=SamplerChoice(self.sampler), denoise_mask=denoise_mask, callback=callback,
                          disable_pbar=disable_pbar, seed=seed)


class CFGGuider:
    """ComfyUI's ``CFGGuider``: set conditionings and a scale, then ``sample`` with a SAMPLER.

    Raises:
        TypeError: ``model_patcher`` is not a nodeloom MODEL.
    """

    def __init__(self, model_patcher: Any) -> None:
        self.model_patcher = check_model(model_patcher, "comfy.samplers.CFGGuider")
        self.conds: dict[str, list[Any]] = {}
        self.cfg = 1.0

    def set_conds(self, positive: list[Any], negative: list[Any] | None = None) -> None:
        self.conds = {"positive": positive} if negative is None else {"positive": positive, "negative": negative}

    def set_cfg(self, cfg: float) -> None:
        self.cfg = float(cfg)

    def sample(self, noise: torch.Tensor, latent_image: torch.Tensor, sampler: Any, sigmas: torch.Tensor,
               denoise_mask: torch.Tensor | None = None, callback: Callable[..., Any] | None = None,
               disable_pbar: bool = False, seed: int | None = None) -> torch.Tensor:
        if "positive" not in self.conds:
            raise ValueError("`CFGGuider.sample`: call `set_conds(positive, negative)` first")
        if not isinstance(sampler, SamplerChoice):
            raise TypeError(f"`CFGGuider.sample` needs a nodeloom SAMPLER (KSamplerSelect, `sampler_object`), "
                            f"got {type(sampler).__name__}")
        return run_sigmas(self.model_patcher, noise, latent_image, sigmas, positive=self.conds["positive"],
                          negative=self.conds.get("negative"), cfg=self.cfg, sampler=sampler,
                          denoise_mask=denoise_mask, callback=callback, disable_pbar=disable_pbar, seed=seed)
