"""``comfy.samplers``: sampler and scheduler names and the ``KSampler`` entry point, on nodeloom's loop.

``KSampler.SAMPLERS`` / ``SCHEDULERS`` are nodeloom's supported names (ComfyUI's names for the
same algorithms). ``KSampler(model, steps, device, sampler, scheduler, denoise).sample(...)``
and ``CFGGuider`` run :func:`nodeloom.diffusion.sampling.sample_sigmas` on a nodeloom MODEL,
under the engine's model manager and device lock. SAMPLER values are the ones nodeloom's
``KSamplerSelect`` makes, so they flow between pack nodes and built-in ones.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any

import torch

from nodeloom.core.context import current_services
from nodeloom.diffusion.lora import lora_active
from nodeloom.diffusion.models import DiffusionModel
from nodeloom.diffusion.samplers import DISCARD_PENULTIMATE, SAMPLER_NAMES
from nodeloom.diffusion.sampling import guided_estimate, sample_sigmas, sampler_sigmas
from nodeloom.diffusion.schedules import SCHEDULER_NAMES
from nodeloom.diffusion.schedules import calculate_sigmas as _calculate_sigmas
from nodeloom.nodes.diffusion.custom_sampling import SamplerChoice

__all__ = [
    "KSAMPLER", "KSAMPLER_NAMES", "SAMPLER_NAMES", "SCHEDULER_NAMES", "CFGGuider", "KSampler", "calculate_sigmas",
    "check_model", "engine_manager", "ksampler", "run_sigmas", "sampler_object", "sampling_function",
]

#: True while :func:`run_sigmas` samples in this context (the UNet's LoRAs are active then)
_sampling: contextvars.ContextVar[bool] = contextvars.ContextVar("nodeloom_pack_sampling", default=False)

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
               disable_pbar: bool = False, seed: int | None = None,
               predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Denoise raw ``latent_image`` from ``noise`` along ``sigmas``; returns raw samples.
    ``predict(x, sigma)`` replaces the guided estimate (a pack guider's ``predict_noise``)."""
    latent: dict[str, Any] = {"samples": latent_image}
    if denoise_mask is not None:
        latent["noise_mask"] = denoise_mask
    total = max(len(sigmas) - 1, 0)
    token = _sampling.set(True)
    try:
        with engine_manager() as manager:
            out, _ = sample_sigmas(model, latent, sigmas, seed=int(seed or 0), cfg=cfg, sampler_name=sampler.name,
                                   positive=positive, negative=negative, manager=manager,
                                   callback=_step_callback(callback, total, disable_pbar),
                                   sampler_options=dict(sampler.options), noise=noise,
                                   walk=getattr(sampler, "walk", None), predict=predict)
    finally:
        _sampling.reset(token)
    return out["samples"]


def sampling_function(model: Any, x: torch.Tensor, timestep: Any, uncond: list[Any] | None, cond: list[Any],
                      cond_scale: float, model_options: dict[str, Any] | None = None, seed: int | None = None) -> torch.Tensor:
    """One guided clean-image estimate of model-space ``x`` at noise level ``timestep`` (σ): CFG
    between CONDITIONING lists ``cond`` and ``uncond`` (None: ``cond`` alone) on a nodeloom MODEL,
    with the CFG functions of ``model_options`` (or the MODEL's own)."""
    model = _with_options(check_model(model, "comfy.samplers.sampling_function"), model_options or {},
                          "comfy.samplers.sampling_function")
    if _sampling.get():
        return guided_estimate(model, x, torch.as_tensor(timestep), cond, uncond, cond_scale)
    with lora_active(model.unet, model.loras, part="unet"):
        return guided_estimate(model, x, torch.as_tensor(timestep), cond, uncond, cond_scale)


def KSAMPLER(sampler_function: Callable[..., torch.Tensor], extra_options: dict[str, Any] | None = None,  # noqa: N802
             inpaint_options: dict[str, Any] | None = None) -> SamplerChoice:
    """A SAMPLER value running a pack's k-diffusion-style sampler function
    (``fn(model, x, sigmas, extra_args, callback, disable, noise_sampler, **extra_options)``)."""
    from nodeloom.compat.comfy.k_diffusion_sampling import as_walk

    if not callable(sampler_function):
        raise TypeError(f"`comfy.samplers.KSAMPLER` needs a sampler function, got {type(sampler_function).__name__}")
    name = getattr(sampler_function, "__name__", "custom")
    return SamplerChoice(f"custom:{name}", (), walk=as_walk(sampler_function, extra_options))


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
#: entries that carry information to patches rather than patch anything themselves
_CARRIED_OPTIONS = {"transformer_options"}


def _with_options(model: DiffusionModel, options: dict[str, Any], call: str = "comfy.samplers.KSampler") -> DiffusionModel:
    """``model``, or a clone carrying the honoured entries of ``options``."""
    refused = sorted(k for k, v in options.items()
                     if k not in _HONOURED_OPTIONS | _CARRIED_OPTIONS and v not in ({}, [], None))
    if refused:
        raise ValueError(f"`{call}`: `model_options` {refused} cannot be applied by nodeloom "
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

    Subclasses that override ``predict_noise(x, timestep, model_options, seed)`` (scheduled CFG
    and the like) are honoured: each step's estimate is theirs, and ``sampling_function(self.inner_model,
    ...)`` inside it is the plain guided estimate. ``model_options["transformer_options"]["sample_sigmas"]``
    holds the schedule being walked, as in ComfyUI.

    Raises:
        TypeError: ``model_patcher`` is not a nodeloom MODEL.
    """

    def __init__(self, model_patcher: Any) -> None:
        self.model_patcher = check_model(model_patcher, "comfy.samplers.CFGGuider")
        self.inner_model = self.model_patcher
        self.model_options = self.model_patcher.model_options
        self.conds: dict[str, list[Any]] = {}
        self.cfg = 1.0

    def set_conds(self, positive: list[Any], negative: list[Any] | None = None) -> None:
        self.conds = {"positive": positive} if negative is None else {"positive": positive, "negative": negative}

    def set_cfg(self, cfg: float) -> None:
        self.cfg = float(cfg)

    def predict_noise(self, x: torch.Tensor, timestep: Any, model_options: dict[str, Any] | None = None,
                      seed: int | None = None) -> torch.Tensor:
        """The guided clean-image estimate at ``x``, σ = ``timestep``."""
        return sampling_function(self.inner_model, x, timestep, self.conds.get("negative"), self.conds.get("positive"),
                                 self.cfg, model_options=model_options, seed=seed)

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.predict_noise(*args, **kwargs)

    def _predict(self, sigmas: torch.Tensor, seed: int | None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
        if type(self).predict_noise is CFGGuider.predict_noise:
            return None  # the loop's own guidance is the same estimate, batched
        options = dict(self.model_options)
        options["transformer_options"] = {**options.get("transformer_options", {}), "sample_sigmas": sigmas}
        return lambda x, sigma: self.predict_noise(x, sigma.reshape(-1)[:1].expand(x.shape[0]), options, seed)

    def sample(self, noise: torch.Tensor, latent_image: torch.Tensor, sampler: Any, sigmas: torch.Tensor,
               denoise_mask: torch.Tensor | None = None, callback: Callable[..., Any] | None = None,
               disable_pbar: bool = False, seed: int | None = None) -> torch.Tensor:
        if "positive" not in self.conds:
            raise ValueError("`CFGGuider.sample`: call `set_conds(positive, negative)` first")
        if not isinstance(sampler, SamplerChoice):
            raise TypeError(f"`CFGGuider.sample` needs a nodeloom SAMPLER (KSamplerSelect, `sampler_object`, `KSAMPLER`), "
                            f"got {type(sampler).__name__}")
        sigmas = torch.as_tensor(sigmas, dtype=torch.float32).flatten()
        return run_sigmas(self.model_patcher, noise, latent_image, sigmas, positive=self.conds["positive"],
                          negative=self.conds.get("negative"), cfg=self.cfg, sampler=sampler,
                          denoise_mask=denoise_mask, callback=callback, disable_pbar=disable_pbar, seed=seed,
                          predict=self._predict(sigmas, seed))
