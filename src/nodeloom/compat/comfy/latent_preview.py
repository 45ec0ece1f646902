"""``latent_preview``: the step callback packs hand to ``comfy.sample.sample``.

``prepare_callback(model, steps)`` returns ComfyUI's ``callback(step, x0, x, total_steps)``
that reports step progress through the running node (interruption honoured) and, when the
model already carries nodeloom's fitted latent → RGB map, a preview of the estimate
(:func:`nodeloom.diffusion.preview.latent_preview`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from nodeloom.compat.comfy.latent_formats import for_model
from nodeloom.compat.comfy.utils import ProgressBar
from nodeloom.diffusion.preview import latent_preview as _latent_rgb

__all__ = ["MAX_PREVIEW_RESOLUTION", "Latent2RGBPreviewer", "LatentPreviewMethod", "LatentPreviewer", "get_previewer",
           "prepare_callback"]


class LatentPreviewMethod:
    """The preview methods ComfyUI names (nodeloom draws every preview with its fitted map)."""

    NoPreviews = "none"
    Auto = "auto"
    Latent2RGB = "latent2rgb"
    TAESD = "taesd"


MAX_PREVIEW_RESOLUTION = 512


class LatentPreviewer:
    """Base of step previewers: ``decode_latent_to_preview(x0)`` gives a PIL image."""

    def decode_latent_to_preview(self, x0: torch.Tensor) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define `decode_latent_to_preview`")

    def decode_latent_to_preview_image(self, preview_format: str, x0: torch.Tensor) -> tuple[str, Any, int]:
        return (preview_format, self.decode_latent_to_preview(x0), MAX_PREVIEW_RESOLUTION)


class Latent2RGBPreviewer(LatentPreviewer):
    """A linear latent → RGB map (nodeloom's, fitted to the model's VAE) on model-space estimates.

    ``latent_rgb_factors`` (``[3, C]``) and ``latent_rgb_factors_bias`` are exposed in ComfyUI's
    layout for packs that apply them with ``F.linear`` themselves.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, scale: float = 1.0) -> None:
        self.weight, self.bias, self.scale = weight, bias, float(scale)
        self.latent_rgb_factors = (weight / self.scale).t().contiguous()
        self.latent_rgb_factors_bias = bias

    def decode_latent_to_preview(self, x0: torch.Tensor) -> Any:
        from PIL import Image

        rgb = _latent_rgb(x0 / self.scale, self.weight, self.bias)
        return Image.fromarray((rgb.numpy() * 255).round().astype("uint8"))


def _projection(model: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    extra = getattr(model, "extra", None)
    return extra.get("latent_rgb") if isinstance(extra, dict) else None


def get_previewer(device: Any = None, latent_format: Any = None, model: Any = None, **_: Any) -> LatentPreviewer | None:
    """A previewer for ``model`` when its latent → RGB map is known, else None."""
    projection = _projection(model)
    if projection is None:
        return None
    return Latent2RGBPreviewer(*projection, scale=float(getattr(model, "latent_scale", 1.0) or 1.0))


def prepare_callback(model: Any, steps: int, x0_output_dict: dict[str, Any] | None = None) -> Callable[..., None]:
    """ComfyUI's sampler callback: ``callback(step, x0, x, total_steps)``.

    ``step`` counts from 0; ``x0`` is the model-space estimate (its last value is stored in
    ``x0_output_dict["x0"]`` when a dict is given).
    """
    bar = ProgressBar(steps)
    # looked up on the module at call time: packs (VideoHelperSuite) wrap ``get_previewer``
    previewer = globals()["get_previewer"](None, for_model(model), model=model)

    def callback(step: int, x0: torch.Tensor, x: torch.Tensor, total_steps: int) -> None:
        if x0_output_dict is not None:
            x0_output_dict["x0"] = x0
        preview = previewer.decode_latent_to_preview_image("JPEG", x0) if previewer is not None else None
        bar.update_absolute(step + 1, total_steps, preview)

    return callback
