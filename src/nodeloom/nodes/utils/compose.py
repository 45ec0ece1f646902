"""Image composition nodes of ComfyUI's core: blend two images with a blend mode, blur, and fit
an image into a canvas of a given size with padding. The maths is in :mod:`nodeloom.ops.blend`."""

from __future__ import annotations

import torch

from nodeloom.node_api import MAX_RESOLUTION, Combo, Float, Image, Int, Node, Output, Schema, ValidationError
from nodeloom.ops import resample
from nodeloom.ops.blend import BLEND_MODES, blend, gaussian_blur

__all__ = ["ImageBlend", "ImageBlur", "ResizeAndPadImage"]


class ImageBlend(Node):
    """Blend image2 onto image1 (resized to it when sizes differ) and mix by `blend_factor`."""

    SCHEMA = Schema(
        "ImageBlend",
        display_name="Image Blend",
        category="image/postprocessing",
        inputs=[
            Image("image1", tooltip="The base image."),
            Image("image2", tooltip="The image blended on top (resized, centre-cropped, to image1)."),
            Float("blend_factor", 0.5, min=0.0, max=1.0, step=0.01, tooltip="0 keeps image1, 1 gives the full blend."),
            Combo("blend_mode", list(BLEND_MODES), tooltip="How the two images combine."),
        ],
        outputs=[Output("IMAGE", "IMAGE", tooltip="The blended image, clamped to 0..1.")],
    )

    @classmethod
    def execute(cls, image1: torch.Tensor, image2: torch.Tensor, blend_factor: float, blend_mode: str) -> tuple[torch.Tensor]:
        if image1.shape[-1] < image2.shape[-1]:
            image2 = image2[..., : image1.shape[-1]]
        elif image1.shape[-1] > image2.shape[-1]:  # an RGB image2 on an RGBA image1: opaque alpha
            image2 = torch.cat([image2, image2.new_ones(*image2.shape[:-1], image1.shape[-1] - image2.shape[-1])], dim=-1)
        if image1.shape[1:3] != image2.shape[1:3]:
            image2 = resample.upscale_image(image2, int(image1.shape[2]), int(image1.shape[1]), "bicubic", "center")
        try:
            mixed = blend(image1, image2.to(image1.device), blend_mode)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        return (torch.clamp(image1 * (1 - blend_factor) + mixed * blend_factor, 0, 1),)


class ResizeAndPadImage(Node):
    """Scale an image to fit inside target_width × target_height, keeping its aspect ratio, and pad
    the rest (centred) with white or black."""

    SCHEMA = Schema(
        "ResizeAndPadImage",
        display_name="ResizeAndPadImage",
        category="image/transform",
        inputs=[
            Image("image", tooltip="The image to fit."),
            Int("target_width", 512, min=1, max=MAX_RESOLUTION, step=1, tooltip="Canvas width."),
            Int("target_height", 512, min=1, max=MAX_RESOLUTION, step=1, tooltip="Canvas height."),
            Combo("padding_color", ["white", "black"], tooltip="Colour of the padding."),
            Combo("interpolation", ["area", "bicubic", "nearest-exact", "bilinear", "lanczos"], tooltip="Resampling filter."),
        ],
        outputs=[Output("IMAGE", "IMAGE", tooltip="The padded image of the target size.")],
    )

    @classmethod
    def execute(cls, image: torch.Tensor, target_width: int, target_height: int, padding_color: str,
                interpolation: str) -> tuple[torch.Tensor]:
        batch, height, width, channels = image.shape
        scale = min(target_width / width, target_height / height)
        new_w, new_h = max(1, int(width * scale)), max(1, int(height * scale))
        resized = resample.upscale_image(image, new_w, new_h, interpolation, "disabled")
        canvas = image.new_full((batch, target_height, target_width, channels), 0.0 if padding_color == "black" else 1.0)
        top, left = (target_height - new_h) // 2, (target_width - new_w) // 2
        canvas[:, top : top + new_h, left : left + new_w] = resized
        return (canvas,)


class ImageBlur(Node):
    """Gaussian blur; `sigma` is relative to the radius, as in ComfyUI."""

    SCHEMA = Schema(
        "ImageBlur",
        display_name="Image Blur",
        category="image/postprocessing",
        inputs=[
            Image("image", tooltip="The image to blur."),
            Int("blur_radius", 1, min=1, max=31, step=1, tooltip="Kernel radius in pixels."),
            Float("sigma", 1.0, min=0.1, max=10.0, step=0.1, tooltip="Spread, in units of the radius."),
        ],
        outputs=[Output("IMAGE", "IMAGE", tooltip="The blurred image.")],
    )

    @classmethod
    def execute(cls, image: torch.Tensor, blur_radius: int, sigma: float) -> tuple[torch.Tensor]:
        return (gaussian_blur(image, blur_radius, sigma),)
