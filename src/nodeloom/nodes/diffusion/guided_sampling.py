"""Custom-sampling nodes of newer ComfyUI templates, with ComfyUI's node ids and inputs: SamplerLCM
(LCM with tunable per-step noise, HiDream-O1), Ideogram4Scheduler (Ideogram 4's logit-normal
schedule) and DualModelGuider (a conditional and an unconditional model under one CFG, Ideogram 4).

The math lives in model code (:func:`nodeloom.diffusion.samplers.lcm`,
:mod:`nodeloom.diffusion.logit_normal`, :func:`nodeloom.diffusion.sampling.guided_estimate`);
these nodes wrap it into SAMPLER, SIGMAS and GUIDER values for SamplerCustom(Advanced).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch

from nodeloom.diffusion.cfg_patches import CFG_OVERRIDES, cfg_at
from nodeloom.diffusion.flow import accelerator_dtype
from nodeloom.diffusion.logit_normal import ideogram4_sigmas
from nodeloom.diffusion.lora import lora_active
from nodeloom.diffusion.models import DiffusionModel
from nodeloom.diffusion.sampling import apply_cfg_patches, guided_estimate
from nodeloom.node_api import Conditioning, Float, Int, Model, Node, Output, Schema, ValidationError
from nodeloom.nodes.diffusion.custom_sampling import GUIDER, SAMPLER, SIGMAS, Guider, SamplerChoice

__all__ = ["DualModelGuider", "Ideogram4Scheduler", "SamplerLCM", "text_free"]

_CATEGORY = "sampling/custom_sampling"


class SamplerLCM(Node):
    """LCM sampler with tunable per-step noise: after each step's jump to the clean estimate the fresh noise is clamped to ±`noise_clip_std` standard deviations and scaled by a factor moving linearly from `s_noise` (first step) to `s_noise_end` (last step), a multiplier on the model's training noise scale (ModelNoiseScale)."""

    SCHEMA = Schema(
        "SamplerLCM", display_name="SamplerLCM", category=f"{_CATEGORY}/samplers",
        description="LCM sampler with tunable per-step noise. s_noise is a multiplier on the model's training "
                    "noise scale.",
        inputs=[
            Float("s_noise", 1.0, min=0.0, max=64.0, step=0.01,
                  tooltip="Scale on the noise added at the first step; 1.0 is the training noise level."),
            Float("s_noise_end", 1.0, min=0.0, max=64.0, step=0.01,
                  tooltip="Scale on the noise added at the last step; set it equal to s_noise to keep the "
                          "scale constant."),
            Float("noise_clip_std", 0.0, min=0.0, max=10.0, step=0.01,
                  tooltip="Limit the noise added each step to N standard deviations either way; 0 means no "
                          "limit."),
        ],
        outputs=[Output(SAMPLER, "SAMPLER")],
    )

    @classmethod
    def execute(cls, s_noise: float, s_noise_end: float, noise_clip_std: float) -> tuple[Any, ...]:
        for name, value, high in (("s_noise", s_noise, 64.0), ("s_noise_end", s_noise_end, 64.0),
                                  ("noise_clip_std", noise_clip_std, 10.0)):
            if not 0.0 <= float(value) <= high:
                raise ValidationError(f"SamplerLCM: `{name}` must be between 0 and {high}, got {value}")
        options = (("s_noise", float(s_noise)), ("s_noise_end", float(s_noise_end)),
                   ("noise_clip_std", float(noise_clip_std)))
        return (SamplerChoice("lcm", options),)


class Ideogram4Scheduler(Node):
    """Ideogram 4's reference schedule: `steps` + 1 sigmas evenly spaced in the quantiles of a logit-normal distribution (mean `mu` plus ½·ln(width·height / 512²), spread `std`), clamped to log-SNR −15…18 and ending at 0."""

    SCHEMA = Schema(
        "Ideogram4Scheduler", display_name="Ideogram 4 Scheduler", category=f"{_CATEGORY}/schedulers",
        inputs=[
            Int("steps", 20, min=1, max=200, tooltip="Number of sampling steps; the output holds steps + 1 sigmas."),
            Int("width", 1024, min=256, max=8192, step=16,
                tooltip="The image width in pixels; the resolution relative to 512×512 shifts the schedule."),
            Int("height", 1024, min=256, max=8192, step=16,
                tooltip="The image height in pixels; the resolution relative to 512×512 shifts the schedule."),
            Float("mu", 0.0, min=-10.0, max=10.0, step=0.05,
                  tooltip="Mean of the logit-normal distribution (the log-SNR shift at 512×512)."),
            Float("std", 1.75, min=0.1, max=5.0, step=0.05, tooltip="Spread of the logit-normal distribution."),
        ],
        outputs=[Output(SIGMAS, "SIGMAS")],
    )

    @classmethod
    def execute(cls, steps: int, width: int, height: int, mu: float, std: float) -> tuple[Any, ...]:
        if int(steps) < 1:
            raise ValidationError(f"Ideogram4Scheduler: `steps` must be >= 1, got {steps}")
        if int(width) < 1 or int(height) < 1:
            raise ValidationError(f"Ideogram4Scheduler: `width` and `height` must be positive, got {width}×{height}")
        if not float(std) > 0:
            raise ValidationError(f"Ideogram4Scheduler: `std` must be > 0, got {std}")
        return (ideogram4_sigmas(int(steps), int(width), int(height), float(mu), float(std)),)


def text_free(conditioning: list[Any]) -> list[Any]:
    """The conditioning with its text removed (contexts and pooled vectors zeroed, as
    ConditioningZeroOut does); other entries (reference latents, sizes) kept."""
    out = []
    for item in conditioning:
        extra = dict(item[1]) if len(item) > 1 else {}
        if extra.get("pooled_output") is not None:
            extra["pooled_output"] = torch.zeros_like(extra["pooled_output"])
        out.append([torch.zeros_like(item[0]), extra])
    return out


def _bare(model: DiffusionModel) -> DiffusionModel:
    """The model without its guidance patches, for one side's estimate (they act on the combination)."""
    bare = model.clone(post_cfg=())
    bare.extra.pop(CFG_OVERRIDES, None)
    options = bare.extra.get("model_options")
    if options:
        for key in ("sampler_cfg_function", "sampler_pre_cfg_function", "sampler_post_cfg_function",
                    "disable_cfg1_optimization"):
            options.pop(key, None)
    return bare


def _combine(model: DiffusionModel, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor,
             uncond: torch.Tensor | None, cfg: float) -> torch.Tensor:
    """CFG of the two estimates with ``model``'s guidance patches (CFGOverride, cfg functions, post-CFG)."""
    scale = cfg_at(model.extra, model.sampling, sigma, cfg)
    guided = apply_cfg_patches(model, x, sigma, cond, uncond, scale)
    for fn in model.post_cfg:
        guided = fn({"denoised": guided, "cond_denoised": cond, "cond_scale": scale, "input": x, "sigma": sigma,
                     "uncond_denoised": torch.zeros_like(cond) if uncond is None else uncond})
    return guided


def _pair_predictor(model: DiffusionModel, model_negative: DiffusionModel, positive: list[Any],
                    negative: list[Any], cfg: float) -> Callable[[Any], Any]:
    """``predictor(manager)`` for :class:`Guider`: each step the positive conditioning through
    ``model`` and the negative through ``model_negative``, combined by CFG (the negative pass is
    skipped at cfg 1 unless the model's patches need it)."""

    @contextlib.contextmanager
    def predictor(manager: Any) -> Iterator[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
        pos, neg = _bare(model), _bare(model_negative)
        options = model.extra.get("model_options") or {}
        skip_neg = math.isclose(cfg, 1.0) and not options.get("disable_cfg1_optimization")
        own = neg.unet is not pos.unet  # a second module: placed and LoRA-patched here, the first by the sampler
        with contextlib.ExitStack() as stack:
            ready: list[bool] = []

            def prepare() -> None:  # at the first step, after the sampler placed the positive model, as it does
                if manager is not None:
                    manager.prepare(neg.unet, dtype=accelerator_dtype(manager) if neg.adapter is not None else None)
                stack.enter_context(lora_active(neg.unet, neg.loras, part="unet"))
                ready.append(True)

            def predict(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
                cond = guided_estimate(pos, x, sigma, positive, None, 1.0)
                uncond = None
                if not skip_neg:
                    if own and not ready:
                        prepare()
                    uncond = guided_estimate(neg, x, sigma, negative, None, 1.0)
                return _combine(model, x, sigma, cond, uncond, cfg)

            yield predict

    return predictor


class DualModelGuider(Node):
    """Classifier-free guidance across two models: the positive conditioning runs through `model`, the negative through `model_negative` (the same model when unconnected); with no `negative` the unconditional pass gets the positive conditioning with its text zeroed."""

    SCHEMA = Schema(
        "DualModelGuider", display_name="Dual Model CFG Guider", category=f"{_CATEGORY}/guiders",
        inputs=[
            Model("model", tooltip="The model that runs the positive (conditional) prediction."),
            Model("model_negative", optional=True,
                  tooltip="The model that runs the negative (unconditional) prediction; plain CFG uses the "
                          "same model as model."),
            Conditioning("positive", tooltip="The conditioning describing what to include."),
            Float("cfg", 4.0, min=0.0, max=100.0, step=0.1, round=0.01, tooltip="Classifier-free guidance scale."),
            Conditioning("negative", optional=True,
                         tooltip="Conditioning fed to model_negative. When unconnected the unconditional "
                                 "prediction uses no text (image conditioning only)."),
        ],
        outputs=[Output(GUIDER, "GUIDER")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, positive: list[Any], cfg: float, model_negative: DiffusionModel | None = None,
                negative: list[Any] | None = None) -> tuple[Any, ...]:
        if not positive:
            raise ValidationError("DualModelGuider: `positive` must hold at least one conditioning")
        if negative is not None and not negative:
            raise ValidationError("DualModelGuider: `negative` must hold at least one conditioning when connected")
        other = model if model_negative is None else model_negative
        if other.family != model.family:
            raise ValidationError(f"DualModelGuider: `model_negative` is a {other.family} model but `model` is "
                                  f"{model.family}; both passes must denoise the same latent space")
        neg = list(negative) if negative is not None else text_free(positive)
        predictor = _pair_predictor(model, other, list(positive), neg, float(cfg))
        return (Guider(model, list(positive), None, float(cfg), predictor=predictor),)
