"""MODEL patches that change how guidance combines the two estimates, with ComfyUI's names:
CFGZeroStar (post-CFG correction by the negative estimate's optimal scale), RescaleCFG (guidance
rescaled toward the positive estimate's spread), CFGOverride (a fixed CFG scale over a percent
range of the run), RenormCFG (truncated, norm-capped guidance), Mahiro, TCFG (tangential
damping) and APG (adaptive projected guidance). The math lives in
:mod:`nodeloom.diffusion.cfg_patches`; each node clones the MODEL and never changes the one it
was given."""

from __future__ import annotations

import math
from typing import Any

from nodeloom.diffusion.cfg_patches import (
    CFG_OVERRIDES,
    adaptive_projected,
    cfg_zero_star,
    mahiro,
    rescale_cfg,
    tcfg,
)
from nodeloom.diffusion.cfg_patches import renorm_cfg as renorm_guidance
from nodeloom.diffusion.models import DiffusionModel
from nodeloom.errors import ValidationError
from nodeloom.node_api import IO, Float, Model, Node, Output, Schema

__all__ = ["APG", "TCFG", "CFGOverride", "CFGZeroStar", "Mahiro", "RenormCFG", "RescaleCFG"]


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


class RenormCFG(Node):
    """Lumina 2's guidance: plain CFG whose result is capped at `renorm_cfg` times the positive estimate's norm, used only while σ (the flow timestep) is below `cfg_trunc`; after that the positive estimate alone (any model)."""

    SCHEMA = Schema(
        "RenormCFG", display_name="RenormCFG", category="advanced/model",
        inputs=[Model("model", tooltip="The model to patch."),
                Float("cfg_trunc", 100, min=0.0, max=100.0, step=0.01,
                      tooltip="Guidance applies while the step's timestep (σ for flow models) is below this; 100 keeps it on."),
                Float("renorm_cfg", 1.0, min=0.0, max=100.0, step=0.01,
                      tooltip="Cap on the guided estimate's norm, in multiples of the positive estimate's (0: no cap).")],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, cfg_trunc: float, renorm_cfg: float) -> tuple[Any, ...]:
        patched = model.clone()
        patched.set_model_sampler_cfg_function(renorm_guidance(float(cfg_trunc), float(renorm_cfg)))
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
        patched.extra[CFG_OVERRIDES] = list(model.extra.get(CFG_OVERRIDES) or []) + [
            (float(start_percent), float(end_percent), float(cfg))]
        if not math.isclose(cfg, 1.0):  # the negative estimate is needed even when the sampler's cfg is 1
            patched.model_options["disable_cfg1_optimization"] = True
        return (patched,)


class Mahiro(Node):
    """Leans guidance toward the positive prompt's direction rather than its difference from the negative: the guided estimate is blended with the scaled positive estimate by how alike the negative and merged leaps are."""

    SCHEMA = Schema(
        "Mahiro", display_name="Mahiro is so cute that she deserves a better guidance function!! (。・ω・。)",
        category="_for_testing", experimental=True,
        inputs=[Model("model", tooltip="The model to patch.")],
        outputs=[Output(IO.MODEL, "patched_model")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel) -> tuple[Any, ...]:
        return (model.clone(post_cfg=model.post_cfg + (mahiro,)),)


class TCFG(Node):
    """Tangential Damping CFG (arXiv 2503.18137): before CFG, the negative estimate keeps only its part along the direction it shares with the positive one, which improves quality."""

    SCHEMA = Schema(
        "TCFG", display_name="Tangential Damping CFG", category="advanced/guidance",
        inputs=[Model("model", tooltip="The model to patch.")],
        outputs=[Output(IO.MODEL, "patched_model")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel) -> tuple[Any, ...]:
        patched = model.clone()
        patched.set_model_sampler_pre_cfg_function(tcfg)
        return (patched,)


class APG(Node):
    """Adaptive Projected Guidance: the guidance direction is norm-capped, optionally averaged over steps, and its part parallel to the positive estimate scaled down, which avoids the oversaturation of high CFG."""

    SCHEMA = Schema(
        "APG", display_name="Adaptive Projected Guidance", category="sampling/custom_sampling",
        inputs=[Model("model", tooltip="The model to patch."),
                Float("eta", 1.0, min=-10.0, max=10.0, step=0.01,
                      tooltip="Scale of the guidance part parallel to the positive estimate (1 keeps plain CFG's)."),
                Float("norm_threshold", 5.0, min=0.0, max=50.0, step=0.1,
                      tooltip="Cap on the guidance direction's norm (0 disables the cap)."),
                Float("momentum", 0.0, min=-5.0, max=1.0, step=0.01,
                      tooltip="Weight of the running average of guidance over the steps (0 disables it).")],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, eta: float, norm_threshold: float, momentum: float) -> tuple[Any, ...]:
        patched = model.clone()
        patched.set_model_sampler_pre_cfg_function(adaptive_projected(float(eta), float(norm_threshold),
                                                                      float(momentum)))
        return (patched,)
