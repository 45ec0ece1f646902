"""Preview output nodes of ComfyUI's core: MaskPreview and the before/after ImageCompare.

Both write fast PNGs to the temp folder (never kept as outputs) and report them in the
``ui`` payload the frontend reads (``images``; ``a_images`` / ``b_images`` for the slider).
"""

from __future__ import annotations

import secrets
from typing import Any

import torch

from nodeloom.node_api import Custom, Hidden, Image, Mask, Node, NodeOutput, Output, Schema, services
from nodeloom.ops import imageio

__all__ = ["ImageCompare", "MaskPreview", "save_temp_images"]


def save_temp_images(images: torch.Tensor, prefix: str, prompt: Any = None, extra_pnginfo: Any = None) -> list[dict[str, str]]:
    """Write ``images`` as PNGs to the temp folder; the ``ui`` entries that point at them."""
    active = services()
    stem = f"{prefix}_temp_{secrets.token_hex(3)}"
    folder, filename, counter, subfolder = active.paths.get_save_path(
        stem, int(images.shape[2]), int(images.shape[1]), kind="temp", count=len(images))
    info = None if active.settings.get("disable_metadata", False) else imageio.png_text_chunks(prompt, extra_pnginfo)
    results = []
    for pil in imageio.tensor_to_pils(images):
        name = f"{filename}_{counter:05}_.png"
        imageio.save_png(pil, folder / name, info, compress_level=1)
        results.append({"filename": name, "subfolder": subfolder, "type": "temp"})
        counter += 1
    return results


def _mask_as_image(mask: torch.Tensor) -> torch.Tensor:
    flat = mask.reshape(-1, mask.shape[-2], mask.shape[-1])
    return flat[..., None].expand(-1, -1, -1, 3)


class MaskPreview(Node):
    """Show a mask as a grey image and pass it on."""

    SCHEMA = Schema(
        "MaskPreview",
        display_name="Preview Mask",
        category="mask",
        output_node=True,
        inputs=[Mask("mask", tooltip="The mask to show (white = 1).")],
        hidden={"prompt": Hidden.prompt, "extra_pnginfo": Hidden.extra_pnginfo},
        outputs=[Output("MASK", "mask", tooltip="The same mask, unchanged.")],
    )

    @classmethod
    def execute(cls, mask: torch.Tensor, prompt: Any = None, extra_pnginfo: Any = None) -> NodeOutput:
        results = save_temp_images(_mask_as_image(mask), "ComfyUI", prompt, extra_pnginfo)
        return NodeOutput(mask, ui={"images": results})


class ImageCompare(Node):
    """Compare two images with a slider in the frontend (either may be left out)."""

    SCHEMA = Schema(
        "ImageCompare",
        display_name="Image Compare",
        category="image",
        output_node=True,
        inputs=[
            Image("image_a", optional=True, tooltip="The first image (left of the slider)."),
            Image("image_b", optional=True, tooltip="The second image (right of the slider)."),
            Custom("IMAGECOMPARE", "compare_view", optional=True,
                   tooltip="The slider view the frontend draws; its value is not used here."),
        ],
        outputs=[],
    )

    @classmethod
    def execute(cls, image_a: torch.Tensor | None = None, image_b: torch.Tensor | None = None,
                compare_view: Any = None) -> NodeOutput:
        ui: dict[str, list[dict[str, str]]] = {"a_images": [], "b_images": []}
        if image_a is not None and len(image_a):
            ui["a_images"] = save_temp_images(image_a, "comfy.compare.a")
        if image_b is not None and len(image_b):
            ui["b_images"] = save_temp_images(image_b, "comfy.compare.b")
        return NodeOutput(ui=ui)
