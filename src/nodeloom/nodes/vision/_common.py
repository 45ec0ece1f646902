"""Helpers the vision nodes share: model-folder combos."""

from __future__ import annotations

from collections.abc import Callable

from nodeloom.node_api import services

__all__ = ["file_list"]


def file_list(folder: str) -> Callable[[], list[str]]:
    """A combo option callable listing a model folder (empty when no engine is active)."""

    def names() -> list[str]:
        svc = services(required=False)
        return svc.paths.get_filename_list(folder) if svc is not None else []

    return names
