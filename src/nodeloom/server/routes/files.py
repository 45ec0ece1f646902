"""File viewing routes: ``/view``, ``/viewvideo`` and ``/view_metadata/{folder}``.

Every name a client gives is joined with :func:`nodeloom.paths.safe_join` under the input,
output or temp folder, so ``..``, absolute paths and escaping symlinks are refused (400).
Files that a browser could run (HTML, JS, CSS, SVG) are sent as downloads, never rendered.
Images re-encoded for ``preview``/``channel`` are refused (400) beyond the server's
``max_pixels`` before any pixel is decoded.
"""

from __future__ import annotations

import asyncio
import io
import json
import mimetypes
import struct
from pathlib import Path

from aiohttp import web

from nodeloom.errors import ValidationError
from nodeloom.paths import safe_join
from nodeloom.server.security import error_response
from nodeloom.server.state import get_state

__all__ = ["ROUTES", "resolve_user_file", "split_annotation"]

ROUTES = web.RouteTableDef()

FOLDER_TYPES = ("output", "input", "temp")
_ACTIVE_TYPES = {"text/html", "application/xhtml+xml", "text/javascript", "application/javascript", "text/css",
                 "image/svg+xml", "text/xml", "application/xml"}


def split_annotation(name: str) -> tuple[str, str | None]:
    """Split ComfyUI's ``"name.png [output]"`` annotation into ``(name, folder_type)``."""
    for kind in FOLDER_TYPES:
        suffix = f" [{kind}]"
        if name.endswith(suffix):
            return name[: -len(suffix)], kind
    return name, None


def resolve_user_file(paths: object, filename: str, kind: str | None, subfolder: str) -> Path:
    """The file a ``(filename, type, subfolder)`` triple names, confined to its folder.

    Raises:
        ValidationError: empty name, unknown type, or a path that escapes the folder.
    """
    name, annotated = split_annotation(filename)
    if not name:
        raise ValidationError("`filename` must not be empty", type="invalid_filename")
    kind = annotated or kind or "output"
    if kind not in FOLDER_TYPES:
        raise ValidationError(f"`type` must be one of {list(FOLDER_TYPES)}, got {kind!r}", type="invalid_folder_type")
    root = paths.directory(kind)  # type: ignore[attr-defined]
    return safe_join(root, subfolder, name)


def _headers(name: str) -> dict[str, str]:
    safe = name.replace('"', "").replace("\r", "").replace("\n", "")
    return {"Content-Disposition": f'filename="{safe}"', "X-Content-Type-Options": "nosniff"}


def _render(path: Path, preview: str | None, channel: str, max_pixels: int) -> tuple[bytes, str] | None:
    """Re-encode an image for ``preview``/``channel`` ("" = not given); None means "send the file as it is".

    Raises:
        ValidationError: the image is larger than ``max_pixels`` (checked before decoding).
    """
    from PIL import Image

    from nodeloom.ops.imageio import open_image

    if preview is None and channel in ("", "rgba"):
        return None
    with open_image(path, max_pixels, name=path.name) as img:
        if preview is not None:
            parts = preview.split(";")
            fmt = parts[0] if parts[0] in ("webp", "jpeg") and "a" not in channel else "webp"
            quality = int(parts[-1]) if parts[-1].isdigit() else 90
            out = img.convert("RGB") if fmt == "jpeg" or channel == "rgb" else img
            buf = io.BytesIO()
            out.save(buf, format=fmt, quality=quality)
            return buf.getvalue(), f"image/{fmt}"
        if channel == "rgb":
            out = img.convert("RGB")
        else:  # "a": the alpha channel as the alpha of an otherwise empty RGBA image
            alpha = img.getchannel("A") if img.mode == "RGBA" else Image.new("L", img.size, 255)
            out = Image.new("RGBA", img.size)
            out.putalpha(alpha)
        buf = io.BytesIO()
        out.save(buf, format="PNG")
        return buf.getvalue(), "image/png"


async def _view(request: web.Request) -> web.StreamResponse:
    state = get_state(request)
    q = request.query
    if "filename" not in q:
        return error_response(400, "invalid_filename", "`filename` query parameter is required")
    path = resolve_user_file(state.paths, q["filename"], q.get("type"), q.get("subfolder", ""))
    if not path.is_file():
        return error_response(404, "not_found", f"`{q['filename']}` does not exist")
    channel = q.get("channel", "")
    if channel not in ("", "rgba", "rgb", "a"):
        return error_response(400, "invalid_channel", f"`channel` must be rgba, rgb or a, got {channel!r}")
    preview = q.get("preview")
    if preview is not None or channel in ("rgb", "a"):
        try:
            rendered = await asyncio.get_running_loop().run_in_executor(
                None, _render, path, preview, channel, state.config.limits.max_pixels)
        except ValidationError:
            raise
        except (OSError, ValueError) as exc:
            return error_response(400, "not_an_image", f"`{path.name}` cannot be read as an image: {exc}")
        if rendered is not None:
            body, ctype = rendered
            return web.Response(body=body, content_type=ctype, headers=_headers(path.name))
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if ctype in _ACTIVE_TYPES:
        ctype = "application/octet-stream"
    headers = _headers(path.name)
    headers["Content-Type"] = ctype
    return web.FileResponse(path, headers=headers)


@ROUTES.get("/view")
async def view(request: web.Request) -> web.StreamResponse:
    return await _view(request)


@ROUTES.get("/viewvideo")
async def view_video(request: web.Request) -> web.StreamResponse:
    return await _view(request)


@ROUTES.get("/view_metadata/{folder}")
async def view_metadata(request: web.Request) -> web.Response:
    """The ``__metadata__`` of a ``.safetensors`` model file (header only, at most 1 MiB)."""
    state = get_state(request)
    name = request.query.get("filename", "")
    if not name.endswith(".safetensors"):
        return error_response(404, "not_found", "`filename` must name a .safetensors file")
    path = state.paths.get_full_path(request.match_info["folder"], name)
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            return error_response(404, "not_found", f"`{name}` has no safetensors header")
        (size,) = struct.unpack("<Q", raw)
        if size > 1024 * 1024:
            return error_response(404, "not_found", f"the header of `{name}` is larger than 1 MiB")
        header = json.loads(f.read(size))
    if "__metadata__" not in header:
        return error_response(404, "not_found", f"`{name}` has no metadata")
    return web.json_response(header["__metadata__"])
