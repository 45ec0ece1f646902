"""Model-free sampling nodes the newer templates use, with ComfyUI's names, inputs and defaults:
ManualSigmas (a typed-in schedule), Flux2Scheduler (Flux.2's empirical resolution shift),
EmptyFlux2LatentImage (Flux.2's 128-channel latent at 1/16 size), DualCFGGuider (guidance with
two conditionings and a negative) and InstructPixToPixConditioning (the image's latent as concat
conditioning). Schedules are :mod:`nodeloom.diffusion.flow`'s; guidance is
:mod:`nodeloom.diffusion.dual_cfg`."""

from __future__ import annotations

import re
from typing import Any

import torch

from nodeloom.diffusion.dual_cfg import DualCfg
from nodeloom.diffusion.flow import flux2_sigmas
from nodeloom.diffusion.models import DiffusionModel, VaeModel
from nodeloom.node_api import (
    IO,
    MAX_RESOLUTION,
    Combo,
    Conditioning,
    Custom,
    Float,
    Image,
    Int,
    Model,
    Node,
    Output,
    Schema,
    String,
    Vae,
    ValidationError,
)
from nodeloom.nodes.diffusion._common import device_guard
from nodeloom.nodes.diffusion.custom_sampling import GUIDER, SIGMAS, Guider

__all__ = ["DualCFGGuider", "EmptyFlux2LatentImage", "Flux2Scheduler", "InstructPixToPixConditioning", "ManualSigmas"]

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


class ManualSigmas(Node):
    """A schedule typed in by hand: every number in the text, in order, as the sigmas to walk."""

    SCHEMA = Schema(
        "ManualSigmas", display_name="ManualSigmas", category="_for_testing/custom_sampling", experimental=True,
        inputs=[String("sigmas", "1, 0.5", tooltip="The sigmas, highest first, separated by commas or spaces.")],
        outputs=[Output(SIGMAS, "SIGMAS")],
    )

    @classmethod
    def execute(cls, sigmas: str) -> tuple[Any, ...]:
        values = [float(v) for v in _NUMBER.findall(str(sigmas))]
        if not values:
            raise ValidationError(f"ManualSigmas: `sigmas` holds no numbers, got '{sigmas}' (expected e.g. '1, 0.5, 0')")
        return (torch.tensor(values, dtype=torch.float32),)


def _size(name: str, step: int, tip: str) -> Int:
    return Int(name, 1024, min=16, max=MAX_RESOLUTION, step=step, tooltip=tip)


class Flux2Scheduler(Node):
    """Flux.2's schedule: linear time shifted by an empirical μ that grows with the image's token count and the step count."""

    SCHEMA = Schema(
        "Flux2Scheduler", display_name="Flux2Scheduler", category="sampling/custom_sampling/schedulers",
        inputs=[Int("steps", 20, min=1, max=4096, tooltip="Number of steps."),
                _size("width", 1, "The image width in pixels (the shift depends on its area)."),
                _size("height", 1, "The image height in pixels (the shift depends on its area).")],
        outputs=[Output(SIGMAS, "SIGMAS")],
    )

    @classmethod
    def execute(cls, steps: int, width: int, height: int) -> tuple[Any, ...]:
        return (flux2_sigmas(int(steps), round(int(width) * int(height) / 256)),)


class EmptyFlux2LatentImage(Node):
    """An empty Flux.2 latent: 128 channels at 1/16 of the image size."""

    SCHEMA = Schema(
        "EmptyFlux2LatentImage", display_name="Empty Flux 2 Latent", category="latent",
        inputs=[_size("width", 16, "The image width in pixels."), _size("height", 16, "The image height in pixels."),
                Int("batch_size", 1, min=1, max=4096, tooltip="How many latents in the batch.")],
        outputs=[Output(IO.LATENT, "LATENT")],
    )

    @classmethod
    def execute(cls, width: int, height: int, batch_size: int = 1) -> tuple[Any, ...]:
        return ({"samples": torch.zeros([int(batch_size), 128, int(height) // 16, int(width) // 16])},)


def _cfg(name: str, tip: str) -> Float:
    return Float(name, 8.0, min=0.0, max=100.0, step=0.1, round=0.01, tooltip=tip)


class DualCFGGuider(Node):
    """Guidance with two conditionings: toward cond2 away from the negative, and toward cond1 away from cond2."""

    SCHEMA = Schema(
        "DualCFGGuider", display_name="DualCFGGuider", category="sampling/custom_sampling/guiders",
        inputs=[Model("model", tooltip="The model used for denoising."),
                Conditioning("cond1", tooltip="The main conditioning (e.g. the edit instruction)."),
                Conditioning("cond2", tooltip="The second conditioning (e.g. the image alone), between cond1 and the negative."),
                Conditioning("negative", tooltip="The conditioning describing what to exclude."),
                _cfg("cfg_conds", "Guidance scale from cond2 toward cond1."),
                _cfg("cfg_cond2_negative", "Guidance scale from the negative toward cond2."),
                Combo("style", ["regular", "nested"],
                      tooltip="regular: the two guidance terms are added; nested: cond1's guidance is applied inside cond2's.")],
        outputs=[Output(GUIDER, "GUIDER")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, cond1: list[Any], cond2: list[Any], negative: list[Any], cfg_conds: float,
                cfg_cond2_negative: float, style: str) -> tuple[Any, ...]:
        if style not in ("regular", "nested"):
            raise ValidationError(f"DualCFGGuider: `style` must be 'regular' or 'nested', got '{style}'")
        for name, value in (("cond1", cond1), ("cond2", cond2), ("negative", negative)):
            if not value:
                raise ValidationError(f"DualCFGGuider: `{name}` must hold at least one conditioning")
        dual = DualCfg(list(cond2), float(cfg_conds), nested=style == "nested")
        return (Guider(model, list(cond1), list(negative), float(cfg_cond2_negative), dual=dual),)


class InstructPixToPixConditioning(Node):
    """Encodes the image and attaches its latent to both conditionings (InstructPix2Pix-style models); the latent out is empty."""

    SCHEMA = Schema(
        "InstructPixToPixConditioning", display_name="InstructPixToPixConditioning",
        category="conditioning/instructpix2pix",
        inputs=[Conditioning("positive", tooltip="The positive conditioning."),
                Conditioning("negative", tooltip="The negative conditioning."),
                Vae("vae", tooltip="The VAE that encodes the image."),
                Image("pixels", tooltip="The image to edit (cropped to a multiple of 8 pixels, centred).")],
        outputs=[Output(IO.CONDITIONING, "positive"), Output(IO.CONDITIONING, "negative"), Output(IO.LATENT, "latent")],
    )

    @classmethod
    def execute(cls, positive: list[Any], negative: list[Any], vae: VaeModel, pixels: torch.Tensor) -> tuple[Any, ...]:
        h, w = pixels.shape[1] // 8 * 8, pixels.shape[2] // 8 * 8
        if h == 0 or w == 0:
            raise ValidationError(f"InstructPixToPixConditioning: `pixels` must be at least 8×8, got "
                                  f"{pixels.shape[2]}×{pixels.shape[1]}")
        top, left = (pixels.shape[1] % 8) // 2, (pixels.shape[2] % 8) // 2
        with device_guard() as mgr:
            concat = vae.encode(pixels[:, top:top + h, left:left + w, :], mgr)
        out = [[[c[0], {**(c[1] if len(c) > 1 else {}), "concat_latent_image": concat}] for c in cond]
               for cond in (positive, negative)]
        return (out[0], out[1], {"samples": torch.zeros_like(concat)})
