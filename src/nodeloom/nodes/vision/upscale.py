"""UpscaleModelLoader and ImageUpscaleWithModel: ESRGAN-family (and other spandrel) upscalers."""

from __future__ import annotations

from typing import Any

from nodeloom.node_api import Combo, Custom, Image, Node, Output, ProgressBar, Schema, services
from nodeloom.nodes.vision._common import file_list, load_model_file

__all__ = ["ImageUpscaleWithModel", "UpscaleModelLoader"]

UPSCALE_MODEL = "UPSCALE_MODEL"


class UpscaleModelLoader(Node):
    """Loads an upscale model (ESRGAN, Real-ESRGAN, SRVGGNet compact, SwinIR, HAT, ...) from models/upscale_models."""

    SCHEMA = Schema(
        "UpscaleModelLoader", display_name="Load Upscale Model", category="loaders",
        inputs=[Combo("model_name", file_list("upscale_models"),
                      tooltip="The upscale model file (.safetensors or .pth) in models/upscale_models.")],
        outputs=[Output(UPSCALE_MODEL, "UPSCALE_MODEL")],
    )

    @classmethod
    def execute(cls, model_name: str) -> tuple[Any, ...]:
        from nodeloom.diffusion.upscale import load_upscale_model

        return (load_model_file("upscale_models", model_name, "upscale", load_upscale_model),)


def _place(model: Any, image: Any, manager: Any) -> Any:
    """Make room for the run (estimate first, as ComfyUI does) and move the model to the device."""
    import torch

    from nodeloom.diffusion.upscale import estimate_upscale_bytes

    device = manager.device
    if device.type == "cuda":  # untested here: no CUDA device on the development machines
        need = estimate_upscale_bytes(model, image)
        if torch.cuda.mem_get_info(device)[0] < need + manager.device_reserve_bytes:
            manager.offload()
            torch.cuda.empty_cache()
    manager.prepare(model.model, dtype=torch.float32)
    return device


class ImageUpscaleWithModel(Node):
    """Upscales an image with an upscale model, in 512-pixel tiles that overlap by 32 (smaller tiles when memory runs out)."""

    SCHEMA = Schema(
        "ImageUpscaleWithModel", display_name="Upscale Image (using Model)", category="image/upscaling",
        inputs=[Custom(UPSCALE_MODEL, "upscale_model", tooltip="The model from Load Upscale Model."),
                Image("image", tooltip="The images to upscale.")],
        outputs=[Output("IMAGE", "IMAGE")],
    )

    @classmethod
    def execute(cls, upscale_model: Any, image: Any) -> tuple[Any, ...]:
        from nodeloom.diffusion.upscale import upscale_image

        manager = services().models
        bar = ProgressBar(1)
        with manager.device_lock:
            device = _place(upscale_model, image, manager)
            out = upscale_image(upscale_model, image, device, lambda done, total: bar.update_absolute(done, total))
        return (out,)
