"""ScaleROPE: scale and shift a video model's rotary positions per axis (ComfyUI's node; applies
to the Wan family here, whose transformer nodeloom can patch; see
:mod:`nodeloom.diffusion.rope_scale`)."""

from __future__ import annotations

from typing import Any

from nodeloom.diffusion.models import DiffusionModel
from nodeloom.diffusion.rope_scale import WanRopeScale
from nodeloom.node_api import IO, Float, Model, Node, Output, Schema, ValidationError

__all__ = ["ScaleROPE"]


def _scale(axis: str) -> Float:
    return Float(f"scale_{axis}", 1.0, min=0.0, max=100.0, step=0.1,
                 tooltip=f"Factor on the {axis.upper()} positions of the rotary embedding.")


def _shift(axis: str) -> Float:
    return Float(f"shift_{axis}", 0.0, min=-256.0, max=256.0, step=0.1,
                 tooltip=f"Offset added to the {axis.upper()} positions of the rotary embedding.")


class ScaleROPE(Node):
    """Scale and shift the model's RoPE positions on the X, Y and T axes (position i becomes
    shift + i·scale); a later ScaleROPE replaces an earlier one. Wan models."""

    SCHEMA = Schema(
        "ScaleROPE", display_name="ScaleROPE", category="advanced/model_patches", experimental=True,
        inputs=[Model("model", tooltip="The model whose RoPE positions are changed."),
                _scale("x"), _shift("x"), _scale("y"), _shift("y"), _scale("t"), _shift("t")],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, scale_x: float, shift_x: float, scale_y: float, shift_y: float,
                scale_t: float, shift_t: float) -> tuple[Any, ...]:
        if model.family != "wan":
            raise ValidationError(f"ScaleROPE applies to Wan models in nodeloom; `model` is a {model.family} model")
        patch = WanRopeScale(float(scale_x), float(shift_x), float(scale_y), float(shift_y), float(scale_t),
                             float(shift_t))
        out = model.clone(fast_path=False)  # a captured CUDA graph would keep the unpatched positions
        kept = tuple(p for p in out.extra.get("attn_patches", ()) if not isinstance(p, WanRopeScale))
        out.extra["attn_patches"] = kept + (patch,)
        return (out,)
