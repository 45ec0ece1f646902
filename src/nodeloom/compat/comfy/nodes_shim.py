"""``nodes``: MAX_RESOLUTION and the core node classes, for packs that subclass or call them.

``NODE_CLASS_MAPPINGS`` here lists nodeloom's core pack only (not the live registry of an
engine: one process may host several engines). Core classes are also attributes by their
ComfyUI names (``nodes.SaveImage``, ``nodes.LoadImage``...).
"""

from __future__ import annotations

from typing import Any

from nodeloom.node_api import MAX_RESOLUTION
from nodeloom.nodes import core as _core

__all__ = ["MAX_RESOLUTION", "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

NODE_CLASS_MAPPINGS: dict[str, type] = dict(_core.NODE_CLASS_MAPPINGS)
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = dict(_core.NODE_DISPLAY_NAME_MAPPINGS)


def __getattr__(name: str) -> Any:
    cls = _core.NODE_CLASS_MAPPINGS.get(name)
    if cls is None:
        raise AttributeError(f"module 'nodes' has no attribute {name!r} (nodeloom provides the core nodes only)")
    return cls
