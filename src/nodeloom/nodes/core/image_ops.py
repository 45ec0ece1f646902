"""Core image nodes: scale, invert, batch, rebatch, empty, crop, pad (ComfyUI names and inputs).

Thin wrappers over :mod:`nodeloom.ops.resample`; inputs are never mutated.
"""

from __future__ import annotations

import torch

from nodeloom.node_api import MAX_RESOLUTION, Combo, Float, Image, Int, Node, Output, Schema
from nodeloom.ops import resample

__all__ = [
    "EmptyImage",
    "ImageBatch",
    "ImageCrop",
    "ImageInvert",
    "ImagePadForOutpaint",
    "ImageScale",
    "ImageScaleBy",
    "RebatchImages",
]

_METHOD_TIP = "Resampling filter: nearest-exact keeps hard pixels, area suits shrinking, lanczos is sharpest."


def _image_out(tooltip: str = "The resulting image.") -> Output:
    return Output("IMAGE", "IMAGE", tooltip=tooltip)


class ImageScale(Node):
    """Resize an image to a width and height (0 keeps the aspect ratio from the other side)."""

    # ComfyUI's class attributes, read by custom-node packs that reuse the choices
    upscale_methods = list(resample.UPSCALE_METHODS)
    crop_methods = list(resample.CROP_METHODS)

    SCHEMA = Schema(
        "ImageScale",
        display_name="Upscale Image",
        category="image/upscaling",
        inputs=[
            Image("image", tooltip="The image to resize."),
            Combo("upscale_method", list(resample.UPSCALE_METHODS), tooltip=_METHOD_TIP),
            Int("width", 512, min=0, max=MAX_RESOLUTION, step=1, tooltip="Target width in pixels (0: from height)."),
            Int("height", 512, min=0, max=MAX_RESOLUTION, step=1, tooltip="Target height in pixels (0: from width)."),
            Combo("crop", list(resample.CROP_METHODS), tooltip="center: crop to the target aspect ratio first; disabled: stretch."),
        ],
        outputs=[_image_out()],
    )

    @classmethod
    def execute(cls, image: torch.Tensor, upscale_method: str, width: int, height: int, crop: str) -> tuple[torch.Tensor]:
        return (resample.upscale_image(image, width, height, upscale_method, crop),)


class ImageScaleBy(Node):
    """Resize an image by a factor."""

    SCHEMA = Schema(
        "ImageScaleBy",
        display_name="Upscale Image By",
        category="image/upscaling",
        inputs=[
            Image("image", tooltip="The image to resize."),
            Combo("upscale_method", list(resample.UPSCALE_METHODS), tooltip=_METHOD_TIP),
            Float("scale_by", 1.0, min=0.01, max=8.0, step=0.01, tooltip="Size factor (2.0 doubles width and height)."),
        ],
        outputs=[_image_out()],
    )

    @classmethod
    def execute(cls, image: torch.Tensor, upscale_method: str, scale_by: float) -> tuple[torch.Tensor]:
        width = max(1, round(image.shape[2] * scale_by))
        height = max(1, round(image.shape[1] * scale_by))
        return (resample.upscale_image(image, width, height, upscale_method, "disabled"),)


class ImageInvert(Node):
    """Invert the colours of an image (1 − value)."""

    SCHEMA = Schema(
        "ImageInvert",
        display_name="Invert Image",
        category="image",
        inputs=[Image("image", tooltip="The image to invert.")],
        outputs=[_image_out("The inverted image.")],
    )

    @classmethod
    def execute(cls, image: torch.Tensor) -> tuple[torch.Tensor]:
        return (1.0 - image,)


class ImageBatch(Node):
    """Join two images into one batch; the second is resized to the first's size if needed."""

    SCHEMA = Schema(
        "ImageBatch",
        display_name="Batch Images",
        category="image",
        inputs=[
            Image("image1", tooltip="First images of the batch."),
            Image("image2", tooltip="Images appended (resized, centre-cropped, to image1's size)."),
        ],
        outputs=[_image_out("image1 followed by image2.")],
    )

    @classmethod
    def execute(cls, image1: torch.Tensor, image2: torch.Tensor) -> tuple[torch.Tensor]:
        if image1.shape[1:] != image2.shape[1:]:
            image2 = resample.upscale_image(image2, image1.shape[2], image1.shape[1], "bilinear", "center")
        return (torch.cat((image1, image2), dim=0),)


class RebatchImages(Node):
    """Regroup image batches (or a list of them) into batches of ``batch_size``."""

    SCHEMA = Schema(
        "RebatchImages",
        display_name="Rebatch Images",
        category="image/batch",
        input_is_list=True,
        inputs=[
            Image("images", tooltip="Images or a list of image batches."),
            Int("batch_size", 1, min=1, max=4096, tooltip="Images per output batch."),
        ],
        outputs=[Output("IMAGE", "IMAGE", is_list=True, tooltip="A list of batches of at most batch_size images.")],
    )

    @classmethod
    def execute(cls, images: list[torch.Tensor], batch_size: list[int]) -> tuple[list[torch.Tensor]]:
        size = int(batch_size[0])
        singles = [img[i : i + 1] for img in images for i in range(img.shape[0])]
        return ([torch.cat(singles[i : i + size], dim=0) for i in range(0, len(singles), size)],)


class EmptyImage(Node):
    """Make a batch of images filled with one colour."""

    SCHEMA = Schema(
        "EmptyImage",
        display_name="EmptyImage",
        category="image",
        inputs=[
            Int("width", 512, min=1, max=MAX_RESOLUTION, step=1, tooltip="Width in pixels."),
            Int("height", 512, min=1, max=MAX_RESOLUTION, step=1, tooltip="Height in pixels."),
            Int("batch_size", 1, min=1, max=4096, tooltip="Number of images."),
            Int("color", 0, min=0, max=0xFFFFFF, step=1, display="color", tooltip="Fill colour as 0xRRGGBB."),
        ],
        outputs=[_image_out("The filled images.")],
    )

    @classmethod
    def execute(cls, width: int, height: int, batch_size: int = 1, color: int = 0) -> tuple[torch.Tensor]:
        rgb = torch.tensor([(color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF], dtype=torch.float32) / 255.0
        return (rgb.expand(batch_size, height, width, 3).clone(),)


class ImageCrop(Node):
    """Cut a rectangle out of an image."""

    SCHEMA = Schema(
        "ImageCrop",
        display_name="Image Crop",
        category="image/transform",
        inputs=[
            Image("image", tooltip="The image to crop."),
            Int("width", 512, min=1, max=MAX_RESOLUTION, step=1, tooltip="Crop width (clipped at the image edge)."),
            Int("height", 512, min=1, max=MAX_RESOLUTION, step=1, tooltip="Crop height (clipped at the image edge)."),
            Int("x", 0, min=0, max=MAX_RESOLUTION, step=1, tooltip="Left edge of the crop."),
            Int("y", 0, min=0, max=MAX_RESOLUTION, step=1, tooltip="Top edge of the crop."),
        ],
        outputs=[_image_out("The cropped image.")],
    )

    @classmethod
    def execute(cls, image: torch.Tensor, width: int, height: int, x: int, y: int) -> tuple[torch.Tensor]:
        return (resample.crop_image(image, width, height, x, y),)


class ImagePadForOutpaint(Node):
    """Pad an image with grey for outpainting and make the mask of the area to paint."""

    SCHEMA = Schema(
        "ImagePadForOutpaint",
        display_name="Pad Image for Outpainting",
        category="image",
        inputs=[
            Image("image", tooltip="The image to extend."),
            Int("left", 0, min=0, max=MAX_RESOLUTION, step=8, tooltip="Pixels added on the left."),
            Int("top", 0, min=0, max=MAX_RESOLUTION, step=8, tooltip="Pixels added on top."),
            Int("right", 0, min=0, max=MAX_RESOLUTION, step=8, tooltip="Pixels added on the right."),
            Int("bottom", 0, min=0, max=MAX_RESOLUTION, step=8, tooltip="Pixels added at the bottom."),
            Int("feathering", 40, min=0, max=MAX_RESOLUTION, step=1,
                tooltip="Width of the soft mask edge reaching into the original image."),
        ],
        outputs=[_image_out("The padded image."), Output("MASK", "MASK", tooltip="1 where new content goes.")],
    )

    @classmethod
    def execute(cls, image: torch.Tensor, left: int, top: int, right: int, bottom: int, feathering: int) -> tuple[torch.Tensor, torch.Tensor]:
        return resample.pad_for_outpaint(image, left, top, right, bottom, feathering)
