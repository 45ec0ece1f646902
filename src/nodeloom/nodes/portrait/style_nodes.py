"""ComfyUI's style-model nodes: ``StyleModelLoader`` and ``StyleModelApply`` (Flux Redux:
an image's SigLIP tokens, projected to the text width, appended to the conditioning).
Model code is in ``nodeloom.diffusion.style_model``."""

from __future__ import annotations

from typing import Any

from nodeloom.node_api import Combo, Conditioning, Custom, Float, Node, Output, Schema, ValidationError, model_key, services

__all__ = ["StyleModelApply", "StyleModelLoader"]


def _style_files() -> list[str]:
    svc = services(required=False)
    return svc.paths.get_filename_list("style_models") if svc is not None else []


class StyleModelLoader(Node):
    """Load a style model (Flux Redux) from models/style_models."""

    SCHEMA = Schema(
        "StyleModelLoader", display_name="Load Style Model", category="loaders",
        inputs=[Combo("style_model_name", _style_files, tooltip="A Flux Redux file in models/style_models.")],
        outputs=[Output("STYLE_MODEL", "STYLE_MODEL")],
    )

    @classmethod
    def execute(cls, style_model_name: str) -> tuple[Any, ...]:
        from nodeloom.diffusion.style_model import load_style_model

        svc = services()
        path = svc.paths.get_full_path("style_models", style_model_name)
        return (svc.models.load(model_key(path, "style-model"), lambda: load_style_model(path)),)


class StyleModelApply(Node):
    """Append an image's style tokens (from CLIP Vision Encode with a SigLIP model) to a
    conditioning; `strength` scales them (`multiply`)."""

    SCHEMA = Schema(
        "StyleModelApply", display_name="Apply Style Model", category="conditioning/style_model",
        inputs=[
            Conditioning("conditioning", tooltip="The text conditioning to extend."),
            Custom("STYLE_MODEL", "style_model", tooltip="The model from Load Style Model."),
            Custom("CLIP_VISION_OUTPUT", "clip_vision_output", tooltip="The reference image from CLIP Vision Encode."),
            Float("strength", 1.0, min=0.0, max=10.0, step=0.001, tooltip="How strongly the image's tokens count."),
            Combo("strength_type", ["multiply", "attn_bias"],
                  tooltip="multiply: scale the tokens; attn_bias: bias attention to them (only strength 1 here)."),
        ],
        outputs=[Output("CONDITIONING", "CONDITIONING")],
    )

    @classmethod
    def execute(cls, conditioning: Any, style_model: Any, clip_vision_output: Any, strength: float = 1.0,
                strength_type: str = "multiply") -> tuple[Any, ...]:
        import torch

        if not hasattr(style_model, "get_cond"):
            raise ValidationError(f"`style_model` must come from Load Style Model, got {type(style_model).__name__}")
        if strength_type == "attn_bias" and strength != 1.0:
            raise ValidationError("`strength_type` attn_bias needs attention masks, which nodeloom's samplers do not "
                                  "take yet; use `multiply` (or strength 1.0)")
        tokens = style_model.get_cond(clip_vision_output)
        tokens = tokens.flatten(start_dim=0, end_dim=1).unsqueeze(0)  # every image's tokens, one after another
        if strength_type == "multiply":
            tokens = tokens * strength
        out = []
        for cond, opts in conditioning:
            if "attention_mask" in opts:
                raise ValidationError("`conditioning` carries an attention mask, which nodeloom's samplers do not take")
            extra = tokens.to(cond.device, cond.dtype).expand(cond.shape[0], -1, -1)
            out.append([torch.cat((cond, extra), dim=1), dict(opts)])
        return (out,)
