"""ComfyUI's animated-image savers: an image batch as one animated WebP or APNG in the output
folder, with the prompt and workflow embedded (EXIF for WebP, ``comf`` chunks after the image
data for APNG, as ComfyUI writes them so its tools read them back)."""

from __future__ import annotations

import json
from typing import Any

import torch
from PIL.PngImagePlugin import PngInfo

from nodeloom.node_api import Boolean, Combo, Float, Hidden, Image, Int, Node, NodeOutput, Schema, String, services
from nodeloom.ops import imageio

__all__ = ["SaveAnimatedPNG", "SaveAnimatedWEBP"]

#: WebP encoder effort: ComfyUI's names for Pillow's `method`
WEBP_METHODS = {"default": 4, "fastest": 0, "slowest": 6}


def _common_inputs() -> list[Any]:
    return [
        Image("images", tooltip="The frames, in order."),
        String("filename_prefix", "ComfyUI", tooltip="File name prefix; may contain a subfolder ('sub/name')."),
        Float("fps", 6.0, min=0.01, max=1000.0, step=0.01, tooltip="Frames per second."),
    ]


def _target(images: torch.Tensor, prefix: str, ext: str) -> tuple[Any, dict[str, str]]:
    folder, stem, counter, subfolder = services().paths.get_save_path(prefix, int(images.shape[2]), int(images.shape[1]))
    name = f"{stem}_{counter:05}_.{ext}"
    return folder / name, {"filename": name, "subfolder": subfolder, "type": "output"}


def _with_metadata() -> bool:
    return not services().settings.get("disable_metadata", False)


class SaveAnimatedWEBP(Node):
    """Save the frames as one animated WebP in the output folder."""

    SCHEMA = Schema(
        "SaveAnimatedWEBP",
        display_name="SaveAnimatedWEBP",
        category="image/animation",
        output_node=True,
        inputs=[*_common_inputs(),
                Boolean("lossless", True, tooltip="Lossless frames (quality then sets the effort)."),
                Int("quality", 80, min=0, max=100, tooltip="Lossy quality, 0..100."),
                Combo("method", list(WEBP_METHODS), tooltip="Encoder effort: slower gives smaller files.")],
        hidden={"prompt": Hidden.prompt, "extra_pnginfo": Hidden.extra_pnginfo},
        outputs=[],
    )

    @classmethod
    def execute(cls, images: torch.Tensor, filename_prefix: str, fps: float, lossless: bool, quality: int, method: str,
                prompt: Any = None, extra_pnginfo: Any = None) -> NodeOutput:
        frames = imageio.tensor_to_pils(images)
        exif = frames[0].getexif()
        if _with_metadata():
            if prompt is not None:
                exif[0x0110] = f"prompt:{json.dumps(prompt)}"
            for tag, (key, value) in zip(range(0x010F, 0, -1), (extra_pnginfo or {}).items()):
                exif[tag] = f"{key}:{json.dumps(value)}"
        path, entry = _target(images, filename_prefix, "webp")
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000.0 / fps), exif=exif,
                       lossless=lossless, quality=quality, method=WEBP_METHODS.get(method, 4))
        return NodeOutput(ui={"images": [entry], "animated": (len(frames) != 1,)})


class SaveAnimatedPNG(Node):
    """Save the frames as one animated PNG (APNG) in the output folder."""

    SCHEMA = Schema(
        "SaveAnimatedPNG",
        display_name="SaveAnimatedPNG",
        category="image/animation",
        output_node=True,
        inputs=[*_common_inputs(), Int("compress_level", 4, min=0, max=9, tooltip="zlib level: 0 fastest, 9 smallest.")],
        hidden={"prompt": Hidden.prompt, "extra_pnginfo": Hidden.extra_pnginfo},
        outputs=[],
    )

    @classmethod
    def execute(cls, images: torch.Tensor, fps: float, compress_level: int, filename_prefix: str = "ComfyUI",
                prompt: Any = None, extra_pnginfo: Any = None) -> NodeOutput:
        info = PngInfo() if _with_metadata() else None
        if info is not None:
            items = ([("prompt", prompt)] if prompt is not None else []) + list((extra_pnginfo or {}).items())
            for key, value in items:
                info.add(b"comf", key.encode("latin-1") + b"\0" + json.dumps(value).encode("latin-1", "replace"), after_idat=True)
        frames = imageio.tensor_to_pils(images)
        path, entry = _target(images, filename_prefix, "png")
        frames[0].save(path, pnginfo=info, compress_level=compress_level, save_all=True, duration=int(1000.0 / fps),
                       append_images=frames[1:])
        return NodeOutput(ui={"images": [entry], "animated": (True,)})
