"""Flow-model nodes with ComfyUI's names and defaults: ModelSamplingSD3, ModelSamplingAuraFlow,
ModelSamplingFlux (the shifted flow schedules of :mod:`nodeloom.diffusion.flow`),
EmptySD3LatentImage (the 16-channel empty latent) and FluxGuidance (Flux's distilled guidance)."""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.diffusion.flow import FlowSampling, FluxSampling, flux_resolution_shift
from nodeloom.diffusion.models import DiffusionModel
from nodeloom.node_api import IO, MAX_RESOLUTION, Conditioning, Float, Int, Model, Node, Output, Schema, ValidationError

__all__ = ["EmptySD3LatentImage", "FluxGuidance", "ModelSamplingAuraFlow", "ModelSamplingFlux", "ModelSamplingSD3"]

def _flow(model: DiffusionModel, node: str) -> DiffusionModel:
    if model.adapter is None:
        raise ValidationError(f"{node} needs a flow-matching model (one loaded with UNETLoader); `model` is a"
                              f" {model.family} UNet, which samples on its own noise schedule")
    return model


_SHIFT_TIP = "How far the schedule leans to the noisy end (σ = s·t / (1 + (s − 1)·t)); 1 leaves it unshifted."


def _shift(default: float) -> Float:
    return Float("shift", default, min=0.0, max=100.0, step=0.01, tooltip=_SHIFT_TIP)


class ModelSamplingSD3(Node):
    """Makes the model sample as a shifted flow-matching model (SD3 timestep convention, ×1000)."""

    SCHEMA = Schema(
        "ModelSamplingSD3", display_name="ModelSamplingSD3", category="advanced/model",
        inputs=[Model("model", tooltip="The flow model to patch."), _shift(3.0)],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, shift: float) -> tuple[Any, ...]:
        return (_flow(model, "ModelSamplingSD3").clone(sampling=FlowSampling(shift=float(shift), multiplier=1000.0)),)


class ModelSamplingAuraFlow(Node):
    """Makes the model sample as a shifted flow-matching model (AuraFlow / Z-Image / Lumina timestep convention)."""

    SCHEMA = Schema(
        "ModelSamplingAuraFlow", display_name="ModelSamplingAuraFlow", category="advanced/model",
        inputs=[Model("model", tooltip="The flow model to patch."), _shift(1.73)],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, shift: float) -> tuple[Any, ...]:
        return (_flow(model, "ModelSamplingAuraFlow").clone(sampling=FlowSampling(shift=float(shift), multiplier=1.0)),)


class ModelSamplingFlux(Node):
    """Flux's resolution-dependent schedule shift: μ grows linearly with the image's area."""

    SCHEMA = Schema(
        "ModelSamplingFlux", display_name="ModelSamplingFlux", category="advanced/model",
        inputs=[Model("model", tooltip="The Flux model to patch."),
                Float("max_shift", 1.15, min=0.0, max=100.0, step=0.01, tooltip="μ at 4096 latent patches (1024²)."),
                Float("base_shift", 0.5, min=0.0, max=100.0, step=0.01, tooltip="μ at 256 latent patches (256²)."),
                Int("width", 1024, min=16, max=MAX_RESOLUTION, step=8, tooltip="The image width the shift is for."),
                Int("height", 1024, min=16, max=MAX_RESOLUTION, step=8, tooltip="The image height the shift is for.")],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, max_shift: float, base_shift: float, width: int,
                height: int) -> tuple[Any, ...]:
        mu = flux_resolution_shift(int(width), int(height), float(max_shift), float(base_shift))
        return (_flow(model, "ModelSamplingFlux").clone(sampling=FluxSampling(shift=mu)),)


class EmptySD3LatentImage(Node):
    """An empty 16-channel latent (SD3, Flux, Z-Image, Qwen-Image and other 16-channel VAEs)."""

    SCHEMA = Schema(
        "EmptySD3LatentImage", display_name="EmptySD3LatentImage", category="latent/sd3",
        inputs=[Int("width", 1024, min=16, max=MAX_RESOLUTION, step=16, tooltip="The image width in pixels."),
                Int("height", 1024, min=16, max=MAX_RESOLUTION, step=16, tooltip="The image height in pixels."),
                Int("batch_size", 1, min=1, max=4096, tooltip="How many latents in the batch.")],
        outputs=[Output(IO.LATENT, "LATENT")],
    )

    @classmethod
    def execute(cls, width: int, height: int, batch_size: int = 1) -> tuple[Any, ...]:
        return ({"samples": torch.zeros([int(batch_size), 16, int(height) // 8, int(width) // 8])},)


class FluxGuidance(Node):
    """Sets the guidance strength Flux dev was distilled to follow (instead of classifier-free guidance)."""

    SCHEMA = Schema(
        "FluxGuidance", display_name="FluxGuidance", category="advanced/conditioning/flux",
        inputs=[Conditioning("conditioning", tooltip="The conditioning to set the guidance of."),
                Float("guidance", 3.5, min=0.0, max=100.0, step=0.1,
                      tooltip="How strongly the image follows the prompt (Flux dev's embedded guidance).")],
        outputs=[Output(IO.CONDITIONING, "CONDITIONING")],
    )

    @classmethod
    def execute(cls, conditioning: list[Any], guidance: float) -> tuple[Any, ...]:
        return ([[c[0], {**(c[1] if len(c) > 1 else {}), "guidance": float(guidance)}] for c in conditioning],)
