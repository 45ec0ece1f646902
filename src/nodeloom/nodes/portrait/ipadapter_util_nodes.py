"""ComfyUI_IPAdapter_plus's image utilities: ``PrepImageForClipVision`` (a square crop or pad,
resized and optionally sharpened) and ``IPAdapterNoise`` (a noisy image to use as the negative).
The algorithms are in ``nodeloom.ops.clip_prep``."""

from __future__ import annotations

from typing import Any

from nodeloom.node_api import Combo, Float, Image, Int, Node, Output, Schema, ValidationError
from nodeloom.ops.clip_prep import CROP_POSITIONS, INTERPOLATIONS, NOISE_TYPES, prep_for_clip_vision, reference_noise

__all__ = ["IPAdapterNoise", "PrepImageForClipVision"]


class PrepImageForClipVision(Node):
    """Crop (or pad) reference images to a square at a chosen position and resize them to 224²,
    so the CLIP-vision encoder sees the part that matters."""

    SCHEMA = Schema(
        "PrepImageForClipVision", display_name="Prep Image For ClipVision", category="ipadapter/utils",
        inputs=[Image("image", tooltip="The reference image(s)."),
                Combo("interpolation", INTERPOLATIONS, tooltip="The PIL filter that resizes to 224²."),
                Combo("crop_position", CROP_POSITIONS, tooltip="Which square is kept; pad: black bars make it square."),
                Float("sharpening", 0.0, min=0.0, max=1.0, step=0.05, tooltip="Contrast-adaptive sharpening after the resize.")],
        outputs=[Output("IMAGE", "IMAGE")],
    )

    @classmethod
    def execute(cls, image: Any, interpolation: str = "LANCZOS", crop_position: str = "top",
                sharpening: float = 0.0) -> tuple[Any, ...]:
        if image.ndim != 4 or image.shape[-1] not in (3, 4):
            raise ValidationError(f"`image` must be an IMAGE [B, H, W, 3]; got shape {tuple(image.shape)}")
        try:
            return (prep_for_clip_vision(image[..., :3], interpolation, crop_position, float(sharpening)),)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class IPAdapterNoise(Node):
    """A noisy 224² image (from a reference image, or black) to use as an IP-Adapter's negative."""

    SCHEMA = Schema(
        "IPAdapterNoise", display_name="IPAdapter Noise", category="ipadapter/utils",
        inputs=[Combo("type", NOISE_TYPES, tooltip="fade, dissolve, gaussian, or shuffle (warped and flipped)."),
                Float("strength", 1.0, min=0.0, max=1.0, step=0.05, tooltip="How much noise."),
                Int("blur", 0, min=0, max=32, tooltip="Gaussian blur kernel after the noise (made odd; 0: none)."),
                Image("image_optional", optional=True, tooltip="The image to noise (default: black).")],
        outputs=[Output("IMAGE", "IMAGE")],
    )

    @classmethod
    def execute(cls, type: str = "fade", strength: float = 1.0, blur: int = 0,  # noqa: A002 (the pack's input name)
                image_optional: Any = None) -> tuple[Any, ...]:
        try:
            return (reference_noise(type, float(strength), int(blur), image_optional),)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
