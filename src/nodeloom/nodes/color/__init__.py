"""Colour pack: colour QC (PASS/FAIL with a heatmap and a JSON report), ΔE maps, named colours, palettes."""

from nodeloom.node_api import mappings
from nodeloom.nodes.color.distance import DeltaEMap, NearestNamedColor, PaletteMatch
from nodeloom.nodes.color.qc import ColorQC

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(ColorQC, DeltaEMap, NearestNamedColor, PaletteMatch)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
