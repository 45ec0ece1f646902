"""Sampling nodes: KSampler and KSamplerAdvanced (ComfyUI names, inputs, defaults and ranges)."""

from __future__ import annotations

from typing import Any

from nodeloom.diffusion.models import DiffusionModel
from nodeloom.diffusion.samplers import SAMPLER_NAMES
from nodeloom.diffusion.sampling import sample
from nodeloom.diffusion.schedules import SCHEDULER_NAMES
from nodeloom.node_api import IO, Combo, Conditioning, Float, Int, Latent, Model, Node, Output, Schema
from nodeloom.nodes.diffusion._common import device_guard, step_progress

__all__ = ["KSampler", "KSamplerAdvanced", "check_sampler_names"]

_SEED_MAX = 0xFFFFFFFFFFFFFFFF


def check_sampler_names(sampler_name: Any = None, scheduler: Any = None) -> bool | str:
    """VALIDATE_INPUTS for sampler/scheduler combos: an error listing what is supported."""
    if sampler_name is not None and sampler_name not in SAMPLER_NAMES:
        return f"`sampler_name` '{sampler_name}' is not supported; supported: {', '.join(SAMPLER_NAMES)}"
    if scheduler is not None and scheduler not in SCHEDULER_NAMES:
        return f"`scheduler` '{scheduler}' is not supported; supported: {', '.join(SCHEDULER_NAMES)}"
    return True


def _run(model: DiffusionModel, latent: dict[str, Any], steps: int, **kw: Any) -> dict[str, Any]:
    with device_guard() as mgr:
        return sample(model, latent, steps=steps, manager=mgr, callback=step_progress(steps, model), **kw)


class KSampler(Node):
    """Denoise a latent with the given model, steered toward the positive and away from the negative conditioning."""

    SCHEMA = Schema(
        "KSampler", display_name="KSampler", category="sampling",
        inputs=[
            Model("model", tooltip="The diffusion model that denoises the latent."),
            Int("seed", 0, min=0, max=_SEED_MAX, control_after_generate=True,
                tooltip="The seed of the starting noise; the same seed gives the same noise."),
            Int("steps", 20, min=1, max=10000, tooltip="How many denoising steps to run."),
            Float("cfg", 8.0, min=0.0, max=100.0, step=0.1, round=0.01,
                  tooltip="Classifier-free guidance scale: higher follows the prompt more closely, lower leaves the model "
                          "more freedom."),
            Combo("sampler_name", SAMPLER_NAMES, tooltip="The algorithm used when sampling."),
            Combo("scheduler", SCHEDULER_NAMES, tooltip="The scheduler controls how noise is gradually removed."),
            Conditioning("positive", tooltip="The conditioning describing what to include in the image."),
            Conditioning("negative", tooltip="The conditioning describing what to exclude from the image."),
            Latent("latent_image", tooltip="The latent image to denoise."),
            Float("denoise", 1.0, min=0.0, max=1.0, step=0.01,
                  tooltip="The amount of denoising applied; lower values keep the input's structure (img2img)."),
        ],
        outputs=[Output(IO.LATENT, "LATENT", tooltip="The denoised latent.")],
    )

    @classmethod
    def validate_inputs(cls, sampler_name: Any = None, scheduler: Any = None) -> bool | str:
        return check_sampler_names(sampler_name, scheduler)

    @classmethod
    def execute(cls, model: DiffusionModel, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str,
                positive: list[Any], negative: list[Any], latent_image: dict[str, Any], denoise: float = 1.0) -> tuple[Any, ...]:
        return (_run(model, latent_image, steps, seed=seed, cfg=cfg, sampler_name=sampler_name, scheduler=scheduler,
                     positive=positive, negative=negative, denoise=denoise),)


class KSamplerAdvanced(Node):
    """KSampler with control over noise: add it or not, run only steps start..end, and return leftover noise."""

    SCHEMA = Schema(
        "KSamplerAdvanced", display_name="KSampler (Advanced)", category="sampling",
        inputs=[
            Model("model", tooltip="The model used for denoising."),
            Combo("add_noise", ["enable", "disable"], tooltip="Add seeded noise to the latent first."),
            Int("noise_seed", 0, min=0, max=_SEED_MAX, control_after_generate=True, tooltip="The noise seed."),
            Int("steps", 20, min=1, max=10000, tooltip="Steps of the full schedule."),
            Float("cfg", 8.0, min=0.0, max=100.0, step=0.1, round=0.01, tooltip="Classifier-free guidance scale."),
            Combo("sampler_name", SAMPLER_NAMES, tooltip="The sampling algorithm."),
            Combo("scheduler", SCHEDULER_NAMES, tooltip="The noise schedule."),
            Conditioning("positive", tooltip="What to include."),
            Conditioning("negative", tooltip="What to exclude."),
            Latent("latent_image", tooltip="The latent to denoise."),
            Int("start_at_step", 0, min=0, max=10000, tooltip="First step of the schedule to run."),
            Int("end_at_step", 10000, min=0, max=10000, tooltip="Step at which to stop."),
            Combo("return_with_leftover_noise", ["disable", "enable"],
                  tooltip="Stop at end_at_step's noise level instead of denoising fully."),
        ],
        outputs=[Output(IO.LATENT, "LATENT")],
    )

    @classmethod
    def validate_inputs(cls, sampler_name: Any = None, scheduler: Any = None) -> bool | str:
        return check_sampler_names(sampler_name, scheduler)

    @classmethod
    def execute(cls, model: DiffusionModel, add_noise: str, noise_seed: int, steps: int, cfg: float, sampler_name: str,
                scheduler: str, positive: list[Any], negative: list[Any], latent_image: dict[str, Any],
                start_at_step: int, end_at_step: int, return_with_leftover_noise: str) -> tuple[Any, ...]:
        return (_run(model, latent_image, steps, seed=noise_seed, cfg=cfg, sampler_name=sampler_name,
                     scheduler=scheduler, positive=positive, negative=negative, add_noise=add_noise == "enable",
                     start_step=start_at_step, last_step=end_at_step,
                     force_full_denoise=return_with_leftover_noise != "enable"),)
