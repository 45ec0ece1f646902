"""IP-Adapter regional nodes under the names and inputs of the ComfyUI_IPAdapter_plus pack:
``IPAdapterRegionalConditioning`` (an image, its weights and window and a mask → IPADAPTER_PARAMS,
with the mask put on the region's prompts as ComfyUI's conditioning ``mask``),
``IPAdapterCombineParams`` (up to five params joined) and ``IPAdapterFromParams`` (each image of
the params applied in turn, with its own mask, weight, weight type and window).

The prompts' masks are honoured by the sampler's regional conditioning
(:mod:`nodeloom.diffusion.regions`); the adapters by :mod:`nodeloom.diffusion.ip_adapter`.
"""

from __future__ import annotations

from typing import Any

from nodeloom.node_api import (
    Combo,
    Conditioning,
    Custom,
    Float,
    Image,
    Mask,
    Model,
    Node,
    Output,
    Schema,
    ValidationError,
    services,
)
from nodeloom.nodes.portrait.ipadapter_nodes import COMBINE, IPADAPTER, SCALING, _unpack, _weight_types

__all__ = ["IPAdapterCombineParams", "IPAdapterFromParams", "IPAdapterRegionalConditioning"]

IPADAPTER_PARAMS = "IPADAPTER_PARAMS"
_KEYS = ("image", "attn_mask", "weight", "weight_type", "start_at", "end_at")


def _check_params(params: Any, name: str) -> dict[str, list[Any]]:
    if not isinstance(params, dict) or any(not isinstance(params.get(k), list) for k in _KEYS):
        raise ValidationError(f"`{name}` must be IPADAPTER_PARAMS from IPAdapter Regional Conditioning or "
                              f"IPAdapter Combine Params (lists under {', '.join(_KEYS)})")
    if len({len(params[k]) for k in _KEYS}) != 1:
        raise ValidationError(f"`{name}` holds lists of different lengths: "
                              + ", ".join(f"{k} {len(params[k])}" for k in _KEYS))
    return params


class IPAdapterRegionalConditioning(Node):
    """One region: a reference image for the IP-Adapter and the prompts that act there, confined to a mask."""

    SCHEMA = Schema(
        "IPAdapterRegionalConditioning", display_name="IPAdapter Regional Conditioning", category="ipadapter/params",
        inputs=[Image("image", tooltip="The region's reference image."),
                Float("image_weight", 1.0, min=-1.0, max=3.0, step=0.05, tooltip="How strongly the image steers the region."),
                Float("prompt_weight", 1.0, min=0.0, max=10.0, step=0.05,
                      tooltip="The prompts' mask strength (ConditioningSetMask's strength)."),
                Combo("weight_type", lambda: _weight_types(),
                      tooltip="How the image's weight spreads over the UNet's layers."),
                Float("start_at", 0.0, min=0.0, max=1.0, step=0.001, tooltip="Fraction of the run at which the image starts acting."),
                Float("end_at", 1.0, min=0.0, max=1.0, step=0.001, tooltip="Fraction of the run at which the image stops acting."),
                Mask("mask", optional=True, tooltip="The region (white); without one the image and prompts act everywhere."),
                Conditioning("positive", optional=True, tooltip="The region's prompt; returned confined to the mask."),
                Conditioning("negative", optional=True, tooltip="The region's negative prompt; returned confined to the mask.")],
        outputs=[Output(IPADAPTER_PARAMS, "IPADAPTER_PARAMS"), Output("CONDITIONING", "POSITIVE"),
                 Output("CONDITIONING", "NEGATIVE")],
    )

    @classmethod
    def execute(cls, image: Any, image_weight: float = 1.0, prompt_weight: float = 1.0, weight_type: str = "linear",
                start_at: float = 0.0, end_at: float = 1.0, mask: Any = None, positive: Any = None,
                negative: Any = None) -> tuple[Any, ...]:
        if weight_type not in _weight_types():
            raise ValidationError(f"`weight_type` must be one of {', '.join(_weight_types())}; got {weight_type!r}")
        if mask is not None:  # the prompts confined to the region, as ConditioningSetMask (whole latent)
            from nodeloom.diffusion.regions import with_mask

            node = "IPAdapterRegionalConditioning"
            with_mask([], mask, prompt_weight, node=node)  # checks the mask when no prompt is given
            positive = None if positive is None else with_mask(positive, mask, prompt_weight, node=node)
            negative = None if negative is None else with_mask(negative, mask, prompt_weight, node=node)
        params = {"image": [image], "attn_mask": [mask], "weight": [float(image_weight)], "weight_type": [weight_type],
                  "start_at": [float(start_at)], "end_at": [float(end_at)]}
        return (params, positive, negative)


class IPAdapterCombineParams(Node):
    """Join the regions of up to five IPADAPTER_PARAMS, in order."""

    SCHEMA = Schema(
        "IPAdapterCombineParams", display_name="IPAdapter Combine Params", category="ipadapter/params",
        inputs=[Custom(IPADAPTER_PARAMS, "params_1", tooltip="The first regions."),
                Custom(IPADAPTER_PARAMS, "params_2", tooltip="Regions appended after the first."),
                *[Custom(IPADAPTER_PARAMS, f"params_{i}", optional=True, tooltip="More regions, appended in order.")
                  for i in (3, 4, 5)]],
        outputs=[Output(IPADAPTER_PARAMS, "IPADAPTER_PARAMS")],
    )

    @classmethod
    def execute(cls, params_1: Any, params_2: Any, params_3: Any = None, params_4: Any = None,
                params_5: Any = None) -> tuple[Any, ...]:
        given = [(f"params_{i}", p) for i, p in enumerate((params_1, params_2, params_3, params_4, params_5), 1)
                 if p is not None]
        checked = [_check_params(p, name) for name, p in given]
        return ({k: [v for p in checked for v in p[k]] for k in _KEYS},)


class IPAdapterFromParams(Node):
    """Steer a model with every region of IPADAPTER_PARAMS: each image with its own mask, weight and window."""

    SCHEMA = Schema(
        "IPAdapterFromParams", display_name="IPAdapter from Params", category="ipadapter/params",
        inputs=[Model("model", tooltip="The SD1.5 or SDXL model to steer."),
                Custom(IPADAPTER, "ipadapter", tooltip="The adapter from an IPAdapter loader."),
                Custom(IPADAPTER_PARAMS, "ipadapter_params", tooltip="The regions (IPAdapter Regional Conditioning)."),
                Combo("combine_embeds", COMBINE, tooltip="How several images of one region are joined."),
                Combo("embeds_scaling", SCALING, tooltip="What the weight scales: the values only, or keys and values."),
                Image("image_negative", optional=True, tooltip="An image to steer away from (default: none)."),
                Custom("CLIP_VISION", "clip_vision", optional=True,
                       tooltip="The CLIP-vision model (optional with IPAdapter Unified Loader).")],
        outputs=[Output("MODEL", "MODEL")],
    )

    @classmethod
    def execute(cls, model: Any, ipadapter: Any, ipadapter_params: Any, combine_embeds: str = "concat",
                embeds_scaling: str = "V only", image_negative: Any = None, clip_vision: Any = None) -> tuple[Any, ...]:
        from nodeloom.diffusion.ip_adapter import apply_ip_adapter

        params = _check_params(ipadapter_params, "ipadapter_params")
        adapter, vision = _unpack(ipadapter, clip_vision)
        with services().models.device_lock:
            for i, image in enumerate(params["image"]):
                if image is None:
                    continue
                model = apply_ip_adapter(model, adapter, vision, image, image_negative=image_negative,
                                         attn_mask=params["attn_mask"][i], weight=params["weight"][i],
                                         weight_type=params["weight_type"][i], start_at=params["start_at"][i],
                                         end_at=params["end_at"][i], combine_embeds=combine_embeds,
                                         embeds_scaling=embeds_scaling)
        return (model,)
