"""Upload routes: ``/upload/image`` and ``/upload/mask`` with ComfyUI's naming rules.

An upload with the name of an existing file is either the same content (the existing name is
answered, nothing is written) or gets ``"name (1).ext"``, ``"name (2).ext"``, ... unless
``overwrite`` is true. Names are confined to the chosen folder; the body size is bounded by
the server's ``max_upload_size``; uploaded bytes are only ever stored, never executed, and
written atomically with the same file mode as outputs. A mask upload decodes two images, each
refused beyond the server's ``max_pixels`` before decoding.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

from aiohttp import web

from nodeloom.errors import ValidationError
from nodeloom.paths import safe_join, write_atomic
from nodeloom.server.routes.files import FOLDER_TYPES, resolve_user_file
from nodeloom.server.security import error_response
from nodeloom.server.state import get_state

__all__ = ["ROUTES", "choose_name"]

ROUTES = web.RouteTableDef()


def choose_name(folder: Path, filename: str, data: bytes, overwrite: bool) -> tuple[str, bool]:
    """Pick the stored name for an upload.

    Returns:
        ``(name, duplicate)``; ``duplicate`` means a file with the same bytes already has that name.
    """
    if overwrite:
        return filename, False
    stem, ext = os.path.splitext(filename)
    name, i = filename, 1
    digest = hashlib.sha256(data).digest()
    while (folder / name).exists():
        if (folder / name).is_file() and hashlib.sha256((folder / name).read_bytes()).digest() == digest:
            return name, True
        name = f"{stem} ({i}){ext}"
        i += 1
    return name, False


def _masked_png(original: Path, mask_bytes: bytes, max_pixels: int) -> bytes:
    """The original image with its alpha replaced by the uploaded mask's alpha (PNG).

    Raises:
        ValidationError: either image is larger than ``max_pixels`` (checked before decoding),
            or their sizes differ.
    """
    from PIL.PngImagePlugin import PngInfo

    from nodeloom.ops.imageio import open_image

    with open_image(original, max_pixels, name=original.name) as src:
        info = PngInfo()
        for key, value in getattr(src, "text", {}).items():
            info.add_text(key, value)
        rgba = src.convert("RGBA")
    with open_image(io.BytesIO(mask_bytes), max_pixels, name="the mask") as mask:
        alpha = mask.convert("RGBA").getchannel("A")
    if alpha.size != rgba.size:
        raise ValidationError(f"the mask is {alpha.size[0]}x{alpha.size[1]} but the image is "
                              f"{rgba.size[0]}x{rgba.size[1]}", type="invalid_mask")
    rgba.putalpha(alpha)
    buf = io.BytesIO()
    rgba.save(buf, format="PNG", compress_level=4, pnginfo=info)
    return buf.getvalue()


async def _form(request: web.Request) -> tuple[dict[str, Any], bytes, str]:
    post = await request.post()
    image = post.get("image")
    if image is None or not hasattr(image, "file"):
        raise ValidationError("the multipart field `image` must be a file", type="invalid_upload")
    filename = getattr(image, "filename", "") or ""
    if not filename or filename in (".", "..") or "/" in filename or "\\" in filename or "\x00" in filename:
        raise ValidationError(f"upload file name {filename!r} is not a plain file name", type="invalid_filename")
    return {k: v for k, v in post.items() if isinstance(v, str)}, image.file.read(), filename


async def _upload(request: web.Request, *, mask: bool) -> web.Response:
    state = get_state(request)
    fields, data, filename = await _form(request)
    kind = fields.get("type") or "input"
    if kind not in FOLDER_TYPES:
        return error_response(400, "invalid_folder_type", f"`type` must be one of {list(FOLDER_TYPES)}, got {kind!r}")
    subfolder = fields.get("subfolder", "")
    folder = safe_join(state.paths.directory(kind), subfolder)
    safe_join(folder, filename)  # refuse names that would escape before touching the disk
    if mask:
        ref = fields.get("original_ref")
        try:
            ref_data = json.loads(ref) if ref else None
        except json.JSONDecodeError as exc:
            raise ValidationError(f"`original_ref` must be JSON: {exc}", type="invalid_upload") from exc
        if not isinstance(ref_data, dict) or not ref_data.get("filename"):
            raise ValidationError("`original_ref` must be an object with a `filename`", type="invalid_upload")
        original = resolve_user_file(state.paths, str(ref_data["filename"]), ref_data.get("type") or "output",
                                     str(ref_data.get("subfolder", "")))
        if not original.is_file():
            return error_response(404, "not_found", f"the original image `{ref_data['filename']}` does not exist")
        try:
            data = await asyncio.get_running_loop().run_in_executor(
                None, _masked_png, original, data, state.config.limits.max_pixels)
        except ValidationError:
            raise
        except (OSError, ValueError) as exc:  # not an image, truncated, unsupported mode
            raise ValidationError(f"the mask or its original image cannot be read: {exc}", type="invalid_mask") from exc
    overwrite = fields.get("overwrite", "").lower() in ("true", "1")

    def store() -> str:
        folder.mkdir(parents=True, exist_ok=True)
        name, duplicate = choose_name(folder, filename, data, overwrite)
        if not duplicate:
            write_atomic(folder / name, data)
        return name

    name = await asyncio.get_running_loop().run_in_executor(None, store)
    return web.json_response({"name": name, "subfolder": subfolder, "type": kind})


@ROUTES.post("/upload/image")
async def upload_image(request: web.Request) -> web.Response:
    return await _upload(request, mask=False)


@ROUTES.post("/upload/mask")
async def upload_mask(request: web.Request) -> web.Response:
    return await _upload(request, mask=True)
