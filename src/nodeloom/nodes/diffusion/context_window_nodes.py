"""ComfyUI's context-window nodes: ContextWindowsManual and WanContextWindowsManual — a MODEL that
denoises a clip longer than its window in overlapping windows and blends them (the windows and
weights are :mod:`nodeloom.diffusion.context_windows`). They apply to the flow-transformer
families (Wan's and LTX-Video's video latents along their frame axis, ``dim`` 2 — LTX-Video's
noise mask and guide frames handled per window); a Stable Diffusion UNet MODEL is refused."""

from __future__ import annotations

from typing import Any

from nodeloom.diffusion.context_windows import FUSE_METHODS, SCHEDULES, ContextWindows, windowed_adapter
from nodeloom.diffusion.families import FAMILIES
from nodeloom.node_api import IO, MAX_RESOLUTION, Boolean, Combo, Int, Model, Node, Output, Schema, ValidationError

__all__ = ["ContextWindowsManual", "WanContextWindowsManual"]

_MODEL_TIP = "The model whose sampling runs window by window."


def _common_tail() -> list[Any]:
    return [Combo("context_schedule", list(SCHEDULES), tooltip="The step between window starts."),
            Int("context_stride", 1, min=1, tooltip="The step between window starts (uniform schedules only)."),
            Boolean("closed_loop", False, tooltip="Let the last window wrap round to the first (looped schedules only)."),
            Combo("fuse_method", list(FUSE_METHODS), default="pyramid", tooltip="How overlapping windows' results are blended together.")]


def windowed_model(model: Any, cw: ContextWindows) -> Any:
    """A clone of ``model`` whose transformer calls run window by window.

    Raises:
        ValidationError: a model without a flow-transformer adapter, one with a joint audio-video
            latent (LTX-2), or an overlap not below the length.
    """
    if getattr(model, "adapter", None) is None:
        raise ValidationError("`model` must be a flow-transformer model loaded with UNETLoader (Wan, Flux, ...);"
                              " context windows cannot wrap a Stable Diffusion UNet here")
    if cw.overlap >= cw.length:
        raise ValidationError(f"`context_overlap` ({cw.overlap}) must be smaller than `context_length` ({cw.length})"
                              " in latent frames")
    family = FAMILIES.get(model.family)
    if family is not None and family.joint_latent:
        raise ValidationError(f"`model` is {family.title}, whose joint audio-video latent context windows cannot"
                              " cut in time here; they take video models with a plain video latent (Wan, LTX-Video 0.9)")
    guides = family.window_guides if family is not None else None
    return model.clone(adapter=windowed_adapter(model.adapter, cw, guides))


class ContextWindowsManual(Node):
    """Context windows set by hand: sampling runs the model on overlapping windows along one latent axis and blends them."""

    SCHEMA = Schema(
        "ContextWindowsManual", display_name="Context Windows (Manual)", category="context", experimental=True,
        description="Context windows set by hand: the model runs on overlapping windows along one latent axis.",
        inputs=[Model("model", tooltip=_MODEL_TIP),
                Int("context_length", 16, min=1, tooltip="How many latent positions one window covers."),
                Int("context_overlap", 4, min=0, tooltip="How many positions neighbouring windows share."),
                *_common_tail(),
                Int("dim", 0, min=0, max=5, tooltip="The latent axis the windows slide along.")],
        outputs=[Output(IO.MODEL, "MODEL", tooltip="The model, sampling window by window.")],
    )

    @classmethod
    def execute(cls, model: Any, context_length: int, context_overlap: int, context_schedule: str, context_stride: int,
                closed_loop: bool, fuse_method: str, dim: int) -> tuple[Any, ...]:
        cw = ContextWindows(context_length, context_overlap, context_schedule, context_stride, closed_loop, fuse_method,
                            dim)
        return (windowed_model(model, cw),)


class WanContextWindowsManual(Node):
    """Context windows over the frames (latent axis 2) of Wan-style video models, set by hand."""

    SCHEMA = Schema(
        "WanContextWindowsManual", display_name="WAN Context Windows (Manual)", category="context", experimental=True,
        description="Context windows over the frames (latent axis 2) of Wan-style video models, set by hand.",
        inputs=[Model("model", tooltip=_MODEL_TIP),
                Int("context_length", 81, min=1, max=MAX_RESOLUTION, step=4, tooltip="How many latent positions one window covers."),
                Int("context_overlap", 30, min=0, tooltip="How many positions neighbouring windows share."),
                *_common_tail()],
        outputs=[Output(IO.MODEL, "MODEL", tooltip="The model, sampling window by window.")],
    )

    @classmethod
    def execute(cls, model: Any, context_length: int, context_overlap: int, context_schedule: str, context_stride: int,
                closed_loop: bool, fuse_method: str) -> tuple[Any, ...]:
        length = max((context_length - 1) // 4 + 1, 1)  # video frames → latent frames
        overlap = max((context_overlap - 1) // 4 + 1, 0)
        cw = ContextWindows(length, overlap, context_schedule, context_stride, closed_loop, fuse_method, 2)
        return (windowed_model(model, cw),)
