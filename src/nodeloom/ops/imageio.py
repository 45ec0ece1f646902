"""Conversions between IMAGE/MASK tensors, PIL images and PNG files with text chunks.

IMAGE is ``float32 [B,H,W,C]`` in 0..1 (RGB); MASK is ``float32 [B,H,W]`` in 0..1. These
helpers are what load/save/preview nodes of every pack use; they never mutate their inputs.
:func:`open_image` refuses an image larger than a pixel limit from its header, before any pixel
is decoded (a 140 KB PNG may claim 12000×12000); :func:`save_png` writes atomically with the
same file mode as any other file the process creates.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, ImageSequence
from PIL.PngImagePlugin import PngInfo

from nodeloom.errors import ValidationError
from nodeloom.paths import write_atomic

__all__ = [
    "file_sha256",
    "image_to_pil",
    "load_image_file",
    "open_image",
    "pil_to_image",
    "pil_to_mask",
    "png_text_chunks",
    "save_png",
    "tensor_to_pils",
]


def tensor_to_pils(image: torch.Tensor) -> list[Image.Image]:
    """An IMAGE ``[B,H,W,C]`` (or one ``[H,W,C]``) as 8-bit PIL images (RGB, RGBA or L).

    Values are scaled by 255 and truncated, as ComfyUI's save nodes do.

    Raises:
        ValueError: the tensor is not 3- or 4-dimensional with 1, 3 or 4 channels.
    """
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"`image` must be [B,H,W,C] with C in (1, 3, 4), got shape {tuple(image.shape)}")
    # truncate like ComfyUI (not round), so saved files match its byte for byte
    arrays = np.clip(image.detach().float().cpu().numpy() * 255.0, 0, 255).astype(np.uint8)
    out = []
    for arr in arrays:
        out.append(Image.fromarray(arr[..., 0], "L") if arr.shape[-1] == 1 else Image.fromarray(arr))
    return out


def image_to_pil(image: torch.Tensor, index: int = 0) -> Image.Image:
    """One item of an IMAGE batch as a PIL image."""
    return tensor_to_pils(image[index : index + 1] if image.ndim == 4 else image)[0]


def pil_to_image(img: Image.Image) -> torch.Tensor:
    """A PIL image as an RGB IMAGE ``[1,H,W,3]`` (16-bit grey images are scaled to 0..1)."""
    if img.mode == "I":
        arr = np.asarray(img, dtype=np.float32) / 65535.0
        arr = np.repeat(arr[..., None], 3, axis=-1)
        return torch.from_numpy(np.clip(arr, 0, 1))[None]
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr.copy())[None]


def pil_to_mask(img: Image.Image) -> torch.Tensor | None:
    """ComfyUI's mask of a PIL image: ``1 - alpha`` as ``[1,H,W]``, or None without alpha."""
    if "A" in img.getbands():
        alpha = np.asarray(img.getchannel("A"), dtype=np.float32) / 255.0
    elif img.mode == "P" and "transparency" in img.info:
        alpha = np.asarray(img.convert("RGBA").getchannel("A"), dtype=np.float32) / 255.0
    else:
        return None
    return (1.0 - torch.from_numpy(alpha.copy()))[None]


def open_image(source: str | os.PathLike[str] | Any, max_pixels: int | None, *, name: str = "image") -> Image.Image:
    """Open an image lazily and refuse it when its header claims more than ``max_pixels``.

    Args:
        source: a path or a binary file object.
        max_pixels: largest ``width × height`` accepted (``None`` or 0: Pillow's own bomb guard).
        name: how the image is named in the error.

    Raises:
        ValidationError: the image is larger than ``max_pixels``, or Pillow calls it a
            decompression bomb.
        OSError / PIL.UnidentifiedImageError: not an image.
    """
    try:
        img = Image.open(source)
    except Image.DecompressionBombError as exc:
        raise ValidationError(f"`{name}` is too large to decode: {exc}", type="image_too_large") from exc
    width, height = img.size
    if max_pixels and width * height > max_pixels:
        img.close()
        raise ValidationError(
            f"`{name}` is {width}×{height} = {width * height} pixels; at most {max_pixels} are allowed",
            type="image_too_large", extra_info={"width": width, "height": height, "max_pixels": max_pixels})
    return img


def load_image_file(path: str | os.PathLike[str], max_pixels: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Load every frame of an image file that has the first frame's size.

    Args:
        path: the file.
        max_pixels: refuse a file whose frames are larger (checked before decoding; see
            :func:`open_image`).

    Returns:
        ``(IMAGE [B,H,W,3], MASK [B,H,W])``; frames without alpha get a zero mask of the
        image size.

    Raises:
        FileNotFoundError / PIL.UnidentifiedImageError: unreadable file.
        ValidationError: larger than ``max_pixels``.
    """
    images: list[torch.Tensor] = []
    masks: list[torch.Tensor] = []
    with open_image(path, max_pixels, name=Path(path).name) as img:
        for frame in ImageSequence.Iterator(img):
            frame = ImageOps.exif_transpose(frame)
            image = pil_to_image(frame)
            if images and image.shape[1:3] != images[0].shape[1:3]:
                continue
            mask = pil_to_mask(frame)
            images.append(image)
            masks.append(mask if mask is not None else torch.zeros(image.shape[:3], dtype=torch.float32))
            if img.format == "MPO":  # extra MPO frames are depth maps / previews, not a batch
                break
    return torch.cat(images, dim=0), torch.cat(masks, dim=0)


def png_text_chunks(prompt: Any = None, extra_pnginfo: Mapping[str, Any] | None = None) -> PngInfo:
    """PNG metadata as ComfyUI writes it: ``prompt`` and each ``extra_pnginfo`` key as JSON text."""
    info = PngInfo()
    if prompt is not None:
        info.add_text("prompt", json.dumps(prompt))
    for key, value in (extra_pnginfo or {}).items():
        info.add_text(str(key), json.dumps(value))
    return info


def save_png(img: Image.Image, path: str | os.PathLike[str], pnginfo: PngInfo | None = None, compress_level: int = 4) -> Path:
    """Write ``img`` as PNG with optional text chunks, atomically; returns the path.

    The file appears complete under its name or not at all (a full disk leaves no 0-byte file).
    """
    target = Path(path)
    write_atomic(target, lambda fh: img.save(fh, format="PNG", pnginfo=pnginfo, compress_level=compress_level))
    return target


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
