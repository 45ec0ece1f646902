"""``BuildJsonPromptIdeogram``: assembles the structured JSON prompt that Ideogram 4 (and models
reading the same format) takes, from an overview sentence, a style block and the prompt elements
of ``CreateBoundingBoxes``.

The prompt is a dict::

    {"high_level_description": str,                 # only when not blank
     "style_description": {"aesthetics", "lighting", "photo" | "art_style", "medium",
                           "color_palette"?},        # only when style is not "none"
     "compositional_deconstruction": {"background": str, "elements": [...]}}

The elements are copied in unchanged, so they keep the canvas node's keys::

    {"type": "text" | "obj", "bbox": [ymin, xmin, ymax, xmax],   # 0..1000 grid
     "text"?: str, "desc": str, "color_palette"?: [...]}
"""

from __future__ import annotations

import re
from typing import Any

from nodeloom.node_api import Custom, Node, Output, Schema, String, ValidationError

__all__ = ["BuildJsonPromptIdeogram", "normalize_palette"]

STYLES = ("none", "photo", "art_style")
MAX_PALETTE = 16
_HEX = re.compile(r"#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")


def normalize_palette(colors: Any) -> list[str]:
    """Palette entries as upper-case ``#RRGGBB`` strings (blank entries dropped).

    Raises:
        ValidationError: not a list/dict of hex colour strings, or more than 16 of them.
    """
    if colors is None:
        return []
    if isinstance(colors, dict):
        colors = list(colors.values())
    if isinstance(colors, str):
        colors = [c for c in re.split(r"[\s,;]+", colors) if c]
    if not isinstance(colors, (list, tuple)):
        raise ValidationError(f"`color_palette` must be a list of hex colours, got {type(colors).__name__}")
    out = []
    for c in colors:
        if isinstance(c, str) and not c.strip():
            continue
        if not (isinstance(c, str) and _HEX.fullmatch(c.strip())):
            raise ValidationError(f"`color_palette` entries must look like #RRGGBB, got {c!r}")
        out.append(c.strip().upper())
    if len(out) > MAX_PALETTE:
        raise ValidationError(f"`color_palette` holds at most {MAX_PALETTE} colours, got {len(out)}")
    return out


def _elements(element: Any) -> list[Any]:
    if element is None:
        return []
    if isinstance(element, dict):
        return [element]
    if isinstance(element, (list, tuple)):
        return list(element)
    raise ValidationError(f"`element` must be the prompt elements of Create Bounding Boxes (a list), got {type(element).__name__}")


def _style_option(name: str, tip: str) -> dict[str, Any]:
    return {"key": name, "inputs": {"required": {name: ["STRING", {"default": "", "tooltip": tip}]}}}


class BuildJsonPromptIdeogram(Node):
    """Put an Ideogram 4 JSON prompt together from the canvas elements, a scene backdrop and an optional
    style block."""

    SCHEMA = Schema(
        "BuildJsonPromptIdeogram", display_name="Build JSON Prompt (Ideogram)", category="text", experimental=True,
        inputs=[
            Custom("ARRAY", "element", tooltip="The elements list that Create Bounding Boxes outputs; it goes into the prompt as is."),
            String("high_level_description", multiline=True,
                   tooltip="A sentence or two summing up the whole picture. Optional, but it helps a lot; left out when blank."),
            String("background", multiline=True, tooltip="Required: the setting or backdrop behind the elements."),
            Custom("COMFY_DYNAMICCOMBO_V3", "style", tooltip="The style block: none, a photo, or an art style.",
                   options=[{"key": "none", "inputs": {"required": {}}},
                            _style_option("photo", "Camera and lens notes for a photographic look, such as 50mm, f/2.8, shallow depth of field."),
                            _style_option("art_style", "The drawing or painting style, such as watercolour wash or thick inked lines.")]),
            String("aesthetics", tooltip="Required with a style: mood words such as calm, gritty or pastel."),
            String("lighting", tooltip="Required with a style: how the scene is lit, such as overcast daylight or neon backlight."),
            String("medium", tooltip="Required with a style: the kind of picture, such as photograph, illustration, "
                                     "3d_render, painting or graphic_design; the photo style wants photograph."),
            Custom("COLORS", "color_palette", optional=True, default=[],
                   tooltip="At most 16 hex colours (#RRGGBB) the picture should mostly be made of."),
        ],
        outputs=[Output("DICT", "prompt", tooltip="The structured JSON prompt.")],
    )

    @classmethod
    def execute(cls, element: Any, style: Any, high_level_description: str = "", background: str = "",
                aesthetics: str = "", lighting: str = "", medium: str = "", color_palette: Any = None,
                **options: Any) -> tuple[dict[str, Any]]:
        kind = style.get("style", "none") if isinstance(style, dict) else style
        if kind not in STYLES:
            raise ValidationError(f"`style` must be one of {list(STYLES)}, got {kind!r}")
        extra = dict(style) if isinstance(style, dict) else {k.split(".", 1)[1]: v for k, v in options.items()
                                                             if k.startswith("style.")}
        palette = normalize_palette(color_palette)
        prompt: dict[str, Any] = {}
        if str(high_level_description).strip():
            prompt["high_level_description"] = high_level_description
        if kind != "none":
            block: dict[str, Any] = {"aesthetics": aesthetics, "lighting": lighting}
            if kind == "photo":
                block.update(photo=str(extra.get("photo", "")), medium=medium)
            else:
                block.update(medium=medium, art_style=str(extra.get("art_style", "")))
            if palette:
                block["color_palette"] = palette
            prompt["style_description"] = block
        prompt["compositional_deconstruction"] = {"background": background, "elements": _elements(element)}
        return (prompt,)
