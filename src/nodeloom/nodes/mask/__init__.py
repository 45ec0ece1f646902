"""Mask pack: ComfyUI's mask nodes (same names and inputs) and nodeloom's region tools."""

from nodeloom.node_api import mappings
from nodeloom.nodes.mask.comfy import NODES as _COMFY
from nodeloom.nodes.mask.regions import NODES as _REGIONS

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(*_COMFY, *_REGIONS)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
