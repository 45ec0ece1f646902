"""ComfyUI_IPAdapter_plus's embedding, batch and tiled nodes: ``IPAdapterEncoder`` (images → the
adapter's ``EMBEDS``), ``IPAdapterCombineEmbeds``, ``IPAdapterEmbeds`` (apply embeddings),
``IPAdapterBatch`` (image *i* steers latent *i*) and ``IPAdapterTiled`` (a reference of any shape,
tile by tile). Model code is in ``nodeloom.diffusion.ip_adapter``."""

from __future__ import annotations

from typing import Any

from nodeloom.node_api import Combo, Custom, Float, Image, Int, Mask, Node, Output, Schema, ValidationError, services
from nodeloom.nodes.portrait.ipadapter_nodes import (
    IPADAPTER,
    SCALING,
    _common,
    _mask,
    _optional,
    _unpack,
    _weight,
    _weight_types,
    _window,
)

__all__ = ["IPAdapterBatch", "IPAdapterCombineEmbeds", "IPAdapterEmbeds", "IPAdapterEmbedsBatch", "IPAdapterEncoder",
           "IPAdapterTiled"]

EMBEDS = "EMBEDS"


def _adapter_only(ipadapter: Any, clip_vision: Any) -> tuple[Any, Any]:
    """The adapter and the vision model, which may be missing (embeddings need none)."""
    if isinstance(ipadapter, dict):
        if "ipadapter" not in ipadapter:
            raise ValidationError("`ipadapter` holds no IP-Adapter model; load it with IPAdapter Unified Loader")
        return ipadapter["ipadapter"]["model"], clip_vision or ipadapter.get("clipvision", {}).get("model")
    if not hasattr(ipadapter, "layers"):
        raise ValidationError(f"`ipadapter` must come from an IPAdapter loader, got {type(ipadapter).__name__}")
    return ipadapter, clip_vision


class IPAdapterEncoder(Node):
    """Encode reference images into the embeddings an adapter reads (positive and negative)."""

    SCHEMA = Schema(
        "IPAdapterEncoder", display_name="IPAdapter Encoder", category="ipadapter/embeds",
        inputs=[Custom(IPADAPTER, "ipadapter", tooltip="The adapter (its kind picks image embeds or hidden states)."),
                Image("image", tooltip="The reference image(s)."),
                Float("weight", 1.0, min=-1.0, max=3.0, step=0.01, tooltip="Multiplies the positive embeddings."),
                Mask("mask", optional=True, tooltip="Multiplies the preprocessed pixels (cropped and resized like the image)."),
                Custom("CLIP_VISION", "clip_vision", optional=True,
                       tooltip="The CLIP-vision model (optional with IPAdapter Unified Loader).")],
        outputs=[Output(EMBEDS, "pos_embed"), Output(EMBEDS, "neg_embed")],
    )

    @classmethod
    def execute(cls, ipadapter: Any, image: Any, weight: float = 1.0, mask: Any = None,
                clip_vision: Any = None) -> tuple[Any, ...]:
        from nodeloom.diffusion.ip_adapter import encode_images

        adapter, vision = _unpack(ipadapter, clip_vision)
        with services().models.device_lock:
            cond, uncond = encode_images(adapter, vision, image, mask=mask)
        return (cond * weight if weight != 1 else cond, uncond)


class IPAdapterCombineEmbeds(Node):
    """Join up to five embeddings: side by side (concat) or into one (add, subtract, average, ...)."""

    SCHEMA = Schema(
        "IPAdapterCombineEmbeds", display_name="IPAdapter Combine Embeds", category="ipadapter/embeds",
        inputs=[Custom(EMBEDS, "embed1", tooltip="The first embeddings."),
                Combo("method", ["concat", "add", "subtract", "average", "norm average", "max", "min"],
                      tooltip="concat keeps every image; the others give one (subtract: the first minus the rest's mean)."),
                *[Custom(EMBEDS, f"embed{i}", optional=True, tooltip="More embeddings.") for i in range(2, 6)]],
        outputs=[Output(EMBEDS, "EMBEDS")],
    )

    @classmethod
    def execute(cls, embed1: Any, method: str = "concat", embed2: Any = None, embed3: Any = None, embed4: Any = None,
                embed5: Any = None) -> tuple[Any, ...]:
        import torch

        from nodeloom.diffusion.ip_adapter import combine_embeds

        given = [e for e in (embed1, embed2, embed3, embed4, embed5) if e is not None]
        shapes = {tuple(e.shape[1:]) for e in given}
        if len(shapes) > 1:
            raise ValidationError(f"`embed1`…`embed5` must come from one kind of adapter; got shapes {sorted(shapes)}")
        return (combine_embeds(torch.cat(given), method),)


def _embeds_inputs() -> list[Any]:
    return [*_common(), Custom(EMBEDS, "pos_embed", tooltip="The embeddings to steer toward."), _weight(3),
            Combo("weight_type", _weight_types, tooltip="How the weight spreads over the UNet's layers."),
            *_window(),
            Combo("embeds_scaling", SCALING, tooltip="What the weight scales: the values only, or keys and values."),
            Custom(EMBEDS, "neg_embed", optional=True, tooltip="Embeddings to steer away from (default: none)."),
            _mask(),
            Custom("CLIP_VISION", "clip_vision", optional=True,
                   tooltip="Needed by Plus adapters when no `neg_embed` is given (a black image's encoding).")]


def _apply_embeds(unfold: bool, model: Any, ipadapter: Any, pos_embed: Any, neg_embed: Any, clip_vision: Any,
                  **options: Any) -> tuple[Any, ...]:
    import torch

    from nodeloom.diffusion.ip_adapter import apply_ip_adapter_embeds, encode_images

    adapter, vision = _adapter_only(ipadapter, clip_vision)
    with services().models.device_lock:
        if neg_embed is None and adapter.plus:
            if vision is None:
                raise ValidationError("`clip_vision` is missing: a Plus adapter without `neg_embed` encodes a black image")
            size = int(vision.image_size)
            neg_embed = encode_images(adapter, vision, torch.zeros(1, size, size, 3))[0]
        elif neg_embed is None:
            neg_embed = torch.zeros_like(pos_embed[:1])
        return (apply_ip_adapter_embeds(model, adapter, pos_embed, neg_embed, unfold_batch=unfold, **options),)


class IPAdapterEmbeds(Node):
    """Steer a model with embeddings from IPAdapter Encoder (or saved ones)."""

    SCHEMA = Schema("IPAdapterEmbeds", display_name="IPAdapter Embeds", category="ipadapter/embeds",
                    inputs=_embeds_inputs(), outputs=[Output("MODEL", "MODEL")])

    @classmethod
    def execute(cls, model: Any, ipadapter: Any, pos_embed: Any, weight: float = 1.0, weight_type: str = "linear",
                start_at: float = 0.0, end_at: float = 1.0, embeds_scaling: str = "V only", neg_embed: Any = None,
                attn_mask: Any = None, clip_vision: Any = None) -> tuple[Any, ...]:
        return _apply_embeds(False, model, ipadapter, pos_embed, neg_embed, clip_vision, weight=weight,
                             weight_type=weight_type, start_at=start_at, end_at=end_at, embeds_scaling=embeds_scaling,
                             attn_mask=attn_mask)


class IPAdapterEmbedsBatch(Node):
    """Steer a batch of latents with a batch of embeddings, embedding *i* for latent *i*."""

    SCHEMA = Schema("IPAdapterEmbedsBatch", display_name="IPAdapter Embeds Batch", category="ipadapter/embeds",
                    inputs=_embeds_inputs(), outputs=[Output("MODEL", "MODEL")])

    @classmethod
    def execute(cls, model: Any, ipadapter: Any, pos_embed: Any, weight: float = 1.0, weight_type: str = "linear",
                start_at: float = 0.0, end_at: float = 1.0, embeds_scaling: str = "V only", neg_embed: Any = None,
                attn_mask: Any = None, clip_vision: Any = None) -> tuple[Any, ...]:
        return _apply_embeds(True, model, ipadapter, pos_embed, neg_embed, clip_vision, weight=weight,
                             weight_type=weight_type, start_at=start_at, end_at=end_at, embeds_scaling=embeds_scaling,
                             attn_mask=attn_mask)


class IPAdapterBatch(Node):
    """Steer a batch of latents with a batch of images, image *i* for latent *i* (animations)."""

    SCHEMA = Schema(
        "IPAdapterBatch", display_name="IPAdapter Batch (Adv.)", category="ipadapter",
        inputs=[*_common(), Image("image", tooltip="One reference image per latent (the last repeats)."), _weight(5),
                Combo("weight_type", _weight_types, tooltip="How the weight spreads over the UNet's layers."),
                *_window(),
                Combo("embeds_scaling", SCALING, tooltip="What the weight scales: the values only, or keys and values."),
                Int("encode_batch_size", 0, min=0, max=4096, tooltip="Images encoded at a time (0: all at once)."),
                *_optional()],
        outputs=[Output("MODEL", "MODEL")],
    )

    @classmethod
    def execute(cls, model: Any, ipadapter: Any, image: Any, weight: float = 1.0, weight_type: str = "linear",
                start_at: float = 0.0, end_at: float = 1.0, embeds_scaling: str = "V only", encode_batch_size: int = 0,
                image_negative: Any = None, attn_mask: Any = None, clip_vision: Any = None) -> tuple[Any, ...]:
        from nodeloom.diffusion.ip_adapter import apply_ip_adapter

        adapter, vision = _unpack(ipadapter, clip_vision)
        with services().models.device_lock:
            return (apply_ip_adapter(model, adapter, vision, image, image_negative=image_negative,
                                     encode_batch_size=int(encode_batch_size), weight=weight, weight_type=weight_type,
                                     start_at=start_at, end_at=end_at, embeds_scaling=embeds_scaling,
                                     attn_mask=attn_mask, unfold_batch=True),)




class IPAdapterTiled(Node):
    """Steer a model with a reference image of any shape: it is cut into 256² tiles, and each tile
    acts where it lies in the picture (its own attention mask)."""

    SCHEMA = Schema(
        "IPAdapterTiled", display_name="IPAdapter Tiled", category="ipadapter/tiled",
        inputs=[*_common(), Image("image", tooltip="The reference image (wide or tall ones give up to 4 tiles a side)."),
                _weight(3),
                Combo("weight_type", _weight_types, tooltip="How the weight spreads over the UNet's layers."),
                Combo("combine_embeds", ["concat", "add", "subtract", "average", "norm average"],
                      tooltip="How several reference images are joined."),
                *_window(),
                Float("sharpening", 0.0, min=0.0, max=1.0, step=0.05, tooltip="Contrast-adaptive sharpening of the tiles."),
                Combo("embeds_scaling", SCALING, tooltip="What the weight scales: the values only, or keys and values."),
                *_optional()],
        outputs=[Output("MODEL", "MODEL"), Output("IMAGE", "tiles"), Output("MASK", "masks")],
    )

    @classmethod
    def execute(cls, model: Any, ipadapter: Any, image: Any, weight: float = 1.0, weight_type: str = "linear",
                combine_embeds: str = "concat", start_at: float = 0.0, end_at: float = 1.0, sharpening: float = 0.0,
                embeds_scaling: str = "V only", image_negative: Any = None, attn_mask: Any = None,
                clip_vision: Any = None) -> tuple[Any, ...]:
        import torch

        from nodeloom.diffusion.ip_adapter import apply_ip_adapter
        from nodeloom.ops.clip_prep import reference_tiles

        adapter, vision = _unpack(ipadapter, clip_vision)
        tiles, masks = reference_tiles(image, attn_mask, float(sharpening))
        with services().models.device_lock:
            for tile, mask in zip(tiles, masks):
                model = apply_ip_adapter(model, adapter, vision, tile, image_negative=image_negative, weight=weight,
                                         weight_type=weight_type, combine_embeds=combine_embeds, start_at=start_at,
                                         end_at=end_at, embeds_scaling=embeds_scaling, attn_mask=mask)
        return (model, torch.cat(tiles), torch.cat(masks))
