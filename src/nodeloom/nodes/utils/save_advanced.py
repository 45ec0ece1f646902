"""ComfyUI's "Save Image (Advanced)": PNG (8 or 16 bit, with the workflow in text chunks),
scene-linear OpenEXR (half or float) and AVIF (stills or an animation).

``format`` is a dynamic combo whose options bring their own inputs (``format.bit_depth``,
``format.input_color_space``, ``format.crf``, ``format.save_mode`` → ``format.save_mode.fps``...).
Writers live in :mod:`nodeloom.ops.image_files`; files go to the output folder.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from nodeloom.node_api import Custom, Hidden, Image, Node, NodeOutput, Output, Schema, String, ValidationError, services
from nodeloom.ops import image_files, imageio

__all__ = ["FORMATS", "SaveImageAdvanced"]


def _combo(options: list[str], default: str, tip: str) -> list[Any]:
    return [options, {"default": default, "tooltip": tip}]


_ANIMATED = {"fps": ["FLOAT", {"default": 6.0, "min": 0.01, "max": 1000.0, "step": 0.01, "tooltip": "Frames per second."}],
             "loop_count": ["INT", {"default": 0, "min": 0, "max": 1000, "tooltip": "Times to loop; 0 loops forever."}]}

#: format -> the inputs it brings (the frontend's dynamic-combo shape)
FORMATS: dict[str, dict[str, Any]] = {
    "png": {"bit_depth": _combo(["8-bit", "16-bit"], "8-bit", "Bits per channel."),
            "input_color_space": _combo(["sRGB"], "sRGB", "Colour space of the input images.")},
    "exr": {"bit_depth": _combo(["16-bit float", "32-bit float"], "16-bit float", "Float precision of the file."),
            "input_color_space": _combo(["sRGB", "HDR", "linear", "linear ACEScg"], "sRGB",
                                        "sRGB is linearised; linear is written unchanged.")},
    "avif": {"bit_depth": _combo(["auto", "8-bit YUV420", "10-bit YUV420"], "auto", "Bits per channel (auto: 8 for sRGB)."),
             "input_color_space": _combo(["sRGB", "HDR", "HDR PQ"], "sRGB", "Colour space of the input images."),
             "crf": ["INT", {"default": 18, "min": 1, "max": 63, "tooltip": "Lower is better quality and bigger files."}],
             "save_mode": ["COMFY_DYNAMICCOMBO_V3", {"tooltip": "One file per image, or one animated file.", "options": [
                 {"key": "still images", "inputs": {}}, {"key": "animated", "inputs": {"required": _ANIMATED}}]}]},
}


def _unsupported(what: str, value: str) -> ValidationError:
    return ValidationError(f"`{what}` {value!r} is not supported by nodeloom yet; choose sRGB (or linear for EXR) "
                           "and 8-bit for AVIF")


def _texts(prompt: Any, extra_pnginfo: Any) -> dict[str, str]:
    if services().settings.get("disable_metadata", False):
        return {}
    texts = {"prompt": json.dumps(prompt)} if prompt is not None else {}
    texts.update({str(k): json.dumps(v) for k, v in (extra_pnginfo or {}).items()})
    return texts


def _write(fmt: str, opts: dict[str, Any], images: torch.Tensor, stem: str, folder: Any, counter: int,
           texts: dict[str, str]) -> tuple[list[str], bool]:
    """Write ``images``; returns the file names and whether they form one animation."""
    pixels = images.detach().float().cpu().numpy()
    space, depth = str(opts.get("input_color_space", "sRGB")), str(opts.get("bit_depth", ""))
    names = [f"{stem}_{counter + i:05}_.{fmt}" for i in range(len(pixels))]
    if fmt == "png":
        for frame, name in zip(pixels, names):
            if depth == "16-bit":
                image_files.save_png16(np.round(np.clip(frame, 0, 1) * 65535).astype(np.uint16), folder / name, texts)
            else:
                info = imageio.png_text_chunks()
                for key, value in texts.items():
                    info.add_text(key, value)
                imageio.save_png(imageio.tensor_to_pils(torch.from_numpy(frame[None]))[0], folder / name, info)
        return names, False
    if fmt == "exr":
        if space not in ("sRGB", "linear"):
            raise _unsupported("format.input_color_space", space)
        for frame, name in zip(pixels, names):
            linear = image_files.srgb_to_linear(frame) if space == "sRGB" else frame
            image_files.save_exr(linear, folder / name, half=depth != "32-bit float")
        return names, False
    if space != "sRGB" or depth == "10-bit YUV420":
        raise _unsupported("format.input_color_space" if space != "sRGB" else "format.bit_depth", space if space != "sRGB" else depth)
    frames = [np.round(np.clip(f, 0, 1) * 255).astype(np.uint8) for f in pixels]
    quality = int(round(100 - (int(opts.get("crf", 18)) - 1) * 100 / 62))
    if opts.get("save_mode") == "animated" and len(frames) > 1:
        image_files.save_avif(frames, folder / names[0], quality=quality, fps=float(opts.get("save_mode.fps", 6.0)),
                              loop=int(opts.get("save_mode.loop_count", 0)))
        return names[:1], True
    for frame, name in zip(frames, names):
        image_files.save_avif([frame], folder / name, quality=quality)
    return names, False


class SaveImageAdvanced(Node):
    """Save images as PNG (8/16-bit), OpenEXR (half/float, scene-linear) or AVIF (still or
    animated) in the output folder, and pass them on."""

    SCHEMA = Schema(
        "SaveImageAdvanced",
        display_name="Save Image (Advanced)",
        category="image",
        output_node=True,
        inputs=[
            Image("images", tooltip="The images to save."),
            String("filename_prefix", "ComfyUI", tooltip="File name prefix; may contain a subfolder ('sub/name')."),
            Custom("COMFY_DYNAMICCOMBO_V3", "format", tooltip="File format; each brings its own options.",
                   options=[{"key": k, "inputs": {"required": v}} for k, v in FORMATS.items()]),
        ],
        hidden={"prompt": Hidden.prompt, "extra_pnginfo": Hidden.extra_pnginfo},
        outputs=[Output("IMAGE", "images", tooltip="The input images, unchanged.")],
    )

    @classmethod
    def execute(cls, images: torch.Tensor, filename_prefix: str, format: str, prompt: Any = None,  # noqa: A002
                extra_pnginfo: Any = None, **options: Any) -> NodeOutput:
        if format not in FORMATS:
            raise ValidationError(f"`format` must be one of {list(FORMATS)}, got {format!r}")
        channels = int(images.shape[-1])
        if channels not in (1, 3, 4) or (format == "avif" and channels not in (1, 3)):
            raise ValidationError(f"`images` with {channels} channels cannot be saved as {format.upper()}")
        opts = {k.split(".", 1)[1]: v for k, v in options.items() if k.startswith("format.")}
        folder, stem, counter, subfolder = services().paths.get_save_path(
            filename_prefix, int(images.shape[2]), int(images.shape[1]), count=len(images))
        names, animated = _write(format, opts, images, stem, folder, counter, _texts(prompt, extra_pnginfo))
        ui: dict[str, Any] = {"images": [{"filename": n, "subfolder": subfolder, "type": "output"} for n in names]}
        if animated:
            ui["animated"] = (True,)
        return NodeOutput(images, ui=ui)
