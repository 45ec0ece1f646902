"""Layout prompt builders for box-aware image models: ``Flux3LayoutPrompt`` (FLUX 3 Image) and
``MOSSImageLayoutPrompt`` (MOSS-Image). Both read the prompt elements that
``CreateBoundingBoxes`` draws and write them into the prompt text the model's encoder reads.

Elements are ComfyUI's: ``type``, ``bbox`` ``[ymin, xmin, ymax, xmax]`` on the 0..1000 grid,
``text`` (text boxes), ``desc`` and ``color_palette``.
Box N (1-based, canvas order) is ``obj_N`` for FLUX 3 and number N in ``character_boxes``.

FLUX 3 (the prompt, a space, then a JSON array)::

    <prompt> [{"id": "obj_1", "bbox": [y0, x0, y1, x1], "desc": "..."}, ...]

MOSS-Image (a JSON object; pixel boxes measured from the canvas centre)::

    {"caption": <prompt>,
     "layout": [{"label": "object" | "character" | "text", "caption": str,
                 "text"?: str, "color_palette"?: [...], "bbox": [y0, x0, y1, x1]}, ...],
     "bbox_format": "yxyx"}

With no elements both return the prompt unchanged.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from nodeloom.node_api import Custom, Int, Node, Output, Schema, String, ValidationError

__all__ = ["Flux3LayoutPrompt", "LayoutBox", "MOSSImageLayoutPrompt", "layout_boxes"]

_GRID = 1000


@dataclass(frozen=True)
class LayoutBox:
    """One prompt element: ``box`` is ``(y0, x0, y1, x1)`` on the 0..1000 grid."""

    kind: str
    box: tuple[float, float, float, float]
    desc: str = ""
    text: str = ""
    palette: list[str] = field(default_factory=list)


def _coords(value: Any, index: int) -> tuple[float, ...]:
    if not (isinstance(value, (list, tuple)) and len(value) == 4):
        raise ValidationError(f"`element` {index}: bbox must be four numbers on the 0..1000 grid, got {value!r}")
    try:
        return tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValidationError(f"`element` {index}: bbox must be four numbers, got {value!r}") from None


def layout_boxes(element: Any) -> list[LayoutBox]:
    """The elements of ``CreateBoundingBoxes`` as :class:`LayoutBox` values, in canvas order.

    Raises:
        ValidationError: ``element`` is not a list of element dicts with a four-number ``bbox``.
    """
    if element is None:
        return []
    if isinstance(element, str):
        try:
            element = json.loads(element) if element.strip() else []
        except json.JSONDecodeError as exc:
            raise ValidationError(f"`element` text is not JSON: {exc}") from None
    if isinstance(element, dict):
        element = [element]
    if not isinstance(element, (list, tuple)):
        raise ValidationError(
            f"`element` must be the prompt elements of Create Bounding Boxes (a list), got {type(element).__name__}")
    boxes = []
    for i, e in enumerate(element, 1):
        if not isinstance(e, dict):
            raise ValidationError(f"`element` {i} must be an object with a bbox, got {e!r}")
        y0, x0, y1, x1 = _coords(e.get("bbox"), i)
        desc, palette = e.get("desc", ""), e.get("color_palette") or []
        y0, y1 = sorted((y0, y1))
        x0, x1 = sorted((x0, x1))
        kind = "text" if e.get("type") == "text" else "obj"
        boxes.append(LayoutBox(kind, (y0, x0, y1, x1), str(desc or ""),
                               str(e.get("text") or "") if kind == "text" else "",
                               [str(c) for c in palette if isinstance(c, str) and c.strip()]))
    return boxes


def _grid(v: float) -> int:
    return max(0, min(_GRID, round(v)))


class Flux3LayoutPrompt(Node):
    """Append the boxes of Create Bounding Boxes to a FLUX 3 Image prompt as its layout table."""

    SCHEMA = Schema(
        "Flux3LayoutPrompt", display_name="FLUX 3 Image Layout Prompt", category="text",
        inputs=[
            String("prompt", multiline=True,
                   tooltip="Text describing the whole image. Refer to box N with <obj_N> to bind those words to it."),
            Custom("ARRAY", "element",
                   tooltip="The elements drawn in Create Bounding Boxes. Palettes are ignored: put colours in each "
                           "box's description."),
        ],
        outputs=[Output("STRING", "prompt", tooltip="The prompt followed by the box table FLUX 3 Image reads.")],
    )

    @classmethod
    def execute(cls, prompt: str = "", element: Any = None) -> tuple[str]:
        if not isinstance(prompt, str):
            raise ValidationError(f"`prompt` must be text, got {type(prompt).__name__}")
        boxes = layout_boxes(element)
        if not boxes:
            return (prompt,)
        rows = []
        for i, b in enumerate(boxes, 1):
            desc = b.desc
            if b.kind == "text" and b.text:
                desc = f'"{b.text}"' + (f", {b.desc}" if b.desc else "")
            rows.append({"id": f"obj_{i}", "bbox": [_grid(v) for v in b.box], "desc": desc})
        return (f"{prompt.rstrip()} {json.dumps(rows, ensure_ascii=False)}",)


def parse_character_boxes(value: Any) -> set[int]:
    """Every whole number in ``value`` (any separator)."""
    if value is None:
        return set()
    if not isinstance(value, str):
        raise ValidationError(f"`character_boxes` must be text such as \"1, 3\", got {type(value).__name__}")
    return {int(n) for n in re.findall(r"\d+", value)}


class MOSSImageLayoutPrompt(Node):
    """Build the MOSS-Image JSON layout prompt from a caption and the boxes of Create Bounding Boxes."""

    SCHEMA = Schema(
        "MOSSImageLayoutPrompt", display_name="MOSS-Image Layout Prompt", category="text",
        inputs=[
            String("prompt", multiline=True, tooltip="What the whole image shows; it becomes the layout's caption."),
            Custom("ARRAY", "element",
                   tooltip="The elements drawn in Create Bounding Boxes: each box's description is its caption, "
                           "text boxes add their wording, palettes are kept."),
            Int("width", 1024, min=16, max=16384, step=16,
                tooltip="Width in pixels of the image to generate; box coordinates are written in this pixel grid."),
            Int("height", 1024, min=16, max=16384, step=16,
                tooltip="Height in pixels of the image to generate; box coordinates are written in this pixel grid."),
            String("character_boxes",
                   tooltip="Box numbers (as the Create Bounding Boxes preview tags them) to label as characters "
                           "rather than objects, e.g. \"1, 3\"; every number in the text counts."),
        ],
        outputs=[Output("STRING", "prompt", tooltip="The JSON layout prompt, or the prompt unchanged without boxes.")],
    )

    @classmethod
    def execute(cls, prompt: str = "", element: Any = None, width: int = 1024, height: int = 1024,
                character_boxes: str = "") -> tuple[str]:
        if not isinstance(prompt, str):
            raise ValidationError(f"`prompt` must be text, got {type(prompt).__name__}")
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, int) or not 16 <= value <= 16384:
                raise ValidationError(f"`{name}` must be a whole number of pixels in 16..16384, got {value!r}")
        characters = parse_character_boxes(character_boxes)
        boxes = layout_boxes(element)
        if not boxes:
            return (prompt,)
        entries = []
        for i, b in enumerate(boxes, 1):
            y0, x0, y1, x1 = b.box
            label = "text" if b.kind == "text" else ("character" if i in characters else "object")
            entry: dict[str, Any] = {"label": label, "caption": b.desc}
            if label == "text":
                entry["text"] = b.text
            if b.palette:
                entry["color_palette"] = list(b.palette)
            entry["bbox"] = [round(y0 * height / _GRID - height / 2), round(x0 * width / _GRID - width / 2),
                             round(y1 * height / _GRID - height / 2), round(x1 * width / _GRID - width / 2)]
            entries.append(entry)
        layout = {"caption": prompt, "layout": entries, "bbox_format": "yxyx"}
        return (json.dumps(layout, ensure_ascii=False),)
