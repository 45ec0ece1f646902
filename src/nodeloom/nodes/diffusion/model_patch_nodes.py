"""ModelPatchLoader (a model patch from ``models/model_patches``) and QwenImageDiffsynthControlnet
(the Qwen-Image DiffSynth block-wise ControlNet applied to a MODEL), with ComfyUI's names, inputs
and categories. The patch code is :mod:`nodeloom.diffusion.model_patch`."""

from __future__ import annotations

from typing import Any

from nodeloom.diffusion.model_patch import DiffSynthControl, diffsynth_adapter, load_model_patch
from nodeloom.diffusion.single_file import load_weights
from nodeloom.errors import ValidationError
from nodeloom.node_api import IO, Combo, Custom, Float, Image, Mask, Model, Node, Output, Schema, Vae, model_key, services
from nodeloom.nodes.diffusion._common import device_guard, file_list

__all__ = ["ModelPatchLoader", "QwenImageDiffsynthControlnet"]

MODEL_PATCH = "MODEL_PATCH"


class ModelPatchLoader(Node):
    """Loads a model patch (the Qwen-Image DiffSynth ControlNets) from models/model_patches."""

    SCHEMA = Schema(
        "ModelPatchLoader", display_name="ModelPatchLoader", category="advanced/loaders",
        inputs=[Combo("name", file_list("model_patches"), tooltip="A model patch file in models/model_patches.")],
        outputs=[Output(MODEL_PATCH, "MODEL_PATCH")],
    )

    @classmethod
    def execute(cls, name: str) -> tuple[Any, ...]:
        svc = services()
        path = svc.paths.get_full_path("model_patches", name)
        return (svc.models.load(model_key(path, "model-patch"),
                                lambda: load_model_patch(load_weights(path, prefix=""), name)),)


class QwenImageDiffsynthControlnet(Node):
    """Steers a Qwen-Image model with a DiffSynth block-wise ControlNet patch and a control image (canny, depth, ...; with a mask for the inpainting patch)."""

    SCHEMA = Schema(
        "QwenImageDiffsynthControlnet", display_name="QwenImageDiffsynthControlnet", category="advanced/loaders/qwen",
        inputs=[Model("model", tooltip="The Qwen-Image model to steer."),
                Custom(MODEL_PATCH, "model_patch", tooltip="The ControlNet patch from ModelPatchLoader."),
                Vae("vae", tooltip="The Qwen-Image VAE that encodes the control image."),
                Image("image", tooltip="The control image (scaled to the sampled latent's size when it differs)."),
                Float("strength", 1.0, min=-10.0, max=10.0, step=0.01, tooltip="How strongly the control steers."),
                Mask("mask", optional=True, tooltip="For the inpainting patch: the area to regenerate (1).")],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, model: Any, model_patch: Any, vae: Any, image: Any, strength: float,
                mask: Any = None) -> tuple[Any, ...]:
        if getattr(model, "family", None) != "qwen_image" or model.adapter is None:
            raise ValidationError("QwenImageDiffsynthControlnet steers Qwen-Image models; `model` is"
                                  f" {getattr(model, 'family', None) or 'not a diffusion model'}")
        if not hasattr(model_patch, "controlnet_blocks"):
            raise ValidationError("QwenImageDiffsynthControlnet: `model_patch` must be a DiffSynth ControlNet patch")

        def encode(pixels: Any) -> Any:
            with device_guard() as mgr:
                return vae.encode(pixels, mgr)

        ratio = int(getattr(vae, "downscale_ratio", 8))
        keep = None if mask is None else 1.0 - mask.float()  # the patch reads 1 where the image is kept
        control = DiffSynthControl(model_patch, image[..., :3], float(strength), encode, keep, ratio)
        control.tokens(image.shape[1] // ratio, image.shape[2] // ratio, image)  # encoded now, as ComfyUI does
        return (model.clone(adapter=diffsynth_adapter(model.adapter, control)),)
