"""Batch sources as a ``torch.utils.data.Dataset``: image/video folders or globs, CSV/JSONL rows, seeds.

:func:`open_source` lists the items of a ``--input`` spec (cheap: no pixel decoding);
:class:`BatchDataset` decodes one item per ``__getitem__`` inside DataLoader workers (PIL with
draft-mode JPEG decoding when downscaling, OpenCV for video frames and as a fallback). A file
that cannot be read comes back as a failed item with a reason; a worker never raises for it.
No engine, journal or Ray here.
"""

from __future__ import annotations

import csv
import glob
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from nodeloom.errors import ValidationError, require

__all__ = ["IMAGE_EXTS", "VIDEO_EXTS", "BatchDataset", "DecodeOptions", "ItemRef", "open_source", "parse_size"]

IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
VIDEO_EXTS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"})
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class ItemRef:
    """One item of a source, before decoding.

    Attributes:
        index: position in the source's fixed order (the journal's key).
        id: stable, unique name (relative path, ``path#frame``, ``file:line``, ``seed:N``).
        kind: ``image`` | ``frame`` | ``row`` | ``seed``.
        path: the file to decode (image and frame items).
        frame: the frame number of a video frame item.
        row: the column values of a row item, or ``{"seed": N}``.
        error: a reason known at listing time (an unparsable row) — the item fails.
    """

    index: int
    id: str
    kind: str
    path: str | None = None
    frame: int | None = None
    row: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class DecodeOptions:
    """How image pixels are decoded.

    Attributes:
        max_side: shrink so that the longer side is at most this (None: keep).
        size: ``(width, height)`` to scale to (cover, then centre crop); wins over ``max_side``.
    """

    max_side: int | None = None
    size: tuple[int, int] | None = None

    def target(self, width: int, height: int) -> tuple[int, int] | None:
        """The output size for a ``width``×``height`` source, or None to keep it."""
        if self.size is not None:
            return self.size
        if self.max_side is not None and max(width, height) > self.max_side:
            scale = self.max_side / max(width, height)
            return max(1, round(width * scale)), max(1, round(height * scale))
        return None


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` → ``(W, H)``.

    Raises:
        ValidationError: not two positive integers joined by ``x``.
    """
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) < 1 or int(h) < 1:
        raise ValidationError(f"`--resize` must look like WIDTHxHEIGHT (e.g. 256x256), got {text!r}")
    return int(w), int(h)


# --------------------------------------------------------------------------- listing


def _media_refs(files: list[Path], root: Path | None, frame_step: int) -> list[ItemRef]:
    refs: list[ItemRef] = []
    for path in files:
        rel = path.relative_to(root).as_posix() if root is not None else path.name
        if path.suffix.lower() in VIDEO_EXTS:
            count, error = _frame_count(path)
            if error is not None:
                refs.append(ItemRef(len(refs), rel, "frame", str(path), 0, error=error))
            for frame in range(0, count, frame_step):
                refs.append(ItemRef(len(refs), f"{rel}#{frame:06d}", "frame", str(path), frame))
        else:
            refs.append(ItemRef(len(refs), rel, "image", str(path)))
    return refs


def _frame_count(path: Path) -> tuple[int, str | None]:
    cv2 = require("cv2", "batch")

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return 0, f"cannot open video `{path.name}`"
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        return (count, None) if count > 0 else (0, f"video `{path.name}` reports no frames")
    finally:
        cap.release()


def _rows(path: Path) -> list[ItemRef]:
    refs: list[ItemRef] = []
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            for line_no, row in enumerate(csv.DictReader(fh), start=2):
                refs.append(ItemRef(len(refs), f"{path.name}:{line_no}", "row", row=dict(row)))
        return refs
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            item_id = f"{path.name}:{line_no}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                refs.append(ItemRef(len(refs), item_id, "row", error=f"invalid JSON: {exc.msg}"))
                continue
            if not isinstance(row, dict):
                refs.append(ItemRef(len(refs), item_id, "row", error=f"a row must be a JSON object, got {type(row).__name__}"))
                continue
            refs.append(ItemRef(len(refs), item_id, "row", row=row))
    return refs


def _seeds(spec: str) -> list[ItemRef]:
    parts = spec.split(":")[1:]
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) not in (1, 2, 3) or (len(numbers) == 3 and numbers[2] == 0):
        raise ValidationError(f"`--input {spec}`: a seed range is seeds:END, seeds:START:END or seeds:START:END:STEP")
    return [ItemRef(i, f"seed:{s}", "seed", row={"seed": s}) for i, s in enumerate(range(*numbers))]


def _with_images(refs: list[ItemRef], column: str, folder: Path) -> list[ItemRef]:
    """Rows whose ``column`` names an image file (relative to the rows file's folder) carry that image."""
    out = []
    for ref in refs:
        if ref.error is not None:
            out.append(ref)
        elif not str(ref.row.get(column) or "").strip():
            out.append(ItemRef(ref.index, ref.id, "row", row=ref.row, error=f"the row has no `{column}` value"))
        else:
            out.append(ItemRef(ref.index, ref.id, "row", path=str(folder / str(ref.row[column]).strip()), row=ref.row))
    return out


def open_source(spec: str, *, frame_step: int = 1, image_column: str | None = None) -> list[ItemRef]:
    """List the items of a source in a fixed order.

    Args:
        spec: a folder (its images and videos, recursively), a glob pattern (every match;
            files of the wrong type become failed items), one image or video file, a
            ``.csv`` / ``.jsonl`` file (one item per row), or ``seeds:[START:]END[:STEP]``.
        frame_step: keep every n-th frame of videos.
        image_column: for rows, the column holding an image path (relative to the rows
            file's folder); the row's item then carries that image too.

    Returns:
        The items, ``index`` = position.

    Raises:
        ValidationError: the spec names nothing, or a bad ``frame_step``.
    """
    if frame_step < 1:
        raise ValidationError(f"`frame_step` must be ≥ 1, got {frame_step}")
    if spec.startswith("seeds:"):
        return _seeds(spec)
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        return _media_refs(files, path, frame_step)
    if _GLOB_CHARS & set(spec):
        matches = sorted(Path(m) for m in glob.glob(spec, recursive=True) if os.path.isfile(m))
        if not matches:
            raise ValidationError(f"`--input {spec}` matches no file")
        root = Path(os.path.commonpath([str(m.parent) for m in matches]))
        return _media_refs(matches, root, frame_step)
    if path.is_file():
        if path.suffix.lower() in (".csv", ".jsonl", ".ndjson"):
            return _with_images(_rows(path), image_column, path.parent) if image_column else _rows(path)
        return _media_refs([path], path.parent, frame_step)
    raise ValidationError(f"`--input {spec}` is not a folder, file, glob or seeds:START:END range")


# --------------------------------------------------------------------------- decoding


def _fit(img: Any, target: tuple[int, int]) -> Any:
    """Scale a PIL image to cover ``target``, then centre-crop to it exactly."""
    from PIL import Image

    tw, th = target
    scale = max(tw / img.width, th / img.height)
    w, h = max(tw, math.ceil(img.width * scale)), max(th, math.ceil(img.height * scale))
    if (w, h) != img.size:
        img = img.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=2.0)
    left, top = (w - tw) // 2, (h - th) // 2
    return img.crop((left, top, left + tw, top + th)) if (w, h) != (tw, th) else img


def _decode_pil(path: str, options: DecodeOptions) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        target = options.target(img.width, img.height)
        if target is not None and img.format == "JPEG":
            img.draft("RGB", target)  # let libjpeg decode at 1/2, 1/4 or 1/8 scale
        rgb = img.convert("RGB")
    if target is not None:
        rgb = _fit(rgb, target) if options.size is not None else rgb.resize(target, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.array(rgb, dtype=np.uint8)  # writable: tensors share it


def _decode_cv2(path: str, options: DecodeOptions) -> np.ndarray:
    cv2 = require("cv2", "batch")

    data = np.fromfile(path, dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise ValueError("not a readable image")
    return _resize_array(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), options)


def _resize_array(rgb: np.ndarray, options: DecodeOptions) -> np.ndarray:
    from PIL import Image

    target = options.target(rgb.shape[1], rgb.shape[0])
    if target is None:
        return rgb
    img = Image.fromarray(rgb)
    img = _fit(img, target) if options.size is not None else img.resize(target, Image.Resampling.BILINEAR)
    return np.array(img, dtype=np.uint8)


class BatchDataset(Dataset):
    """Decode items of a source; failures come back as ``{"ok": False, "reason": ...}``.

    Each item is a dict ``{"index", "id", "ok", "fields"}`` where ``fields`` holds
    ``image`` (uint8 ``[H,W,3]`` tensor), ``path``, ``name``, ``frame`` for media items, the
    columns of a row, or ``seed``; plus ``id`` and ``index`` always.

    Args:
        refs: the items (from :func:`open_source`).
        decode: pixel decoding options.
    """

    def __init__(self, refs: list[ItemRef], decode: DecodeOptions | None = None) -> None:
        self.refs = list(refs)
        self.decode = decode or DecodeOptions()
        self._captures: dict[str, list[Any]] = {}

    def __len__(self) -> int:
        return len(self.refs)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_captures"] = {}  # open videos stay in the process that opened them
        return state

    def __getitem__(self, index: int) -> dict[str, Any]:
        ref = self.refs[index]
        base = {"index": ref.index, "id": ref.id}
        if ref.error is not None:
            return {**base, "ok": False, "reason": ref.error}
        fields: dict[str, Any] = {"id": ref.id, "index": ref.index}
        try:
            if ref.kind in ("row", "seed"):
                fields.update(ref.row)
                if ref.path is not None:  # a row with an image column; its own columns keep their values
                    fields.update({k: v for k, v in self._image_fields(ref).items() if k == "image" or k not in ref.row})
            elif ref.kind == "frame":
                fields.update(self._frame_fields(ref))
            else:
                fields.update(self._image_fields(ref))
        except Exception as exc:  # noqa: BLE001 - any decoder failure is this item's failure
            return {**base, "ok": False, "reason": _reason(ref, exc)}
        return {**base, "ok": True, "fields": fields}

    def _image_fields(self, ref: ItemRef) -> dict[str, Any]:
        assert ref.path is not None
        from PIL import UnidentifiedImageError

        try:
            pixels = _decode_pil(ref.path, self.decode)
        except UnidentifiedImageError as exc:
            try:  # a format PIL lacks; a damaged file of a known format fails above
                pixels = _decode_cv2(ref.path, self.decode)
            except ValueError:
                raise ValueError(f"not a readable image ({exc})") from None
        return {"image": torch.from_numpy(np.ascontiguousarray(pixels)), "path": ref.path, "name": Path(ref.path).stem}

    def _frame_fields(self, ref: ItemRef) -> dict[str, Any]:
        cv2 = require("cv2", "batch")

        assert ref.path is not None and ref.frame is not None
        entry = self._captures.get(ref.path)
        if entry is None:
            for old in self._captures.values():
                old[0].release()
            self._captures = {ref.path: [cv2.VideoCapture(ref.path), 0]}
            entry = self._captures[ref.path]
        cap, position = entry
        if position != ref.frame:  # sequential reads skip the (slow) seek
            cap.set(cv2.CAP_PROP_POS_FRAMES, ref.frame)
        ok, bgr = cap.read()
        if not ok or bgr is None:
            entry[1] = -1
            raise ValueError(f"cannot decode frame {ref.frame}")
        entry[1] = ref.frame + 1
        rgb = _resize_array(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), self.decode)
        return {"image": torch.from_numpy(np.ascontiguousarray(rgb)), "path": ref.path,
                "name": f"{Path(ref.path).stem}_{ref.frame:06d}", "frame": ref.frame}


def _reason(ref: ItemRef, exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"file not found: {ref.path}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {ref.path}"
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if ref.kind != "frame" else text
