"""``comfy_api.latest.ui``: what V3 nodes return as ``NodeOutput(ui=...)``.

Saved-file records (:class:`SavedResult`), image saving with ComfyUI's PNG metadata
(:class:`ImageSaveHelper`), and the preview outputs (``PreviewImage``, ``PreviewMask``,
``PreviewAudio``, ``PreviewVideo``, ``PreviewUI3D``, ``PreviewText``). Files go to the
running engine's folders through the ``folder_paths`` shim. Audio previews are written as
16-bit WAV (standard library only).
"""

from __future__ import annotations

import json
import os
import random
import string
import wave
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from nodeloom.compat.comfy import folder_paths
from nodeloom.compat.comfy.api.latest.io_base import FolderType
from nodeloom.compat.comfy.api.latest.io_node import _UIOutput
from nodeloom.compat.comfy.cli_args import args
from nodeloom.ops.imageio import png_text_chunks

__all__ = ["AudioSaveHelper", "ImageSaveHelper", "PreviewAudio", "PreviewImage", "PreviewMask", "PreviewText",
           "PreviewUI3D", "PreviewVideo", "SavedAudios", "SavedImages", "SavedResult"]


class SavedResult(dict):  # type: ignore[type-arg]
    """``{"filename", "subfolder", "type"}`` of one saved file."""

    def __init__(self, filename: str, subfolder: str, type: FolderType) -> None:  # noqa: A002
        super().__init__(filename=filename, subfolder=subfolder, type=FolderType(type).value)

    @property
    def filename(self) -> str:
        return str(self["filename"])

    @property
    def subfolder(self) -> str:
        return str(self["subfolder"])

    @property
    def type(self) -> FolderType:
        return FolderType(self["type"])


class SavedImages(_UIOutput):
    """Saved images (``animated`` marks one animated file)."""

    def __init__(self, results: list[SavedResult], is_animated: bool = False) -> None:
        self.results, self.is_animated = results, is_animated

    def as_dict(self) -> dict[str, Any]:
        return {"images": self.results, "animated": (True,)} if self.is_animated else {"images": self.results}


class SavedAudios(_UIOutput):
    """Saved audio files."""

    def __init__(self, results: list[SavedResult]) -> None:
        self.results = results

    def as_dict(self) -> dict[str, Any]:
        return {"audio": self.results}


def _folder(folder_type: FolderType) -> str:
    kind = FolderType(folder_type)
    if kind is FolderType.input:
        return folder_paths.get_input_directory()
    return folder_paths.get_output_directory() if kind is FolderType.output else folder_paths.get_temp_directory()


def _temp_prefix() -> str:
    return "ComfyUI_temp_" + "".join(random.choice(string.ascii_lowercase) for _ in range(5))


class ImageSaveHelper:
    """Save ``IMAGE`` batches as PNG (or animated PNG / WebP) with the prompt in the metadata."""

    @staticmethod
    def _convert_tensor_to_pil(image_tensor: torch.Tensor) -> PILImage.Image:
        return PILImage.fromarray(np.clip(255.0 * image_tensor.cpu().float().numpy(), 0, 255).astype(np.uint8))

    @staticmethod
    def _create_png_metadata(cls: Any) -> PngInfo | None:
        hidden = getattr(cls, "hidden", None) if cls is not None else None
        if args.disable_metadata or hidden is None:
            return None
        return png_text_chunks(hidden.prompt, hidden.extra_pnginfo)

    @staticmethod
    def _target(images: Any, filename_prefix: str, folder_type: FolderType) -> tuple[Path, str, int, str]:
        height, width = int(images[0].shape[0]), int(images[0].shape[1])
        folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, _folder(folder_type), width, height)
        return Path(folder), filename, counter, subfolder

    @staticmethod
    def save_images(images: Any, filename_prefix: str, folder_type: FolderType, cls: Any,
                    compress_level: int = 4) -> list[SavedResult]:
        """Write each image of the batch as ``<prefix>_<counter>_.png``."""
        folder, filename, counter, subfolder = ImageSaveHelper._target(images, filename_prefix, folder_type)
        metadata = ImageSaveHelper._create_png_metadata(cls)
        results = []
        for index, image in enumerate(images):
            name = f"{filename.replace('%batch_num%', str(index))}_{counter:05}_.png"
            ImageSaveHelper._convert_tensor_to_pil(image).save(folder / name, pnginfo=metadata,
                                                               compress_level=compress_level)
            results.append(SavedResult(name, subfolder, folder_type))
            counter += 1
        return results

    @staticmethod
    def get_save_images_ui(images: Any, filename_prefix: str, cls: Any, compress_level: int = 4) -> SavedImages:
        """Save to the output folder and return the UI record."""
        return SavedImages(ImageSaveHelper.save_images(images, filename_prefix, FolderType.output, cls, compress_level))

    @staticmethod
    def _save_animated(images: Any, filename_prefix: str, folder_type: FolderType, suffix: str,
                       **save_args: Any) -> SavedResult:
        folder, filename, counter, subfolder = ImageSaveHelper._target(images, filename_prefix, folder_type)
        frames = [ImageSaveHelper._convert_tensor_to_pil(img) for img in images]
        name = f"{filename}_{counter:05}_.{suffix}"
        frames[0].save(folder / name, save_all=True, append_images=frames[1:], **save_args)
        return SavedResult(name, subfolder, folder_type)

    @staticmethod
    def save_animated_png(images: Any, filename_prefix: str, folder_type: FolderType, cls: Any, fps: float,
                          compress_level: int) -> SavedResult:
        """Write the batch as one animated PNG."""
        return ImageSaveHelper._save_animated(images, filename_prefix, folder_type, "png", duration=int(1000.0 / fps),
                                              compress_level=compress_level,
                                              pnginfo=ImageSaveHelper._create_png_metadata(cls))

    @staticmethod
    def get_save_animated_png_ui(images: Any, filename_prefix: str, cls: Any, fps: float,
                                 compress_level: int) -> SavedImages:
        result = ImageSaveHelper.save_animated_png(images, filename_prefix, FolderType.output, cls, fps, compress_level)
        return SavedImages([result], is_animated=len(images) > 1)

    @staticmethod
    def save_animated_webp(images: Any, filename_prefix: str, folder_type: FolderType, cls: Any, fps: float,
                           lossless: bool, quality: int, method: int) -> SavedResult:
        """Write the batch as one animated WebP (the prompt goes into its EXIF)."""
        exif = PILImage.Exif()
        hidden = getattr(cls, "hidden", None) if cls is not None else None
        if hidden is not None and not args.disable_metadata and hidden.prompt is not None:
            exif[0x0110] = "prompt:" + json.dumps(hidden.prompt)  # ComfyUI's tag: Model
        return ImageSaveHelper._save_animated(images, filename_prefix, folder_type, "webp", duration=int(1000.0 / fps),
                                              exif=exif, lossless=lossless, quality=quality, method=method)

    @staticmethod
    def get_save_animated_webp_ui(images: Any, filename_prefix: str, cls: Any, fps: float, lossless: bool,
                                  quality: int, method: int) -> SavedImages:
        result = ImageSaveHelper.save_animated_webp(images, filename_prefix, FolderType.output, cls, fps, lossless,
                                                    quality, method)
        return SavedImages([result], is_animated=len(images) > 1)


class AudioSaveHelper:
    """Save ``AUDIO`` (``{"waveform": [B, C, T], "sample_rate"}``) as 16-bit WAV files."""

    @staticmethod
    def save_audio(audio: dict[str, Any], filename_prefix: str, folder_type: FolderType, cls: Any = None,
                   format: str = "wav", quality: str = "") -> list[SavedResult]:  # noqa: A002
        """One WAV file per batch item.

        Raises:
            ValueError: ``format`` is not "wav" (other codecs need an encoder this helper does not use).
        """
        if format != "wav":
            raise ValueError(f"`format` must be 'wav' for AudioSaveHelper, got {format!r}")
        waveform, rate = audio["waveform"], int(audio["sample_rate"])
        folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, _folder(folder_type))
        results = []
        for item in waveform.cpu().float():
            name = f"{filename}_{counter:05}_.wav"
            pcm = (item.clamp(-1, 1).T.numpy() * 32767).astype("<i2")
            with wave.open(str(Path(folder) / name), "wb") as out:
                out.setnchannels(int(item.shape[0]))
                out.setsampwidth(2)
                out.setframerate(rate)
                out.writeframes(pcm.tobytes())
            results.append(SavedResult(name, subfolder, folder_type))
            counter += 1
        return results


class PreviewImage(_UIOutput):
    """Save a batch to the temp folder and show it."""

    def __init__(self, image: Any, animated: bool = False, cls: Any = None, **kwargs: Any) -> None:
        self.values = ImageSaveHelper.save_images(image, _temp_prefix(), FolderType.temp, cls, compress_level=1)
        self.animated = animated

    def as_dict(self) -> dict[str, Any]:
        return {"images": self.values, "animated": (self.animated,)}


class PreviewMask(PreviewImage):
    """Show a ``MASK`` batch as grey images."""

    def __init__(self, mask: Any, animated: bool = False, cls: Any = None, **kwargs: Any) -> None:
        grey = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])).movedim(1, -1).expand(-1, -1, -1, 3)
        super().__init__(grey, animated, cls, **kwargs)


class PreviewAudio(_UIOutput):
    """Save ``AUDIO`` to the temp folder (WAV) and show it."""

    def __init__(self, audio: dict[str, Any], cls: Any = None, **kwargs: Any) -> None:
        self.values = AudioSaveHelper.save_audio(audio, _temp_prefix(), FolderType.temp, cls)

    def as_dict(self) -> dict[str, Any]:
        return {"audio": self.values}


class PreviewVideo(_UIOutput):
    """Show already-saved video files."""

    def __init__(self, values: list[Any], **kwargs: Any) -> None:
        self.values = values

    def as_dict(self) -> dict[str, Any]:
        return {"images": self.values, "animated": (True,)}


class PreviewUI3D(_UIOutput):
    """Show a 3D model file with its camera; ``bg_image`` (an IMAGE) is written to the temp folder
    as the viewer's background and named third (``temp/bg_<hex>.png``)."""

    def __init__(self, model_file: Any, camera_info: Any, **kwargs: Any) -> None:
        self.model_file, self.camera_info = model_file, camera_info
        self.bg_image_path = None
        bg_image = kwargs.get("bg_image")
        if bg_image is not None:
            import uuid

            from PIL import Image as PILImage

            name = f"bg_{uuid.uuid4().hex}.png"
            pixels = (bg_image[0].clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)
            PILImage.fromarray(pixels).save(os.path.join(folder_paths.get_temp_directory(), name), compress_level=1)
            self.bg_image_path = f"temp/{name}"

    def as_dict(self) -> dict[str, Any]:
        return {"result": [self.model_file, self.camera_info, self.bg_image_path]}


class PreviewText(_UIOutput):
    """Show a text value."""

    def __init__(self, value: str, **kwargs: Any) -> None:
        self.value = value

    def as_dict(self) -> dict[str, Any]:
        return {"text": (self.value,)}
