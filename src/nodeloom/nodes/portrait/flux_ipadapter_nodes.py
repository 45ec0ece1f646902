"""Flux IP-Adapter nodes under the names and inputs of XLabs' x-flux-comfyui pack:
``LoadFluxIPAdapter`` (an adapter from models/xlabs/ipadapters and a CLIP-vision model),
``ApplyFluxIPAdapter`` and ``ApplyAdvancedFluxIPAdapter`` (per-block strength curves), on
Flux.1 MODELs from UNETLoader or a checkpoint. Model code is in
``nodeloom.diffusion.flux_ip_adapter``."""

from __future__ import annotations

from typing import Any

from nodeloom.node_api import Combo, Custom, Float, Image, Model, Node, Output, Schema, ValidationError, model_key, services

__all__ = ["ApplyAdvancedFluxIPAdapter", "ApplyFluxIPAdapter", "LoadFluxIPAdapter"]

IP_ADAPTER_FLUX = "IP_ADAPTER_FLUX"


def _files(folder: str) -> list[str]:
    svc = services(required=False)
    return svc.paths.get_filename_list(folder) if svc is not None else []


class LoadFluxIPAdapter(Node):
    """Load an XLabs Flux IP-Adapter and the CLIP-vision model whose image embeddings it reads."""

    SCHEMA = Schema(
        "LoadFluxIPAdapter", display_name="Load Flux IPAdatpter", category="XLabsNodes",
        inputs=[Combo("ipadatper", lambda: _files("xlabs_ipadapters"),
                      tooltip="An XLabs Flux IP-Adapter .safetensors in models/xlabs/ipadapters (the pack's spelling "
                              "of the input name is kept so its workflows load)."),
                Combo("clip_vision", lambda: _files("clip_vision"),
                      tooltip="The CLIP-vision model the adapter was trained with (CLIP ViT-L/14 for XLabs' v1/v2)."),
                Combo("provider", ["CPU", "GPU"],
                      tooltip="Kept for the pack's workflows; the model manager places the models.")],
        outputs=[Output(IP_ADAPTER_FLUX, "ipadapterFlux")],
    )

    @classmethod
    def execute(cls, ipadatper: str, clip_vision: str, provider: str = "CPU") -> tuple[Any, ...]:
        from nodeloom.diffusion.clip_vision import load_clip_vision
        from nodeloom.diffusion.flux_ip_adapter import load_flux_ip_adapter

        svc = services()
        path = svc.paths.get_full_path("xlabs_ipadapters", ipadatper)
        if path is None:
            raise ValidationError(f"`ipadatper` {ipadatper!r} is not in models/xlabs/ipadapters")
        vision_path = svc.paths.get_full_path("clip_vision", clip_vision)
        if vision_path is None:
            raise ValidationError(f"`clip_vision` {clip_vision!r} is not in models/clip_vision")
        adapter = svc.models.load(model_key(path, "flux-ip-adapter"), lambda: load_flux_ip_adapter(path))
        vision = svc.models.load(model_key(vision_path, "clip-vision"),
                                 lambda: load_clip_vision(vision_path, manager=svc.models))
        return ({"ipadapter": adapter, "clip_vision": vision},)


def _apply(model: Any, ip_adapter_flux: Any, image: Any, strengths: Any, average: bool) -> tuple[Any, ...]:
    from nodeloom.diffusion.flux_ip_adapter import apply_flux_ip_adapter

    if not isinstance(ip_adapter_flux, dict) or "ipadapter" not in ip_adapter_flux:
        raise ValidationError(f"`ip_adapter_flux` must come from Load Flux IPAdatpter, got {type(ip_adapter_flux).__name__}")
    with services().models.device_lock:
        return (apply_flux_ip_adapter(model, ip_adapter_flux["ipadapter"], ip_adapter_flux["clip_vision"], image,
                                      strengths, average=average),)


def _inputs() -> list[Any]:
    return [Model("model", tooltip="The Flux.1 model to steer."),
            Custom(IP_ADAPTER_FLUX, "ip_adapter_flux", tooltip="The adapter from Load Flux IPAdatpter."),
            Image("image", tooltip="The reference image (several: their tokens side by side).")]


class ApplyFluxIPAdapter(Node):
    """Steer a Flux.1 model with a reference image at one strength in every double block."""

    SCHEMA = Schema(
        "ApplyFluxIPAdapter", display_name="Apply Flux IPAdapter", category="XLabsNodes",
        inputs=[*_inputs(), Float("ip_scale", 0.93, min=0.0, max=1.0, step=0.001,
                                  tooltip="How strongly the image steers the result (0: not at all).")],
        outputs=[Output("MODEL", "MODEL")],
    )

    @classmethod
    def execute(cls, model: Any, ip_adapter_flux: Any, image: Any, ip_scale: float = 0.93) -> tuple[Any, ...]:
        return _apply(model, ip_adapter_flux, image, float(ip_scale), average=False)


class ApplyAdvancedFluxIPAdapter(Node):
    """Steer a Flux.1 model with reference images (their embeddings averaged), the strength
    going from `begin_strength` in the first double block to `end_strength` in the last."""

    SCHEMA = Schema(
        "ApplyAdvancedFluxIPAdapter", display_name="Apply Advanced Flux IPAdapter", category="XLabsNodes",
        inputs=[*_inputs(),
                Float("begin_strength", 0.0, min=-100.0, max=100.0, step=0.01, tooltip="Strength in the first block."),
                Float("end_strength", 1.0, min=-100.0, max=100.0, step=0.01, tooltip="Strength in the last block."),
                Combo("smothing_type", ["Linear", "First half", "Second half", "Sigmoid"],
                      tooltip="How the strength goes from begin to end over the blocks (the pack's spelling).")],
        outputs=[Output("MODEL", "MODEL")],
    )

    @classmethod
    def execute(cls, model: Any, ip_adapter_flux: Any, image: Any, begin_strength: float = 0.0, end_strength: float = 1.0,
                smothing_type: str = "Linear") -> tuple[Any, ...]:
        from nodeloom.diffusion.flux_ip_adapter import block_strengths

        adapter = ip_adapter_flux.get("ipadapter") if isinstance(ip_adapter_flux, dict) else None
        if adapter is None:
            raise ValidationError("`ip_adapter_flux` must come from Load Flux IPAdatpter")
        strengths = block_strengths(float(begin_strength), float(end_strength), smothing_type, len(adapter.blocks))
        return _apply(model, ip_adapter_flux, image, strengths, average=True)
