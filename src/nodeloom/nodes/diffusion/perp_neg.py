"""PerpNegGuider with ComfyUI's declaration: a GUIDER whose negative prompt only pushes away along
the direction perpendicular to the positive one (:mod:`nodeloom.diffusion.perp_neg`)."""

from __future__ import annotations

from typing import Any

from nodeloom.diffusion.models import DiffusionModel
from nodeloom.diffusion.perp_neg import PerpNegCfg
from nodeloom.node_api import Conditioning, Float, Model, Node, Output, Schema, ValidationError
from nodeloom.nodes.diffusion.custom_sampling import GUIDER, Guider

__all__ = ["PerpNegGuider"]


def _cfg_patches(model: DiffusionModel) -> list[str]:
    options = model.extra.get("model_options") or {}
    found = [k for k in ("sampler_cfg_function", "sampler_post_cfg_function") if options.get(k)]
    return found + (["post-CFG patches (CFGNorm, CFGZeroStar, Mahiro...)"] if model.post_cfg else [])


class PerpNegGuider(Node):
    """Guidance in which the negative prompt only removes what is perpendicular to the positive prompt's direction (both measured from the empty prompt), so it cannot cancel what the positive asks for."""

    SCHEMA = Schema(
        "PerpNegGuider", display_name="PerpNegGuider", category="_for_testing",
        inputs=[Model("model", tooltip="The model used for denoising."),
                Conditioning("positive", tooltip="What to steer toward."),
                Conditioning("negative", tooltip="What to steer away from (its perpendicular part only)."),
                Conditioning("empty_conditioning", tooltip="The empty prompt's conditioning, the origin of both directions."),
                Float("cfg", 8.0, min=0.0, max=100.0, step=0.1, round=0.01, tooltip="Guidance scale."),
                Float("neg_scale", 1.0, min=0.0, max=100.0, step=0.01,
                      tooltip="Scale of the perpendicular negative direction.")],
        outputs=[Output(GUIDER, "GUIDER")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, positive: list[Any], negative: list[Any], empty_conditioning: list[Any],
                cfg: float, neg_scale: float) -> tuple[Any, ...]:
        for name, value in (("positive", positive), ("negative", negative), ("empty_conditioning", empty_conditioning)):
            if not value:
                raise ValidationError(f"PerpNegGuider: `{name}` must hold at least one conditioning")
        patches = _cfg_patches(model)
        if patches:
            raise ValidationError(f"PerpNegGuider: `model` carries {patches}, which nodeloom does not apply with"
                                  " perpendicular negative guidance; connect the model before those patches")
        dual = PerpNegCfg(list(empty_conditioning), float(neg_scale))
        return (Guider(model, list(positive), list(negative), float(cfg), dual=dual),)
