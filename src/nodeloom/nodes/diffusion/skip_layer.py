"""Skip-layer guidance with ComfyUI's declarations. SkipLayerGuidanceDiTSimple: the unguided
(negative) pass of a DiT runs without some of its blocks during part of the run (SD3 through the
family's adapter, :func:`nodeloom.diffusion.families.sd3.skip_layer_adapter`; other DiTs through
:func:`nodeloom.diffusion.block_skip.uncond_skipping_adapter`).
SkipLayerGuidanceDiT: an extra pass of the positive conditioning without those blocks, the guided
estimate pushed away from it (:func:`nodeloom.diffusion.score_patches.skip_layer_guidance`; any DiT
with diffusers-style blocks, :mod:`nodeloom.diffusion.block_skip`)."""

from __future__ import annotations

import re
from typing import Any

from nodeloom.diffusion.block_skip import check_blocks, skipping_adapter, uncond_skipping_adapter
from nodeloom.diffusion.families.sd3 import skip_layer_adapter
from nodeloom.diffusion.models import DiffusionModel
from nodeloom.diffusion.score_patches import skip_layer_guidance
from nodeloom.node_api import IO, Float, Model, Node, Output, Schema, String, ValidationError

__all__ = ["SkipLayerGuidanceDiT", "SkipLayerGuidanceDiTSimple"]


def _layers(text: str) -> list[int]:
    return [int(v) for v in re.findall(r"\d+", str(text))]


def _percent(name: str, default: float, tip: str) -> Float:
    return Float(name, default, min=0.0, max=1.0, step=0.001, tooltip=tip)


class SkipLayerGuidanceDiTSimple(Node):
    """The lighter form of SkipLayerGuidanceDiT: the chosen blocks are skipped in the unconditional pass only, with no extra pass."""

    SCHEMA = Schema(
        "SkipLayerGuidanceDiTSimple", display_name="SkipLayerGuidanceDiTSimple", category="advanced/guidance",
        experimental=True,
        description="The lighter form of SkipLayerGuidanceDiT: the chosen blocks are skipped in the unconditional pass only, with no extra pass.",
        inputs=[Model("model", tooltip="The DiT model to patch (SD3, Flux, Wan, HunyuanVideo, Qwen-Image...)."),
                String("double_layers", "7, 8, 9", tooltip="Joint (double-stream) blocks the unguided pass skips."),
                String("single_layers", "7, 8, 9",
                       tooltip="Single-stream blocks the unguided pass skips (Flux-type models; SD3 has none)."),
                _percent("start_percent", 0.0, "Where in the run the skipping starts (0 = first step)."),
                _percent("end_percent", 1.0, "Where in the run the skipping ends (1 = last step).")],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, start_percent: float, end_percent: float, double_layers: str = "",
                single_layers: str = "") -> tuple[Any, ...]:
        double, single = _layers(double_layers), _layers(single_layers)
        if not double and not single:
            return (model,)
        high = model.sampling.percent_to_sigma(float(start_percent))
        low = model.sampling.percent_to_sigma(float(end_percent))
        if model.family != "sd3":  # other DiTs: the negative entries run apart with forward hooks skipping blocks
            if model.adapter is None:
                raise ValidationError(f"SkipLayerGuidanceDiTSimple needs a DiT (a flow transformer loaded with "
                                      f"UNETLoader); `model` is a {model.family} UNet")
            check_blocks("SkipLayerGuidanceDiTSimple", model.unet, model.family, double, single)
            return (model.clone(adapter=uncond_skipping_adapter(model.adapter, double, single, high, low)),)
        depth = model.unet.config.num_layers
        if any(i >= depth for i in double):
            raise ValidationError(f"SkipLayerGuidanceDiTSimple: `double_layers` {double} name blocks past the model's"
                                  f" {depth} (0..{depth - 1})")
        return (model.clone(adapter=skip_layer_adapter(double, high, low)),)


class SkipLayerGuidanceDiT(Node):
    """Enhance guidance towards detailed structure by having another set of CFG negative with skipped layers (inspired by Perturbed Attention Guidance): between the two points of the run the positive conditioning runs again without the given blocks, and the guided estimate moves away from that pass by `scale`; `rescaling_scale` pulls the result's spread back toward the positive estimate's."""

    SCHEMA = Schema(
        "SkipLayerGuidanceDiT", display_name="SkipLayerGuidanceDiT", category="advanced/guidance", experimental=True,
        description="Skip-layer guidance for diffusion transformers: an extra pass with some blocks skipped pushes the result away from what those blocks alone would give.",
        inputs=[Model("model", tooltip="The DiT model to patch (SD3, Flux, Wan, HunyuanVideo, Qwen-Image...)."),
                String("double_layers", "7, 8, 9", tooltip="Double-stream (joint) blocks the extra pass skips."),
                String("single_layers", "7, 8, 9", tooltip="Single-stream blocks the extra pass skips (Flux-type "
                                                           "models; others have none)."),
                Float("scale", 3.0, min=0.0, max=10.0, step=0.1,
                      tooltip="How far the guided estimate moves away from the skipped-layer pass."),
                _percent("start_percent", 0.01, "Where in the run the extra pass starts (0 = first step)."),
                _percent("end_percent", 0.15, "Where in the run the extra pass ends (1 = last step)."),
                Float("rescaling_scale", 0.0, min=0.0, max=10.0, step=0.01,
                      tooltip="Share of rescaling the result's standard deviation to the positive estimate's "
                              "(0: none).")],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, scale: float, start_percent: float, end_percent: float,
                double_layers: str = "", single_layers: str = "", rescaling_scale: float = 0.0) -> tuple[Any, ...]:
        double, single = _layers(double_layers), _layers(single_layers)
        if not double and not single:
            return (model,)
        if model.adapter is None:
            raise ValidationError(f"SkipLayerGuidanceDiT needs a DiT (a flow transformer loaded with UNETLoader); "
                                  f"`model` is a {model.family} UNet")
        check_blocks("SkipLayerGuidanceDiT", model.unet, model.family, double, single)
        high = model.sampling.percent_to_sigma(float(start_percent))
        low = model.sampling.percent_to_sigma(float(end_percent))
        guide = skip_layer_guidance(skipping_adapter(model.adapter, double, single), float(scale), high, low,
                                    float(rescaling_scale))
        return (model.clone(post_cfg=model.post_cfg + (guide,)),)
