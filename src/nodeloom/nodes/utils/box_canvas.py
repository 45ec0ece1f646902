"""The bounding-box canvas node (``CreateBoundingBoxes``): boxes drawn in the frontend's canvas
widget, or handed in from upstream, out as pixel boxes, prompt elements and a preview image.

A canvas box is ``{"x", "y", "width", "height", "metadata": {"type", "text", "desc", "palette"}}``
in pixels of the ``width`` × ``height`` grid. An element is ``{"type", "bbox", "text",
"description", "palette"}`` with ``bbox`` as ``[x0, y0, x1, y1]`` normalised to 0..1000.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
from PIL import Image as PILImage
from PIL import ImageDraw

from nodeloom.node_api import Custom, Image, Int, Node, Output, Schema, ValidationError
from nodeloom.ops import resample

__all__ = ["CreateBoundingBoxes", "canvas_boxes", "to_elements"]

_NORM = 1000.0


def _number(box: dict, key: str) -> float:
    try:
        return float(box[key])
    except (KeyError, TypeError, ValueError):
        raise ValidationError(f"`bboxes`: each box needs a numeric {key!r}, got {box!r}") from None


def _from_element(e: dict, width: int, height: int) -> dict:
    bbox = e.get("bbox")
    if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4):
        raise ValidationError(f"`bboxes`: an element's bbox must be [x0, y0, x1, y1] in 0..1000, got {bbox!r}")
    x0, y0, x1, y1 = (float(v) for v in bbox)
    meta = {"type": e.get("type", "obj"), "text": e.get("text", ""), "desc": e.get("description", ""),
            "palette": list(e.get("palette", []))}
    return {"x": round(x0 * width / _NORM), "y": round(y0 * height / _NORM),
            "width": round((x1 - x0) * width / _NORM), "height": round((y1 - y0) * height / _NORM), "metadata": meta}


def canvas_boxes(value: Any, width: int, height: int) -> list[dict]:
    """Canvas boxes from pixel boxes, elements, one of either, or their JSON text."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError as exc:
            raise ValidationError(f"`bboxes` text is not JSON: {exc}") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ValidationError(f"`bboxes` must be boxes, elements or their JSON text, got {type(value).__name__}")
    out = []
    for item in value:
        if not isinstance(item, dict):
            raise ValidationError(f"`bboxes`: each entry must be an object, got {item!r}")
        if "bbox" in item:
            out.append(_from_element(item, width, height))
        else:
            box = {k: _number(item, k) for k in ("x", "y", "width", "height")}
            out.append({**box, "metadata": dict(item.get("metadata") or {})})
    return out


def to_elements(boxes: list[dict], width: int, height: int) -> list[dict]:
    """Prompt elements (bbox ``[x0, y0, x1, y1]`` in 0..1000) in canvas order."""
    elements = []
    for b in boxes:
        meta = b.get("metadata") or {}
        x, y, w, h = (float(b[k]) for k in ("x", "y", "width", "height"))
        bbox = [round(min(max(v, 0.0), _NORM)) for v in (x / width * _NORM, y / height * _NORM,
                                                          (x + w) / width * _NORM, (y + h) / height * _NORM)]
        element = {"type": meta.get("type", "obj"), "bbox": bbox, "description": meta.get("desc", ""),
                   "palette": list(meta.get("palette", []))}
        if element["type"] == "text":
            element["text"] = meta.get("text", "")
        elements.append(element)
    return elements


def _preview(boxes: list[dict], width: int, height: int, background: torch.Tensor | None) -> torch.Tensor:
    if background is not None:
        base = resample.upscale_image(background[:1, ..., :3], width, height, "bilinear")[0]
        canvas = PILImage.fromarray((base.clamp(0, 1) * 255).round().to(torch.uint8).numpy())
    else:
        canvas = PILImage.new("RGB", (width, height), (32, 32, 32))
    draw = ImageDraw.Draw(canvas)
    line = max(1, round(max(width, height) / 400))
    for i, b in enumerate(boxes):
        meta = b.get("metadata") or {}
        palette = [c for c in meta.get("palette", []) if isinstance(c, str) and len(c) in (7, 9) and c.startswith("#")]
        colour = palette[0][:7] if palette else "#00ff00"
        x, y, w, h = (float(b[k]) for k in ("x", "y", "width", "height"))
        draw.rectangle((x, y, x + w, y + h), outline=colour, width=line)
        label = f"{i + 1} {meta.get('type', 'obj')}: {meta.get('text') or meta.get('desc', '')}"[:60]
        draw.text((x + line + 2, y + line + 2), label, fill="#ffffff")
        for j, swatch in enumerate(palette):
            draw.rectangle((x + line + 2 + 12 * j, y + line + 16, x + line + 12 + 12 * j, y + line + 26), fill=swatch[:7])
    return torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0)[None]


class CreateBoundingBoxes(Node):
    """Draw bounding boxes in a canvas. Outputs Ideogram prompt elements, pixel-space bounding
    boxes, and a preview image."""

    SCHEMA = Schema(
        "CreateBoundingBoxes",
        display_name="Create Bounding Boxes",
        category="image/detection",
        inputs=[
            Int("width", 1024, min=64, max=16384, step=16, tooltip="Width of the canvas and the pixel grid for the bounding boxes."),
            Int("height", 1024, min=64, max=16384, step=16, tooltip="Height of the canvas and the pixel grid for the bounding boxes."),
            Custom("BOUNDING_BOXES", "editor_state", default=[],
                   tooltip="Draw bounding boxes and set each box type, text, description, color palette. "
                           "Start with background element first and foreground last."),
            Image("background", optional=True, tooltip="Optional image used as background in the canvas and preview."),
            Custom("BOUNDING_BOX,ARRAY,STRING", "bboxes", optional=True,
                   tooltip="Bounding boxes, elements, or a JSON string to initialize the canvas. A new upstream value "
                           "initializes the canvas; edits made on the canvas take priority and are kept until the "
                           "upstream value changes again."),
            Custom("BOUNDING_BOXES", "last_incoming", optional=True, default=[],
                   tooltip="Internal state managed by the canvas: the upstream bboxes value that last initialized it. "
                           "Leave empty to re-initialize the canvas from the bboxes input on the next run."),
        ],
        outputs=[Output("IMAGE", "preview", tooltip="The canvas with every box, its label and palette."),
                 Output("BOUNDING_BOX", "bboxes", tooltip="The boxes in pixels: x, y, width, height."),
                 Output("ARRAY", "elements", tooltip="Prompt elements: type, bbox (0..1000), text, description, palette.")],
    )

    @classmethod
    def execute(cls, width: int, height: int, editor_state: Any = None, background: torch.Tensor | None = None,
                bboxes: Any = None, last_incoming: Any = None) -> tuple[Any, ...]:
        boxes = canvas_boxes(editor_state or [], width, height)
        if bboxes is not None:
            incoming = canvas_boxes(bboxes, width, height)
            if not last_incoming or canvas_boxes(last_incoming, width, height) != incoming:
                boxes = incoming
        pixel = [{k: b[k] for k in ("x", "y", "width", "height")} for b in boxes]
        return (_preview(boxes, width, height, background), pixel, to_elements(boxes, width, height))
