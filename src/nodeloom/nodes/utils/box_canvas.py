"""The bounding-box canvas node (``CreateBoundingBoxes``): boxes drawn in the frontend's canvas
widget, or handed in from upstream, turned into pixel boxes, prompt elements and a preview image.

A canvas box lives in pixels of the ``width`` × ``height`` grid::

    {"x", "y", "width", "height", "metadata": {"type", "text", "desc", "palette"}}

A prompt element (ComfyUI's form, the one Ideogram 4's JSON prompt and the layout prompt nodes
read) puts the box on a 0..1000 grid, top edge first::

    {"type": "text" | "obj", "bbox": [ymin, xmin, ymax, xmax],
     "text": str,                 # text boxes only
     "desc": str,
     "color_palette": [...]}      # only when the box has colours; at most 5, upper-cased
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from nodeloom.node_api import Custom, Image, Int, Node, NodeOutput, Output, Schema, ValidationError
from nodeloom.ops import resample

__all__ = ["CreateBoundingBoxes", "build_elements", "canvas_boxes"]

_GRID = 1000
_MAX_SWATCHES = 5
_PREVIEW_EDGE = 1024  # the preview's long edge never exceeds this
_DIM = 0.25  # brightness kept of a background photo; also the blank canvas's grey level (of 128)
_NO_COLOUR = (140, 140, 140)
_PIXEL_KEYS = ("x", "y", "width", "height")

_EXPECTED = "pixel boxes {x, y, width, height}, elements {type, bbox, ...}, a list of either, or their JSON text"


# --------------------------------------------------------------------------- incoming boxes


def _palette(colours: Any) -> list[str]:
    """The non-empty colour strings of ``colours`` (a list or a dict's values), upper-cased."""
    if isinstance(colours, dict):
        colours = list(colours.values())
    if not isinstance(colours, (list, tuple)):
        return []
    return [c.upper() for c in colours if isinstance(c, str) and c]


def _is_element(item: dict) -> bool:
    bbox = item.get("bbox")
    return isinstance(bbox, (list, tuple)) and len(bbox) == 4


def _is_pixel_box(item: dict) -> bool:
    return all(k in item for k in _PIXEL_KEYS)


def _element_box(element: dict, width: int, height: int) -> dict:
    try:
        ymin, xmin, ymax, xmax = (float(v) / _GRID for v in element["bbox"])
    except (TypeError, ValueError):
        raise ValidationError(f"`bboxes`: an element's bbox must be four numbers [ymin, xmin, ymax, xmax] "
                              f"on the 0..1000 grid, got {element['bbox']!r}") from None
    kind = "text" if element.get("type") == "text" else "obj"
    return {"x": round(min(xmin, xmax) * width), "y": round(min(ymin, ymax) * height),
            "width": round(abs(xmax - xmin) * width), "height": round(abs(ymax - ymin) * height),
            "metadata": {"type": kind, "text": element.get("text", "") if kind == "text" else "",
                         "desc": element.get("desc", ""), "palette": element.get("color_palette") or []}}


def _pixel_box(item: dict) -> dict:
    for key in _PIXEL_KEYS:
        value = item[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError(f"`bboxes`: a pixel box's {key!r} must be a number, got {value!r}")
    box = {k: item[k] for k in _PIXEL_KEYS}
    if isinstance(item.get("metadata"), dict):
        box["metadata"] = item["metadata"]
    return box


def _one_box(item: Any, width: int, height: int) -> dict:
    if isinstance(item, dict):
        if _is_element(item):
            return _element_box(item, width, height)
        if _is_pixel_box(item):
            return _pixel_box(item)
    raise ValidationError(f"`bboxes`: each entry must be a pixel box (x, y, width, height) or an element "
                          f"with a four-number bbox, got {item!r}")


def canvas_boxes(value: Any, width: int, height: int) -> list[dict]:
    """The incoming ``bboxes`` value as canvas boxes (pixels plus, where known, metadata).

    ``None``, blank text and empty lists give no boxes; a list of frames (lists of boxes) uses
    its first frame.

    Raises:
        ValidationError: text that is not JSON, or anything that is not boxes or elements.
    """
    if value is None:
        return []
    if isinstance(value, str):
        if not value.strip():
            return []
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"`bboxes` text is not valid JSON ({exc}); expected {_EXPECTED}") from None
    if isinstance(value, dict):
        return [_one_box(value, width, height)]
    if not isinstance(value, (list, tuple)):
        raise ValidationError(f"`bboxes` must be {_EXPECTED}, got {type(value).__name__}")
    if value and isinstance(value[0], (list, tuple)):
        value = value[0]  # frames: the first one
    return [_one_box(item, width, height) for item in value]


# --------------------------------------------------------------------------- regions and outputs


def _regions(boxes: Any, width: int, height: int) -> list[dict]:
    """Canvas boxes as fractions of the canvas (``x``, ``y``, ``w``, ``h``) plus their metadata."""
    if not isinstance(boxes, list):
        return []
    w, h = width or 1, height or 1
    regions = []
    for box in boxes:
        if not isinstance(box, dict):
            continue
        meta = box.get("metadata") if isinstance(box.get("metadata"), dict) else {}
        try:
            place = {"x": box.get("x", 0) / w, "y": box.get("y", 0) / h,
                     "w": box.get("width", 0) / w, "h": box.get("height", 0) / h}
        except TypeError:
            raise ValidationError(f"`editor_state`: a box's x, y, width and height must be numbers, "
                                  f"got {box!r}") from None
        regions.append({**place, "type": meta.get("type", "obj"), "text": meta.get("text", ""),
                        "desc": meta.get("desc", ""), "palette": meta.get("palette", [])})
    return regions


def _upright(region: dict) -> tuple[float, float, float, float]:
    """``(x, y, w, h)`` with a negative width or height turned into a positive one."""
    x, y, w, h = region["x"], region["y"], region["w"], region["h"]
    if w < 0:
        x, w = x + w, -w
    if h < 0:
        y, h = y + h, -h
    return x, y, w, h


def _pixel_frame(regions: list[dict], width: int, height: int) -> list[list[dict]]:
    boxes = []
    for region in regions:
        x, y, w, h = _upright(region)
        boxes.append({"x": round(x * width), "y": round(y * height),
                      "width": round(w * width), "height": round(h * height)})
    return [boxes] if boxes else []


def _on_grid(fraction: float) -> int:
    return max(0, min(_GRID, round(fraction * _GRID)))


def build_elements(regions: list[dict]) -> list[dict]:
    """Prompt elements, in canvas order, from canvas regions (see the module docstring)."""
    elements = []
    for region in regions:
        top, left = _on_grid(region["y"]), _on_grid(region["x"])
        bottom, right = _on_grid(region["y"] + region["h"]), _on_grid(region["x"] + region["w"])
        kind = "text" if region.get("type") == "text" else "obj"
        element: dict[str, Any] = {"type": kind, "bbox": [min(top, bottom), min(left, right),
                                                          max(top, bottom), max(left, right)]}
        if kind == "text":
            element["text"] = region.get("text", "")
        element["desc"] = region.get("desc", "")
        colours = _palette(region.get("palette"))
        if colours:
            element["color_palette"] = colours[:_MAX_SWATCHES]
        elements.append(element)
    return elements


# --------------------------------------------------------------------------- preview


def _rgb(colour: Any) -> tuple[int, int, int]:
    digits = colour.lstrip("#") if isinstance(colour, str) else ""
    try:
        if len(digits) == 6:
            return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
    except ValueError:
        pass
    return (255, 255, 255)


def _lightened(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """``rgb`` pushed toward white until it reads on the dimmed canvas."""
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    if luma >= 130:
        return rgb
    t = (130 - luma) / (255 - luma)
    return tuple(round(c + (255 - c) * t) for c in rgb)  # type: ignore[return-value]


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size)
    except TypeError:  # Pillow without sized default fonts
        return ImageFont.load_default()


def _lines(draw: ImageDraw.ImageDraw, text: str, font: Any, room: float) -> list[str]:
    out = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            wider = f"{line} {word}" if line else word
            if line and draw.textlength(wider, font=font) > room:
                out.append(line)
                line = word
            else:
                line = wider
        out.append(line)
    return out


def _preview(regions: list[dict], width: int, height: int, background: torch.Tensor | None) -> torch.Tensor:
    src_w, src_h = (int(background.shape[2]), int(background.shape[1])) if background is not None else (width, height)
    scale = min(1.0, _PREVIEW_EDGE / (max(src_w, src_h) or 1))
    pw, ph = max(1, round(src_w * scale)), max(1, round(src_h * scale))
    if background is not None:
        photo = resample.upscale_image(background[:1, ..., :3].float(), pw, ph, "bilinear")[0] * _DIM
        base = PILImage.fromarray((photo.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()).convert("RGBA")
    else:
        grey = round(_DIM * 128)
        base = PILImage.new("RGBA", (pw, ph), (grey, grey, grey, 255))
    layer = PILImage.new("RGBA", (pw, ph), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    size = max(10, round(ph / 64))
    font, tag_font = _font(size), _font(max(9, size - 2))
    for n, region in enumerate(regions, 1):
        colours = [c for c in (region.get("palette") or []) if c]
        rgb = _rgb(colours[0]) if colours else _NO_COLOUR
        x, y, w, h = _upright(region)
        x0, y0 = (max(0, min(pw, round(x * pw))), max(0, min(ph, round(y * ph))))
        x1, y1 = (max(0, min(pw, round((x + w) * pw))), max(0, min(ph, round((y + h) * ph))))
        draw.rectangle((x0, y0, x1, y1), outline=rgb + (255,), width=2)
        swatches = colours[:_MAX_SWATCHES]
        if swatches and x1 - x0 > 2:  # a strip of the box's colours along its top edge
            step = (x1 - x0) / len(swatches)
            for k, colour in enumerate(swatches):
                draw.rectangle((x0 + round(k * step), y0, x0 + round((k + 1) * step), y0 + max(5, size // 2)),
                               fill=_rgb(colour) + (255,))
        tag = f"{n:02d}"
        draw.rectangle((x0, y0, x0 + draw.textlength(tag, font=tag_font) + 6, y0 + size + 2), fill=rgb + (255,))
        dark_ink = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 140
        draw.text((x0 + 3, y0 + 1), tag, fill=(0, 0, 0, 255) if dark_ink else (255, 255, 255, 255), font=tag_font)
        caption = str(region.get("desc") or "")
        if region.get("type") == "text" and region.get("text"):
            caption = f'"{region["text"]}"' + (f" — {caption}" if caption else "")
        if caption and x1 - x0 > 8:
            line_y = y0 + size + 5
            for line in _lines(draw, caption, font, x1 - x0 - 8):
                if line_y > y1:
                    break
                draw.text((x0 + 4, line_y), line, fill=_lightened(rgb) + (255,), font=font)
                line_y += size + 2
    image = PILImage.alpha_composite(base, layer).convert("RGB")
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)[None]


# --------------------------------------------------------------------------- node


class CreateBoundingBoxes(Node):
    """Lay out boxes on a canvas (drawn in the widget or fed in from upstream) and hand them on as
    a labelled preview, pixel boxes, and prompt elements on a 0..1000 grid."""

    SCHEMA = Schema(
        "CreateBoundingBoxes",
        display_name="Create Bounding Boxes",
        category="utilities",
        output_node=True,
        experimental=True,
        inputs=[
            Image("background", optional=True,
                  tooltip="A picture to draw the boxes over, both in the canvas and in the preview output."),
            Custom("BOUNDING_BOX,ARRAY,STRING", "bboxes", optional=True,
                   tooltip="Boxes to start the canvas from: pixel boxes, prompt elements, or either as JSON text. "
                           "Each new value replaces the canvas once; after that your edits on the canvas win "
                           "until a different value arrives."),
            Int("width", 1024, min=64, max=16384, step=16,
                tooltip="Canvas width in pixels; the pixel boxes are measured on this grid."),
            Int("height", 1024, min=64, max=16384, step=16,
                tooltip="Canvas height in pixels; the pixel boxes are measured on this grid."),
            Custom("BOUNDING_BOXES", "editor_state", default=[], socketless=False,
                   tooltip="The boxes drawn on the canvas, each with a type (object or text), wording for text "
                           "boxes, a description and colours. Draw the backdrop boxes first and the nearest "
                           "things last."),
            Custom("BOUNDING_BOXES", "last_incoming", optional=True, default=[],
                   tooltip="Kept by the canvas itself: the upstream bboxes value it was last filled from. Clear it "
                           "to have the next run refill the canvas from bboxes."),
        ],
        outputs=[Output("IMAGE", "preview", tooltip="The canvas with each box outlined, numbered and captioned."),
                 Output("BOUNDING_BOX", "bboxes", tooltip="One frame of pixel boxes (x, y, width, height)."),
                 Output("ARRAY", "elements",
                        tooltip="One prompt element per box: type, bbox [ymin, xmin, ymax, xmax] on 0..1000, "
                                "text, desc, color_palette.")],
    )

    @classmethod
    def execute(cls, width: int, height: int, editor_state: Any = None, background: torch.Tensor | None = None,
                bboxes: Any = None, last_incoming: Any = None) -> NodeOutput:
        incoming = canvas_boxes(bboxes, width, height)
        seen = last_incoming if isinstance(last_incoming, list) else []
        boxes = incoming if incoming and incoming != seen else (editor_state or [])
        regions = _regions(boxes, width, height)
        ui: dict[str, Any] = {"dims": [width, height]}
        if incoming:
            ui["input_bboxes"] = incoming
        return NodeOutput(_preview(regions, width, height, background), _pixel_frame(regions, width, height),
                          build_elements(regions), ui=ui)
