"""AlignYourStepsScheduler with ComfyUI's declaration: NVIDIA's optimised noise levels as SIGMAS for
the custom-sampling nodes (:mod:`nodeloom.diffusion.align_your_steps`)."""

from __future__ import annotations

from typing import Any

from nodeloom.diffusion.align_your_steps import AYS_NOISE_LEVELS, ays_sigmas
from nodeloom.node_api import Combo, Float, Int, Node, Output, Schema, ValidationError
from nodeloom.nodes.diffusion.custom_sampling import SIGMAS

__all__ = ["AlignYourStepsScheduler"]


class AlignYourStepsScheduler(Node):
    """Align Your Steps: NVIDIA's noise levels optimised for SD 1.x, SDXL or Stable Video Diffusion, log-linearly stretched to the step count."""

    SCHEMA = Schema(
        "AlignYourStepsScheduler", display_name="AlignYourStepsScheduler",
        category="sampling/custom_sampling/schedulers",
        inputs=[Combo("model_type", list(AYS_NOISE_LEVELS), tooltip="Which model's optimised levels to use."),
                Int("steps", 10, min=1, max=10000, tooltip="Number of steps (10 uses the levels as published)."),
                Float("denoise", 1.0, min=0.0, max=1.0, step=0.01,
                      tooltip="Share of the run (img2img below 1: only the last steps are kept).")],
        outputs=[Output(SIGMAS, "SIGMAS")],
    )

    @classmethod
    def execute(cls, model_type: str, steps: int, denoise: float) -> tuple[Any, ...]:
        if model_type not in AYS_NOISE_LEVELS:
            raise ValidationError(f"AlignYourStepsScheduler: `model_type` {model_type!r} is not one of"
                                  f" {list(AYS_NOISE_LEVELS)}")
        return (ays_sigmas(model_type, int(steps), float(denoise)),)
