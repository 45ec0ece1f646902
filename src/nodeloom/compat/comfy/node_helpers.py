"""``node_helpers``: the small helpers packs call on CONDITIONING values and images.

CONDITIONING is nodeloom's list of ``[tensor, options]`` pairs (ComfyUI's layout); these
helpers return new lists and never edit their input. ``pillow`` opens images with the
truncated-file fallback packs rely on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from PIL import ImageFile, UnidentifiedImageError

__all__ = ["conditioning_set_values", "hasher", "image_alpha_fix", "pillow", "string_to_torch_dtype"]

T = TypeVar("T")


def conditioning_set_values(conditioning: list[Any], values: dict[str, Any] | None = None, append: bool = False) -> list[Any]:
    """A copy of ``conditioning`` with ``values`` set in every entry's options.

    Args:
        conditioning: a CONDITIONING list.
        values: option name → value.
        append: extend an existing list option instead of replacing it.

    Raises:
        TypeError: ``conditioning`` is not a list of ``[tensor, dict]`` pairs.
    """
    out = []
    for entry in conditioning:
        if not isinstance(entry, (list, tuple)) or len(entry) != 2 or not isinstance(entry[1], dict):
            raise TypeError(f"`conditioning` must be a list of [tensor, dict] pairs, got an entry {type(entry).__name__}")
        options = dict(entry[1])
        for key, value in (values or {}).items():
            old = options.get(key)
            options[key] = old + value if append and isinstance(old, list) else value
        out.append([entry[0], options])
    return out


def pillow(fn: Callable[[T], Any], arg: T) -> Any:
    """Call ``fn(arg)`` (e.g. ``Image.open``), retrying with truncated images allowed."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        return fn(arg)
    except (OSError, UnidentifiedImageError, ValueError):
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            return fn(arg)
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


def hasher() -> Callable[..., Any]:
    """The hash constructor used for file change checks (SHA-256)."""
    return hashlib.sha256


_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16,
           "fp8_e4m3fn": getattr(torch, "float8_e4m3fn", None), "fp8_e5m2": getattr(torch, "float8_e5m2", None)}


def string_to_torch_dtype(string: str) -> torch.dtype | None:
    """``"fp16"`` → ``torch.float16``...; None for names it does not know (``"default"``)."""
    return _DTYPES.get(string)


def image_alpha_fix(destination: torch.Tensor, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Make two IMAGE batches agree on channels: an alpha channel is added where one is missing."""
    if destination.shape[-1] < source.shape[-1]:
        source = source[..., :destination.shape[-1]]
    elif destination.shape[-1] > source.shape[-1]:
        pad = torch.ones_like(source[..., :1]).expand(*source.shape[:-1], destination.shape[-1] - source.shape[-1])
        source = torch.cat([source, pad], dim=-1)
    return destination, source


