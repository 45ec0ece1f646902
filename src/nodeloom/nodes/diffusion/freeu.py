"""FreeU and FreeU_V2 (Si et al. 2023): rebalance a UNet decoder's backbone features against its
skip connections, as ComfyUI's nodes do, through output-block patches
(:mod:`nodeloom.diffusion.block_patches`)."""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.diffusion.block_patches import fourier_filter
from nodeloom.diffusion.models import DiffusionModel
from nodeloom.node_api import IO, Float, Model, Node, Output, Schema, ValidationError

__all__ = ["FreeU", "FreeU_V2", "freeu_patch"]

_CATEGORY = "model_patches/unet"


def freeu_patch(model_channels: int, b1: float, b2: float, s1: float, s2: float, v2: bool) -> Any:
    """The output-block patch: where ``h`` has 4× (then 2×) the model's base channels, scale the
    first half of its channels by ``b1`` (``b2``) — V2 by 1 + (b − 1)·(its normalised channel mean)
    — and damp the skip connection's lowest frequencies by ``s1`` (``s2``)."""
    scales = {model_channels * 4: (b1, s1), model_channels * 2: (b2, s2)}

    def patch(h: torch.Tensor, hsp: torch.Tensor, transformer_options: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        found = scales.get(int(h.shape[1]))
        if found is None:
            return h, hsp
        b, s = found
        half = h.shape[1] // 2
        h = h.clone()
        if v2:
            mean = h.mean(1, keepdim=True)
            flat = mean.flatten(1)
            low = flat.min(dim=-1).values[:, None, None, None]
            high = flat.max(dim=-1).values[:, None, None, None]
            h[:, :half] = h[:, :half] * ((b - 1) * (mean - low) / (high - low) + 1)
        else:
            h[:, :half] = h[:, :half] * b
        return h, fourier_filter(hsp, threshold=1, scale=s)

    return patch


def _freeu_schema(node_id: str, b1: float, b2: float) -> Schema:
    def factor(name: str, default: float, tip: str) -> Float:
        return Float(name, default, min=0.0, max=10.0, step=0.01, tooltip=tip)

    return Schema(
        node_id, display_name=node_id, category=_CATEGORY,
        inputs=[Model("model", tooltip="The UNet model to patch (SD 1.x / 2.x / SDXL)."),
                factor("b1", b1, "Backbone factor at the deepest decoder stage (4× base channels)."),
                factor("b2", b2, "Backbone factor at the next stage (2× base channels)."),
                factor("s1", 0.9, "Skip-connection low-frequency factor at the deepest stage."),
                factor("s2", 0.2, "Skip-connection low-frequency factor at the next stage.")],
        outputs=[Output(IO.MODEL, "MODEL")],
    )


def _patched(model: DiffusionModel, b1: float, b2: float, s1: float, s2: float, v2: bool) -> DiffusionModel:
    channels = getattr(getattr(model.unet, "config", None), "block_out_channels", None)
    if model.adapter is not None or channels is None or not hasattr(model.unet, "up_blocks"):
        raise ValidationError(f"FreeU patches UNet models (SD 1.x / 2.x / SDXL); `model` is a {model.family} model")
    out = model.clone(fast_path=False)  # a captured CUDA graph would not run the patch
    out.set_model_output_block_patch(freeu_patch(int(channels[0]), float(b1), float(b2), float(s1), float(s2), v2))
    return out


class FreeU(Node):
    """FreeU: scale the decoder's backbone features by b and damp the skip connections' low
    frequencies by s, at the two deepest decoder stages."""

    SCHEMA = _freeu_schema("FreeU", 1.1, 1.2)

    @classmethod
    def execute(cls, model: DiffusionModel, b1: float, b2: float, s1: float, s2: float) -> tuple[Any, ...]:
        return (_patched(model, b1, b2, s1, s2, v2=False),)


class FreeU_V2(Node):  # noqa: N801 - ComfyUI's node id
    """FreeU v2: as FreeU, the backbone scaled in proportion to each position's normalised channel mean."""

    SCHEMA = _freeu_schema("FreeU_V2", 1.3, 1.4)

    @classmethod
    def execute(cls, model: DiffusionModel, b1: float, b2: float, s1: float, s2: float) -> tuple[Any, ...]:
        return (_patched(model, b1, b2, s1, s2, v2=True),)
