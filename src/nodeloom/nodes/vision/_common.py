"""Helpers the vision nodes share: model-folder combos and cached loading of a model file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nodeloom.node_api import model_key, services

__all__ = ["file_list", "load_model_file"]


def file_list(folder: str) -> Callable[[], list[str]]:
    """A combo option callable listing a model folder (empty when no engine is active)."""

    def names() -> list[str]:
        svc = services(required=False)
        return svc.paths.get_filename_list(folder) if svc is not None else []

    return names


def load_model_file(folder: str, name: str, kind: str, loader: Callable[[Path], Any]) -> Any:
    """Resolve ``name`` in a model folder and load it with ``loader(path)``, cached by the engine's
    model manager under (file, mtime, ``kind``)."""
    svc = services()
    path = svc.paths.get_full_path(folder, name)
    return svc.models.load(model_key(path, kind), lambda: loader(path))
