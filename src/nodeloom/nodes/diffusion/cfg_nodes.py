"""MODEL patches that change how guidance combines the two estimates, with ComfyUI's names:
CFGZeroStar (post-CFG correction by the negative estimate's optimal scale), RescaleCFG (guidance
rescaled toward the positive estimate's spread) and CFGOverride (a fixed CFG scale over a percent
range of the run). The math lives in :mod:`nodeloom.diffusion.cfg_patches`; each node clones the
MODEL and never changes the one it was given."""

from __future__ import annotations

import math
from typing import Any

from nodeloom.diffusion.cfg_patches import CFG_OVERRIDES, cfg_zero_star, rescale_cfg
from nodeloom.diffusion.models import DiffusionModel
from nodeloom.errors import ValidationError
from nodeloom.node_api import IO, Float, Model, Node, Output, Schema

__all__ = ["CFGOverride", "CFGZeroStar", "RescaleCFG"]


class CFGZeroStar(Node):
    """CFG-Zero*: after guidance, the negative estimate's share is corrected by the scale that best matches the negative noise prediction to the positive one, per batch item (any model)."""

    SCHEMA = Schema(
        "CFGZeroStar", display_name="CFGZeroStar", category="advanced/guidance",
        inputs=[Model("model", tooltip="The model to patch.")],
        outputs=[Output(IO.MODEL, "patched_model")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel) -> tuple[Any, ...]:
        return (model.clone(post_cfg=model.post_cfg + (cfg_zero_star,)),)


class RescaleCFG(Node):
    """Guidance on the v-prediction, its spread rescaled to the positive prediction's and blended with plain guidance by `multiplier`; tames the washed-out look of high CFG (any model)."""

    SCHEMA = Schema(
        "RescaleCFG", display_name="RescaleCFG", category="advanced/model",
        inputs=[Model("model", tooltip="The model to patch."),
                Float("multiplier", 0.7, min=0.0, max=1.0, step=0.01,
                      tooltip="Share of the rescaled guidance (0 is plain CFG, 1 fully rescaled).")],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, multiplier: float) -> tuple[Any, ...]:
        patched = model.clone()
        patched.set_model_sampler_cfg_function(rescale_cfg(float(multiplier)))
        return (patched,)


class CFGOverride(Node):
    """Override cfg to a fixed value over a [start, end] percent (sigma) range of the run. With several overrides, the one nearest the sampler wins where they overlap."""

    SCHEMA = Schema(
        "CFGOverride", display_name="CFG Override", category="advanced/guidance",
        inputs=[Model("model", tooltip="The model to patch."),
                Float("cfg", 1.0, min=0.0, max=100.0, step=0.1,
                      tooltip="The CFG scale used inside the range."),
                Float("start_percent", 0.0, min=0.0, max=1.0, step=0.001,
                      tooltip="Where the range starts, as a share of the run (0 is the noisiest step)."),
                Float("end_percent", 1.0, min=0.0, max=1.0, step=0.001,
                      tooltip="Where the range ends, as a share of the run.")],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, cfg: float, start_percent: float, end_percent: float) -> tuple[Any, ...]:
        if start_percent > end_percent:
            raise ValidationError(f"CFGOverride: `start_percent` {start_percent} is after `end_percent` {end_percent};"
                                  " expected start_percent <= end_percent")
        patched = model.clone()
        options = patched.model_options
        options[CFG_OVERRIDES] = list(options.get(CFG_OVERRIDES) or []) + [
            (float(start_percent), float(end_percent), float(cfg))]
        if not math.isclose(cfg, 1.0):  # the negative estimate is needed even when the sampler's cfg is 1
            options["disable_cfg1_optimization"] = True
        return (patched,)
