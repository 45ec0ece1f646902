"""SkipLayerGuidanceDiTSimple with ComfyUI's declaration: the unguided (negative) pass of a DiT runs
without some of its blocks during part of the run, which sharpens structure. Applied through the
family's adapter (:func:`nodeloom.diffusion.families.sd3.skip_layer_adapter`; SD3/SD3.5 here)."""

from __future__ import annotations

import re
from typing import Any

from nodeloom.diffusion.families.sd3 import skip_layer_adapter
from nodeloom.diffusion.models import DiffusionModel
from nodeloom.node_api import IO, Float, Model, Node, Output, Schema, String, ValidationError

__all__ = ["SkipLayerGuidanceDiTSimple"]


def _layers(text: str) -> list[int]:
    return [int(v) for v in re.findall(r"\d+", str(text))]


def _percent(name: str, default: float, tip: str) -> Float:
    return Float(name, default, min=0.0, max=1.0, step=0.001, tooltip=tip)


class SkipLayerGuidanceDiTSimple(Node):
    """Simple version of the SkipLayerGuidanceDiT node that only modifies the uncond pass."""

    SCHEMA = Schema(
        "SkipLayerGuidanceDiTSimple", display_name="SkipLayerGuidanceDiTSimple", category="advanced/guidance",
        experimental=True,
        description="Simple version of the SkipLayerGuidanceDiT node that only modifies the uncond pass.",
        inputs=[Model("model", tooltip="The DiT model to patch (SD3/SD3.5)."),
                String("double_layers", "7, 8, 9", tooltip="Joint (double-stream) blocks the unguided pass skips."),
                String("single_layers", "7, 8, 9", tooltip="Single-stream blocks the unguided pass skips (SD3 has none)."),
                _percent("start_percent", 0.0, "Where in the run the skipping starts (0 = first step)."),
                _percent("end_percent", 1.0, "Where in the run the skipping ends (1 = last step).")],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, start_percent: float, end_percent: float, double_layers: str = "",
                single_layers: str = "") -> tuple[Any, ...]:
        double = _layers(double_layers)
        if not double and not _layers(single_layers):
            return (model,)
        if model.family != "sd3":
            raise ValidationError(f"SkipLayerGuidanceDiTSimple supports SD3/SD3.5 models here; `model` is {model.family}")
        depth = model.unet.config.num_layers
        if any(i >= depth for i in double):
            raise ValidationError(f"SkipLayerGuidanceDiTSimple: `double_layers` {double} name blocks past the model's"
                                  f" {depth} (0..{depth - 1})")
        high = model.sampling.percent_to_sigma(float(start_percent))
        low = model.sampling.percent_to_sigma(float(end_percent))
        return (model.clone(adapter=skip_layer_adapter(double, high, low)),)
