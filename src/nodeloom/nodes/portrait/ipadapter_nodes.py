"""IP-Adapter nodes under the names and inputs of the ComfyUI_IPAdapter_plus pack:
``IPAdapterModelLoader``, ``IPAdapterUnifiedLoader``, ``IPAdapter``, ``IPAdapterAdvanced`` and
``IPAdapterStyleComposition`` (SD1.5/SDXL; image-embedding adapters, not FaceID).
Model code is in ``nodeloom.diffusion.ip_adapter`` and ``nodeloom.diffusion.ip_attention``."""

from __future__ import annotations

import re
from typing import Any

from nodeloom.node_api import (
    Boolean,
    Combo,
    Custom,
    Float,
    Image,
    Mask,
    Model,
    Node,
    Output,
    Schema,
    ValidationError,
    model_key,
    services,
)

__all__ = ["IPAdapterAdvanced", "IPAdapterModelLoader", "IPAdapterSimple", "IPAdapterStyleComposition",
           "IPAdapterUnifiedLoader"]

IPADAPTER = "IPADAPTER"
PRESETS = ["LIGHT - SD1.5 only (low strength)", "STANDARD (medium strength)", "VIT-G (medium strength)",
           "PLUS (high strength)", "PLUS FACE (portraits)", "FULL FACE - SD1.5 only (portraits stronger)"]
COMBINE = ["concat", "add", "subtract", "average", "norm average"]
SCALING = ["V only", "K+V", "K+V w/ C penalty", "K+mean(V) w/ C penalty"]

#: preset's first word → (SD1.5 file pattern, SDXL file pattern or None); the pack's file names
_FILES = {
    "light": (r"sd15.light(.v11)?\.(safetensors|bin)$", None),
    "standard": (r"ip.adapter.sd15\.(safetensors|bin)$", r"ip.adapter.sdxl.vit.h\.(safetensors|bin)$"),
    "vit-g": (r"sd15.vit.g\.(safetensors|bin)$", r"ip.adapter.sdxl\.(safetensors|bin)$"),
    "plus": (r"ip.adapter.plus.sd15\.(safetensors|bin)$", r"plus.sdxl.vit.h\.(safetensors|bin)$"),
    "plus face": (r"plus.face.sd15\.(safetensors|bin)$", r"plus.face.sdxl.vit.h\.(safetensors|bin)$"),
    "full": (r"full.face.sd15\.(safetensors|bin)$", None),
}
_VISION_H = r"(ViT.H.14.*s32B.b79K|ipadapter.*sd15|sd1.?5.*model)\.(bin|safetensors)"
_VISION_G = r"(ViT.bigG.14.*39B.b160k|ipadapter.*sdxl|sdxl.*model)\.(bin|safetensors)"


def _files(folder: str) -> list[str]:
    svc = services(required=False)
    return svc.paths.get_filename_list(folder) if svc is not None else []


def _load_adapter(name: str) -> Any:
    from nodeloom.diffusion.ip_adapter import load_ip_adapter

    svc = services()
    path = svc.paths.get_full_path("ipadapter", name)
    if path is None:
        raise ValidationError(f"`ipadapter_file` {name!r} is not in models/ipadapter")
    return svc.models.load(model_key(path, "ip-adapter"), lambda: load_ip_adapter(path))


def _find(folder: str, pattern: str, what: str) -> str:
    found = [f for f in _files(folder) if re.search(pattern, f, re.IGNORECASE)]
    if not found:
        raise ValidationError(f"`preset` needs {what} in models/{folder} (a file name matching {pattern!r}); none found")
    return found[0]


class IPAdapterModelLoader(Node):
    """Load an IP-Adapter file from models/ipadapter."""

    SCHEMA = Schema(
        "IPAdapterModelLoader", display_name="IPAdapter Model Loader", category="ipadapter/loaders",
        inputs=[Combo("ipadapter_file", lambda: _files("ipadapter"),
                      tooltip="An IP-Adapter .safetensors or .bin file in models/ipadapter.")],
        outputs=[Output(IPADAPTER, "IPADAPTER")],
    )

    @classmethod
    def execute(cls, ipadapter_file: str) -> tuple[Any, ...]:
        return (_load_adapter(ipadapter_file),)


class IPAdapterUnifiedLoader(Node):
    """Find the preset's IP-Adapter and CLIP-vision files by the pack's file names and load both."""

    SCHEMA = Schema(
        "IPAdapterUnifiedLoader", display_name="IPAdapter Unified Loader", category="ipadapter",
        inputs=[Model("model", tooltip="The SD1.5 or SDXL model the adapter is for."),
                Combo("preset", PRESETS, tooltip="Which IP-Adapter to load (files named as the pack names them)."),
                Custom(IPADAPTER, "ipadapter", optional=True,
                       tooltip="A pipeline from another unified loader, to chain presets.")],
        outputs=[Output("MODEL", "model"), Output(IPADAPTER, "ipadapter")],
    )

    @classmethod
    def execute(cls, model: Any, preset: str, ipadapter: Any = None) -> tuple[Any, ...]:
        from nodeloom.diffusion.clip_vision import load_clip_vision

        key = preset.lower().split(" (")[0].split(" - ")[0]
        sd15, sdxl = _FILES[key]
        pattern = sdxl if model.is_sdxl else sd15
        if pattern is None:
            raise ValidationError(f"`preset` {preset!r} is for SD1.5 only; `model` is SDXL")
        svc = services()
        vision_name = _find("clip_vision", _VISION_G if key == "vit-g" else _VISION_H, "a CLIP-vision model")
        vision_path = svc.paths.get_full_path("clip_vision", vision_name)
        vision = svc.models.load(model_key(vision_path, "clip-vision"),
                                 lambda: load_clip_vision(vision_path, manager=svc.models))
        adapter_name = _find("ipadapter", pattern, "an IP-Adapter")
        pipeline = {"clipvision": {"file": vision_name, "model": vision},
                    "ipadapter": {"file": adapter_name, "model": _load_adapter(adapter_name)}}
        return (model, pipeline)


def _unpack(ipadapter: Any, clip_vision: Any) -> tuple[Any, Any]:
    """The adapter and vision model from a unified loader's pipeline or a model loader's adapter."""
    if isinstance(ipadapter, dict):
        if "ipadapter" not in ipadapter:
            raise ValidationError("`ipadapter` holds no IP-Adapter model; load it with IPAdapter Unified Loader")
        adapter = ipadapter["ipadapter"]["model"]
        clip_vision = clip_vision if clip_vision is not None else ipadapter.get("clipvision", {}).get("model")
    else:
        adapter = ipadapter
    if not hasattr(adapter, "layers"):
        raise ValidationError(f"`ipadapter` must come from an IPAdapter loader, got {type(adapter).__name__}")
    if clip_vision is None:
        raise ValidationError("`clip_vision` is missing: connect Load CLIP Vision, or use IPAdapter Unified Loader")
    return adapter, clip_vision


def _apply(model: Any, ipadapter: Any, clip_vision: Any, attn_mask: Any, **kw: Any) -> tuple[Any, ...]:
    from nodeloom.diffusion.ip_adapter import apply_ip_adapter

    adapter, vision = _unpack(ipadapter, clip_vision)
    with services().models.device_lock:
        return (apply_ip_adapter(model, adapter, vision, attn_mask=attn_mask, **kw),)


def _common() -> list[Any]:
    return [Model("model", tooltip="The SD1.5 or SDXL model to steer."),
            Custom(IPADAPTER, "ipadapter", tooltip="The adapter from an IPAdapter loader.")]


def _weight(most: float) -> Any:
    return Float("weight", 1.0, min=-1, max=most, step=0.05, tooltip="How strongly the image steers the result.")


def _window() -> list[Any]:
    return [Float("start_at", 0.0, min=0.0, max=1.0, step=0.001, tooltip="Fraction of the run at which it starts acting."),
            Float("end_at", 1.0, min=0.0, max=1.0, step=0.001, tooltip="Fraction of the run at which it stops acting.")]


def _mask() -> Any:
    return Mask("attn_mask", optional=True, tooltip="Where the image acts (white); stretched over the latent.")


def _optional(negative: bool = True) -> list[Any]:
    extra = [Image("image_negative", optional=True, tooltip="An image to steer away from (default: none).")] if negative else []
    return extra + [_mask(),
                    Custom("CLIP_VISION", "clip_vision", optional=True,
                           tooltip="The CLIP-vision model (optional with IPAdapter Unified Loader).")]


class IPAdapterSimple(Node):
    """Steer a model with a reference image (standard, prompt-first or style-transfer weighting)."""

    SCHEMA = Schema(
        "IPAdapter", display_name="IPAdapter", category="ipadapter",
        inputs=[*_common(), Image("image", tooltip="The reference image."), _weight(3), *_window(),
                Combo("weight_type", ["standard", "prompt is more important", "style transfer"],
                      tooltip="standard: every layer; prompt is more important: ease out; style transfer: style layers."),
                _mask()],
        outputs=[Output("MODEL", "MODEL")],
    )

    @classmethod
    def execute(cls, model: Any, ipadapter: Any, image: Any, weight: float = 1.0, start_at: float = 0.0,
                end_at: float = 1.0, weight_type: str = "standard", attn_mask: Any = None) -> tuple[Any, ...]:
        kind = {"standard": "linear", "prompt is more important": "ease out", "style transfer": "style transfer"}
        if weight_type not in kind:
            raise ValidationError(f"`weight_type` must be one of {', '.join(kind)}; got {weight_type!r}")
        return _apply(model, ipadapter, None, attn_mask, image=image, weight=weight, weight_type=kind[weight_type],
                      start_at=start_at, end_at=end_at)


class IPAdapterAdvanced(Node):
    """Steer a model with reference images: per-layer weight types, embedding combination and scaling."""

    SCHEMA = Schema(
        "IPAdapterAdvanced", display_name="IPAdapter Advanced", category="ipadapter",
        inputs=[*_common(), Image("image", tooltip="The reference image(s)."), _weight(5),
                Combo("weight_type", lambda: _weight_types(),
                      tooltip="How the weight spreads over the UNet's layers (style/composition pick SDXL's layers)."),
                Combo("combine_embeds", COMBINE, tooltip="How several reference images are joined."),
                *_window(),
                Combo("embeds_scaling", SCALING, tooltip="What the weight scales: the values only, or keys and values."),
                *_optional()],
        outputs=[Output("MODEL", "MODEL")],
    )

    @classmethod
    def execute(cls, model: Any, ipadapter: Any, image: Any, weight: float = 1.0, weight_type: str = "linear",
                combine_embeds: str = "concat", start_at: float = 0.0, end_at: float = 1.0,
                embeds_scaling: str = "V only", image_negative: Any = None, attn_mask: Any = None,
                clip_vision: Any = None) -> tuple[Any, ...]:
        return _apply(model, ipadapter, clip_vision, attn_mask, image=image, weight=weight, weight_type=weight_type,
                      combine_embeds=combine_embeds, start_at=start_at, end_at=end_at, embeds_scaling=embeds_scaling,
                      image_negative=image_negative)


class IPAdapterStyleComposition(Node):
    """SDXL: one image's style (up block 0) and another's composition (down block 2)."""

    SCHEMA = Schema(
        "IPAdapterStyleComposition", display_name="IPAdapter Style & Composition SDXL",
        category="ipadapter/style_composition",
        inputs=[*_common(),
                Image("image_style", tooltip="The image whose style is taken."),
                Image("image_composition", tooltip="The image whose composition is taken."),
                Float("weight_style", 1.0, min=-1, max=5, step=0.05, tooltip="How strongly the style image acts."),
                Float("weight_composition", 1.0, min=-1, max=5, step=0.05,
                      tooltip="How strongly the composition image acts."),
                Boolean("expand_style", False, tooltip="Apply the style image on every layer but the composition one."),
                Combo("combine_embeds", COMBINE, default="average", tooltip="How several reference images are joined."),
                *_window(),
                Combo("embeds_scaling", SCALING, tooltip="What the weight scales: the values only, or keys and values."),
                *_optional()],
        outputs=[Output("MODEL", "MODEL")],
    )

    @classmethod
    def execute(cls, model: Any, ipadapter: Any, image_style: Any, image_composition: Any, weight_style: float = 1.0,
                weight_composition: float = 1.0, expand_style: bool = False, combine_embeds: str = "average",
                start_at: float = 0.0, end_at: float = 1.0, embeds_scaling: str = "V only", image_negative: Any = None,
                attn_mask: Any = None, clip_vision: Any = None) -> tuple[Any, ...]:
        if not model.is_sdxl:
            raise ValidationError("IPAdapter Style & Composition works on SDXL models only; `model` is "
                                  f"{model.family}")
        kind = "strong style and composition" if expand_style else "style and composition"
        return _apply(model, ipadapter, clip_vision, attn_mask, image=image_style, image_composition=image_composition,
                      weight=weight_style, weight_composition=weight_composition, weight_type=kind,
                      combine_embeds=combine_embeds, start_at=start_at, end_at=end_at, embeds_scaling=embeds_scaling,
                      image_negative=image_negative)


def _weight_types() -> list[str]:
    from nodeloom.diffusion.ip_attention import WEIGHT_TYPES

    return list(WEIGHT_TYPES)
