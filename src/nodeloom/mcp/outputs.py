"""Output files as MCP sees them: resource URIs, confined file lookup and size-budgeted thumbnails.

An output image ``{filename, subfolder, type}`` (ComfyUI's ui entry) maps to the URI
``nodeloom://<type>/<subfolder>/<filename>`` and back, always through
:func:`nodeloom.paths.safe_join`, so a URI can never name a file outside the output or
temp folder. Thumbnails are re-encoded (PNG when small, else JPEG at falling quality and
size) until they fit a byte budget. No MCP SDK import here.
"""

from __future__ import annotations

import io
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from nodeloom.errors import ValidationError
from nodeloom.paths import FolderPaths, safe_join

__all__ = ["Thumbnail", "file_for_uri", "image_size", "make_thumbnail", "mime_type", "output_file", "output_uri"]

SCHEME = "nodeloom://"
KINDS = ("output", "temp")


@dataclass
class Thumbnail:
    """An encoded preview of an image: bytes, MIME type and its pixel size."""

    data: bytes
    mime_type: str
    width: int
    height: int


def output_uri(ref: Mapping[str, Any]) -> str:
    """``nodeloom://<type>/<subfolder>/<filename>`` for a ui image entry."""
    kind = str(ref.get("type") or "output")
    parts = [p for p in str(ref.get("subfolder") or "").split("/") if p] + [str(ref["filename"])]
    return SCHEME + kind + "/" + "/".join(quote(p) for p in parts)


def output_file(paths: FolderPaths, ref: Mapping[str, Any]) -> Path:
    """The file behind a ui image entry, confined to its folder.

    Raises:
        ValidationError: unknown folder type or a name escaping the folder.
    """
    kind = str(ref.get("type") or "output")
    if kind not in KINDS:
        raise ValidationError(f"output type `{kind}` must be one of {list(KINDS)}", type="invalid_folder_type")
    root = paths.directory(kind)
    return safe_join(root, str(ref.get("subfolder") or ""), str(ref["filename"]))


def file_for_uri(paths: FolderPaths, kind: str, rel: str) -> Path:
    """The file named by ``nodeloom://<kind>/<rel>``, confined to that folder.

    Raises:
        ValidationError: unknown kind, an escaping path, or no such file.
    """
    if kind not in KINDS:
        raise ValidationError(f"resource folder `{kind}` must be one of {list(KINDS)}", type="invalid_folder_type")
    path = safe_join(paths.directory(kind), unquote(rel))
    if not path.is_file():
        raise ValidationError(f"`{kind}/{rel}` does not exist", type="not_found")
    return path


def mime_type(name: str | Path) -> str:
    """The MIME type guessed from a file name (``application/octet-stream`` when unknown)."""
    return mimetypes.guess_type(Path(name).name)[0] or "application/octet-stream"


def image_size(paths: FolderPaths, ref: Mapping[str, Any]) -> tuple[int, int] | None:
    """``(width, height)`` of an output image (header only), or None when unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(output_file(paths, ref)) as im:
            return im.size
    except (OSError, ValidationError, UnidentifiedImageError, KeyError):
        return None


def make_thumbnail(path: Path, *, max_side: int = 512, budget_kb: int = 48) -> Thumbnail:
    """Encode a preview of the image at ``path`` that fits ``budget_kb`` kilobytes.

    Args:
        path: an image file Pillow can read.
        max_side: the longest side of the preview, in pixels.
        budget_kb: the byte budget (kB = 1024 bytes).

    Returns:
        A :class:`Thumbnail` (PNG when the lossless preview fits, else JPEG).

    Raises:
        ValidationError: ``max_side`` or ``budget_kb`` < 1, or the file is not an image.
    """
    from PIL import Image, UnidentifiedImageError

    if max_side < 1 or budget_kb < 1:
        raise ValidationError(f"thumbnail `max_side` and `budget_kb` must be ≥ 1, got {max_side} and {budget_kb}")
    budget = budget_kb * 1024
    try:
        with Image.open(path) as src:
            src.load()
            im = src.convert("RGBA" if src.mode in ("RGBA", "LA", "P") else "RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise ValidationError(f"`{path.name}` is not a readable image: {exc}", type="invalid_image") from exc
    im.thumbnail((max_side, max_side))
    png = _encode(im, "PNG")
    if len(png) <= budget:
        return Thumbnail(png, "image/png", *im.size)
    rgb = im.convert("RGB")
    while True:
        for quality in (85, 70, 55, 40, 25):
            jpg = _encode(rgb, "JPEG", quality=quality)
            if len(jpg) <= budget:
                return Thumbnail(jpg, "image/jpeg", *rgb.size)
        if max(rgb.size) <= 16:
            return Thumbnail(jpg, "image/jpeg", *rgb.size)
        rgb = rgb.resize((max(1, rgb.width * 3 // 4), max(1, rgb.height * 3 // 4)))


def _encode(im: Any, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, optimize=True, **kw)
    return buf.getvalue()
