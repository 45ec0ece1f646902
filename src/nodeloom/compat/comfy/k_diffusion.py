"""``comfy.k_diffusion`` / ``comfy.k_diffusion.utils``: the helpers packs import from ComfyUI's
k-diffusion copy: ``FolderOfImages`` (VideoHelperSuite reads its extension set), and the
``sampling`` submodule (:mod:`nodeloom.compat.comfy.k_diffusion_sampling`: k-diffusion's sampler
functions over nodeloom's samplers), also as an attribute for ``from comfy.k_diffusion import sampling``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image
from torch.utils import data

__all__ = ["FolderOfImages"]


def __getattr__(name: str) -> Any:
    if name == "sampling":
        import importlib

        return importlib.import_module("nodeloom.compat.comfy.k_diffusion_sampling")
    if name == "utils":
        return sys.modules[__name__]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class FolderOfImages(data.Dataset):  # type: ignore[type-arg]
    """Every image under ``root`` (recursively, sorted); items are ``(transform(RGB image),)``."""

    IMG_EXTENSIONS = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}

    def __init__(self, root: str | Path, transform: Callable[[Any], Any] | None = None) -> None:
        super().__init__()
        self.root = Path(root)
        self.transform = transform if transform is not None else (lambda image: image)
        self.paths = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in self.IMG_EXTENSIONS)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int) -> tuple[Any]:
        with Image.open(self.paths[key]) as image:
            return (self.transform(image.convert("RGB")),)
