"""LoRA nodes: LoraLoader and LoraLoaderModelOnly (stackable; strengths may be negative)."""

from __future__ import annotations

from typing import Any

from nodeloom.diffusion.lora import LoraPatch, read_lora
from nodeloom.diffusion.models import ClipModel, DiffusionModel
from nodeloom.node_api import IO, Clip, Combo, Float, Model, Node, Output, Schema, model_key, services
from nodeloom.nodes.diffusion._common import file_list

__all__ = ["LoraLoader", "LoraLoaderModelOnly", "apply_lora"]


def apply_lora(model: DiffusionModel, clip: ClipModel | None, lora_name: str, strength_model: float,
               strength_clip: float) -> tuple[DiffusionModel, ClipModel | None]:
    """New MODEL/CLIP values with the LoRA added to their stacks (the inputs are unchanged)."""
    if strength_model == 0 and strength_clip == 0:
        return model, clip
    svc = services()
    path = svc.paths.get_full_path("loras", lora_name)
    lora = svc.models.load(model_key(path, "lora", model.family),
                           lambda: read_lora(path, model.unet.config, model.is_sdxl,
                                             model.family if model.adapter is not None else None))
    new_model = model.clone(loras=model.loras + (LoraPatch(lora, float(strength_model)),)) if strength_model else model
    new_clip = clip
    if clip is not None and strength_clip:
        new_clip = clip.clone(loras=clip.loras + (LoraPatch(lora, float(strength_clip)),))
    return new_model, new_clip


class LoraLoader(Node):
    """Apply a LoRA to the diffusion model and the text encoder, e.g. to add a style or a subject; chain several for several LoRAs."""

    SCHEMA = Schema(
        "LoraLoader", display_name="Load LoRA", category="loaders",
        inputs=[Model("model", tooltip="The diffusion model to patch with the LoRA."),
                Clip("clip", tooltip="The text encoder to patch with the LoRA."),
                Combo("lora_name", file_list("loras"), tooltip="The name of the LoRA."),
                Float("strength_model", 1.0, min=-100.0, max=100.0, step=0.01,
                      tooltip="How much of the LoRA to apply to the diffusion model; negative values invert it."),
                Float("strength_clip", 1.0, min=-100.0, max=100.0, step=0.01,
                      tooltip="How much of the LoRA to apply to the text encoder; negative values invert it.")],
        outputs=[Output(IO.MODEL, "MODEL", tooltip="The modified diffusion model."),
                 Output(IO.CLIP, "CLIP", tooltip="The modified CLIP model.")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, clip: ClipModel, lora_name: str, strength_model: float,
                strength_clip: float) -> tuple[Any, ...]:
        return apply_lora(model, clip, lora_name, strength_model, strength_clip)


class LoraLoaderModelOnly(Node):
    """Applies a LoRA to the diffusion model only."""

    SCHEMA = Schema(
        "LoraLoaderModelOnly", display_name="LoraLoaderModelOnly", category="loaders",
        inputs=[Model("model", tooltip="The diffusion model to patch with the LoRA."),
                Combo("lora_name", file_list("loras"), tooltip="The name of the LoRA."),
                Float("strength_model", 1.0, min=-100.0, max=100.0, step=0.01,
                      tooltip="How strongly to modify the diffusion model.")],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, lora_name: str, strength_model: float) -> tuple[Any, ...]:
        return (apply_lora(model, None, lora_name, strength_model, 0.0)[0],)
