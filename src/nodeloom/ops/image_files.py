"""Writers for the image files ComfyUI's "Save Image (Advanced)" makes: 16-bit PNG with text
chunks (Pillow writes 8-bit RGB only), scene-linear OpenEXR through OpenCV, and AVIF through
Pillow; plus the sRGB transfer function. Arrays in, files out; no nodes, no engine."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = ["save_avif", "save_exr", "save_png16", "srgb_to_linear"]

_PNG_COLOR = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (grey, grey+alpha, RGB, RGBA)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def save_png16(pixels: np.ndarray, path: str | os.PathLike[str], texts: Mapping[str, str] | None = None) -> Path:
    """Write ``pixels`` (uint16, ``[H, W]`` or ``[H, W, C]`` with C in 1..4) as a 16-bit PNG with
    ``texts`` as tEXt chunks.

    Raises:
        ValueError: not uint16, or an unsupported channel count.
    """
    if pixels.dtype != np.uint16:
        raise ValueError(f"a 16-bit PNG needs uint16 pixels, got {pixels.dtype}")
    array = pixels[..., None] if pixels.ndim == 2 else pixels
    height, width, channels = array.shape
    if channels not in _PNG_COLOR:
        raise ValueError(f"a PNG holds 1 to 4 channels, got {channels}")
    rows = array.astype(">u2").reshape(height, width * channels).tobytes()
    stride = width * channels * 2
    raw = b"".join(b"\x00" + rows[y * stride:(y + 1) * stride] for y in range(height))
    out = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, _PNG_COLOR[channels], 0, 0, 0))]
    for key, value in (texts or {}).items():
        out.append(_chunk(b"tEXt", key.encode("latin-1") + b"\x00" + value.encode("latin-1", "replace")))
    out += [_chunk(b"IDAT", zlib.compress(raw, 6)), _chunk(b"IEND", b"")]
    target = Path(path)
    target.write_bytes(b"".join(out))
    return target


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """The sRGB EOTF: encoded 0..1 values to linear light."""
    v = np.clip(values, 0.0, 1.0)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def save_exr(pixels: np.ndarray, path: str | os.PathLike[str], *, half: bool) -> Path:
    """Write float ``pixels`` (``[H, W, C]``, RGB order, C in 1, 3, 4) as OpenEXR (half or 32-bit float).

    Raises:
        ValueError: an unsupported channel count.
        OSError: OpenCV could not write the file (its OpenEXR codec is missing or off).
    """
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # OpenCV reads it when it first writes an EXR
    import cv2

    channels = pixels.shape[-1] if pixels.ndim == 3 else 1
    if channels not in (1, 3, 4):
        raise ValueError(f"an EXR is written from 1, 3 or 4 channels, got {channels}")
    data = pixels.astype(np.float32)
    if channels == 3:
        data = data[..., ::-1]
    elif channels == 4:
        data = data[..., [2, 1, 0, 3]]
    kind = cv2.IMWRITE_EXR_TYPE_HALF if half else cv2.IMWRITE_EXR_TYPE_FLOAT
    target = Path(path)
    if not cv2.imwrite(str(target), np.ascontiguousarray(data), [cv2.IMWRITE_EXR_TYPE, kind]):
        raise OSError(f"OpenCV could not write the EXR file {target}")
    return target


def save_avif(frames: list[np.ndarray], path: str | os.PathLike[str], *, quality: int, fps: float | None = None,
              loop: int = 0) -> Path:
    """Write 8-bit frames (``[H, W, C]`` uint8, C in 1 or 3) as AVIF: one still, or an animation
    when ``fps`` is given.

    Raises:
        OSError: Pillow was built without AVIF support.
    """
    from PIL import Image, features

    if not features.check("avif"):
        raise OSError("this Pillow has no AVIF encoder (pip install 'pillow>=11.3')")
    images = [Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f) for f in frames]
    target = Path(path)
    extra = {"save_all": True, "append_images": images[1:], "duration": round(1000 / fps), "loop": loop} if fps else {}
    images[0].save(target, format="AVIF", quality=quality, **extra)
    return target
