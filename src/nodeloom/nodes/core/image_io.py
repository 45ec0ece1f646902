"""Core image I/O nodes: LoadImage, SaveImage, PreviewImage (ComfyUI names and inputs).

Files are read from the engine's input folder and written to its output / temp folders
through ``services().paths``; PNGs carry the ``prompt`` and ``workflow`` text chunks and are
written atomically. LoadImage refuses a file larger than the run's ``max_pixels`` limit from
its header, before decoding it.
"""

from __future__ import annotations

import os
import random
import string
from typing import Any

import torch

from nodeloom.errors import NodeloomError
from nodeloom.node_api import Combo, Hidden, Image, Node, NodeOutput, Output, Schema, String, safe_join, services
from nodeloom.ops import imageio

__all__ = ["LoadImage", "PreviewImage", "SaveImage", "input_image_files"]

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def input_image_files() -> list[str]:
    """Image files directly in the input folder, sorted (empty without an active engine)."""
    try:
        active = services()
    except NodeloomError:  # no engine active: listing choices must still work
        return []
    folder = active.paths.input_dir
    if not folder.is_dir():
        return []
    return sorted(
        name for name in os.listdir(folder)
        if name.lower().endswith(_IMAGE_EXTENSIONS) and (folder / name).is_file()
    )


def _resolve_input(name: str) -> str:
    """Path of an input name, honouring ComfyUI's ``"name [output]"`` annotation."""
    paths = services().paths
    for kind in ("output", "input", "temp"):
        suffix = f" [{kind}]"
        if name.endswith(suffix):
            return str(safe_join(paths.directory(kind), name[: -len(suffix)]))
    return str(safe_join(paths.input_dir, name))


def _max_pixels() -> int | None:
    """The running prompt's pixel limit (None: Pillow's own decompression-bomb guard)."""
    limits = getattr(services(required=False), "limits", None)  # None outside an engine
    return getattr(limits, "max_pixels", None) or None


class LoadImage(Node):
    """Load an image from the input folder; its alpha channel becomes a mask (1 − alpha).

    Animated files give one batch item per frame of the first frame's size.
    """

    SCHEMA = Schema(
        "LoadImage",
        display_name="Load Image",
        category="image",
        inputs=[
            Combo("image", input_image_files, image_upload=True,
                  tooltip="An image file in the input folder (upload one to add it)."),
        ],
        outputs=[
            Output("IMAGE", "IMAGE", tooltip="The image, RGB, 0..1."),
            Output("MASK", "MASK", tooltip="1 − alpha (zeros when the file has no alpha)."),
        ],
    )

    @classmethod
    def execute(cls, image: str) -> tuple[torch.Tensor, torch.Tensor]:
        return imageio.load_image_file(_resolve_input(image), max_pixels=_max_pixels())

    @classmethod
    def fingerprint_inputs(cls, image: str) -> str:
        return imageio.file_sha256(_resolve_input(image))

    @classmethod
    def validate_inputs(cls, image: str) -> bool | str:
        try:
            path = _resolve_input(image)
        except ValueError as exc:
            return f"Invalid image file: {image} ({exc})"
        if not os.path.isfile(path):
            return f"Invalid image file: {image}"
        return True


def _save_images(images: torch.Tensor, filename_prefix: str, kind: str, compress_level: int,
                 prompt: Any, extra_pnginfo: Any) -> list[dict[str, str]]:
    active = services()
    height, width = int(images.shape[1]), int(images.shape[2])
    folder, filename, counter, subfolder = active.paths.get_save_path(filename_prefix, width, height, kind=kind, count=len(images))
    with_metadata = not active.settings.get("disable_metadata", False)
    info = imageio.png_text_chunks(prompt, extra_pnginfo) if with_metadata else None
    results = []
    for batch_number, pil in enumerate(imageio.tensor_to_pils(images)):
        name = f"{filename.replace('%batch_num%', str(batch_number))}_{counter:05}_.png"
        imageio.save_png(pil, folder / name, info, compress_level)
        results.append({"filename": name, "subfolder": subfolder, "type": kind})
        counter += 1
    return results


class SaveImage(Node):
    """Save images as PNG files in the output folder, with the workflow embedded."""

    SCHEMA = Schema(
        "SaveImage",
        display_name="Save Image",
        category="image",
        inputs=[
            Image("images", tooltip="The images to save."),
            String("filename_prefix", "ComfyUI",
                   tooltip="File name prefix; may contain a subfolder ('sub/name') and %width% / %height%."),
        ],
        hidden={"prompt": Hidden.prompt, "extra_pnginfo": Hidden.extra_pnginfo},
        outputs=[],
        output_node=True,
        description="Saves the input images to your output directory.",
    )

    @classmethod
    def execute(cls, images: torch.Tensor, filename_prefix: str = "ComfyUI", prompt: Any = None,
                extra_pnginfo: Any = None) -> NodeOutput:
        results = _save_images(images, filename_prefix, "output", 4, prompt, extra_pnginfo)
        return NodeOutput(ui={"images": results})


class PreviewImage(Node):
    """Show images without keeping them: written as fast PNGs to the temp folder."""

    SCHEMA = Schema(
        "PreviewImage",
        display_name="Preview Image",
        category="image",
        inputs=[Image("images", tooltip="The images to preview.")],
        hidden={"prompt": Hidden.prompt, "extra_pnginfo": Hidden.extra_pnginfo},
        outputs=[],
        output_node=True,
        description="Saves the input images to the temp directory for preview.",
    )

    @classmethod
    def execute(cls, images: torch.Tensor, prompt: Any = None, extra_pnginfo: Any = None) -> NodeOutput:
        suffix = "".join(random.choice(string.ascii_lowercase) for _ in range(5))
        results = _save_images(images, f"ComfyUI_temp_{suffix}", "temp", 1, prompt, extra_pnginfo)
        return NodeOutput(ui={"images": results})
