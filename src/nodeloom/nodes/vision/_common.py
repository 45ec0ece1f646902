"""Helpers the vision nodes share: model-folder combos and cached loading of a model file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nodeloom.errors import NodeloomError
from nodeloom.node_api import services

__all__ = ["file_list", "load_model_file"]


def file_list(folder: str) -> Callable[[], list[str]]:
    """A combo option callable listing a model folder (empty when no engine is active)."""

    def names() -> list[str]:
        try:
            svc = services()
        except NodeloomError:  # no engine active: declarations read outside a run list nothing
            return []
        return svc.paths.get_filename_list(folder)

    return names


def load_model_file(folder: str, name: str, kind: str, loader: Callable[[Path], Any]) -> Any:
    """Resolve ``name`` in a model folder and load it with ``loader(path)``, cached by the engine's
    model manager under (file, mtime, ``kind``)."""
    from nodeloom.diffusion.weights import load_cached

    svc = services()
    return load_cached(svc.models, svc.paths.get_full_path(folder, name), kind, loader)
