"""ComfyUI's attention-multiply nodes: ``UNetSelfAttentionMultiply``, ``UNetCrossAttentionMultiply``
and ``UNetTemporalAttentionMultiply`` scale the weights of a model's attention projections for the
runs that use the patched MODEL (:mod:`nodeloom.diffusion.attention_multiply`);
``CLIPAttentionMultiply`` scales the text encoders' self-attention projections for the encodes of the
patched CLIP (:mod:`nodeloom.diffusion.clip_attention_multiply`).

ComfyUI picks the weights by name in its own model code, where the SD UNets (SD 1.x/2.x/XL,
Lotus, SVD) and LTX-Video call them ``attn1``/``attn2`` with ``to_q``/``to_k``/``to_v``/``to_out.0``;
nodeloom's diffusers modules for those models use the same names, so the same weights change.
Families whose ComfyUI code has no such names (Wan, Flux, Qwen-Image, SD3, ...) are left unchanged
there, and here too; HiDream and LTX-2, where some of ComfyUI's names match in a layout nodeloom's
modules do not share, are refused by name.
"""

from __future__ import annotations

import logging
from typing import Any

from nodeloom.diffusion.attention_multiply import AttentionMultiply
from nodeloom.diffusion.clip_attention_multiply import MultipliedClip, clip_attention_multiply
from nodeloom.diffusion.models import DiffusionModel
from nodeloom.node_api import IO, Clip, Float, Model, Node, Output, Schema, ValidationError

__all__ = ["CLIPAttentionMultiply", "UNetCrossAttentionMultiply", "UNetSelfAttentionMultiply",
           "UNetTemporalAttentionMultiply"]

_LOG = logging.getLogger(__name__)
_CATEGORY = "_for_testing/attention_experiments"
#: families whose ComfyUI model code names its attention layers as diffusers' modules here do
_SAME_NAMES = ("ltxv",)
#: families where ComfyUI's names match some layers in a layout nodeloom's modules do not reproduce
_REFUSED = ("hidream", "ltx2")


_TIPS = {"q": "query projection", "k": "key projection", "v": "value projection", "out": "output projection",
         "self_structural": "spatial self-attention output projections",
         "self_temporal": "temporal self-attention output projections",
         "cross_structural": "spatial cross-attention output projections",
         "cross_temporal": "temporal cross-attention output projections"}


def _factor(name: str) -> Float:
    return Float(name, 1.0, min=0.0, max=10.0, step=0.01, tooltip=f"Factor on the weights of the {_TIPS[name]}.")


def _model() -> Model:
    return Model("model", tooltip="The model whose attention weights are scaled (SD UNets, LTX-Video).")


def _patched(node: str, model: DiffusionModel, factors: tuple[tuple[str, str, bool | None, float], ...]) -> DiffusionModel:
    """``model`` with the patch added, or unchanged where ComfyUI's names would match no weight."""
    if model.family in _REFUSED:
        raise ValidationError(f"{node}: `model` is a {model.family} model, whose attention weights ComfyUI names "
                              "differently from nodeloom's modules; the node applies to SD UNets and LTX-Video here")
    unet_like = type(model.unet).__name__ in ("UNet2DConditionModel", "UNetSpatioTemporalConditionModel")
    if not unet_like and model.family not in _SAME_NAMES:
        _LOG.info("%s: a %s model has no attn1/attn2 projections in ComfyUI's naming; unchanged, as in ComfyUI",
                  node, model.family)
        return model
    out = model.clone(fast_path=False)  # a captured CUDA graph reads the weights it was captured with
    out.extra["attn_patches"] = tuple(out.extra.get("attn_patches", ())) + (AttentionMultiply(factors),)
    return out


class UNetSelfAttentionMultiply(Node):
    """Scale the query, key, value and output projections of the self-attention layers."""

    SCHEMA = Schema(
        "UNetSelfAttentionMultiply", display_name="UNetSelfAttentionMultiply", category=_CATEGORY, experimental=True,
        inputs=[_model(), _factor("q"), _factor("k"), _factor("v"), _factor("out")],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, q: float, k: float, v: float, out: float) -> tuple[Any, ...]:
        factors = tuple(("attn1", p, None, float(f)) for p, f in zip(("to_q", "to_k", "to_v", "to_out.0"), (q, k, v, out)))
        return (_patched("UNetSelfAttentionMultiply", model, factors),)


class UNetCrossAttentionMultiply(Node):
    """Scale the query, key, value and output projections of the cross-attention layers."""

    SCHEMA = Schema(
        "UNetCrossAttentionMultiply", display_name="UNetCrossAttentionMultiply", category=_CATEGORY, experimental=True,
        inputs=[_model(), _factor("q"), _factor("k"), _factor("v"), _factor("out")],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, q: float, k: float, v: float, out: float) -> tuple[Any, ...]:
        factors = tuple(("attn2", p, None, float(f)) for p, f in zip(("to_q", "to_k", "to_v", "to_out.0"), (q, k, v, out)))
        return (_patched("UNetCrossAttentionMultiply", model, factors),)


class UNetTemporalAttentionMultiply(Node):
    """Scale the output projections of the self- and cross-attention layers, spatial ("structural")
    and temporal layers apart."""

    SCHEMA = Schema(
        "UNetTemporalAttentionMultiply", display_name="UNetTemporalAttentionMultiply", category=_CATEGORY,
        experimental=True,
        inputs=[_model(), _factor("self_structural"), _factor("self_temporal"), _factor("cross_structural"),
                _factor("cross_temporal")],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, self_structural: float, self_temporal: float, cross_structural: float,
                cross_temporal: float) -> tuple[Any, ...]:
        factors = (("attn1", "to_out.0", False, float(self_structural)), ("attn1", "to_out.0", True, float(self_temporal)),
                   ("attn2", "to_out.0", False, float(cross_structural)), ("attn2", "to_out.0", True, float(cross_temporal)))
        return (_patched("UNetTemporalAttentionMultiply", model, factors),)


class CLIPAttentionMultiply(Node):
    """Scale the query, key, value and output projections of the text encoders' self-attention
    layers for the prompts this CLIP encodes. CLIP-L/G take all four factors; Llama-style encoders
    (Qwen, Gemma, Mistral, Llama) name their output projection `o_proj`, so `out` leaves them
    unchanged; T5 encoders are unchanged — as in ComfyUI, whose rule reads the same names."""

    SCHEMA = Schema(
        "CLIPAttentionMultiply", display_name="CLIPAttentionMultiply", category=_CATEGORY, experimental=True,
        inputs=[Clip("clip", tooltip="The CLIP whose text encoders' self-attention weights are scaled."),
                _factor("q"), _factor("k"), _factor("v"), _factor("out")],
        outputs=[Output(IO.CLIP, "CLIP")],
    )

    @classmethod
    def execute(cls, clip: Any, q: float, k: float, v: float, out: float) -> tuple[Any, ...]:
        if clip is None or not callable(getattr(clip, "encode", None)):
            raise ValidationError("CLIPAttentionMultiply: `clip` must be a CLIP (a loader's text encoder), "
                                  f"got {type(clip).__name__}")
        return (MultipliedClip(clip, (clip_attention_multiply(q, k, v, out),)),)
