"""Drawing detection boxes (``DrawBBoxes``): outlines, COCO class labels and scores on an image
or on a blank canvas that holds every box.

A box is a dict with ``x``, ``y``, ``width``, ``height`` and optionally ``label`` and ``score``;
one dict or a flat list serves every image, a list of lists gives each image its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image as PILImage
from PIL import ImageDraw

from nodeloom.node_api import Custom, Image, Node, Output, Schema, ValidationError

__all__ = ["COCO_CLASSES", "DrawBBoxes", "draw_boxes"]

#: the 80 COCO detection classes, in their usual order (a label's index picks its colour)
COCO_CLASSES = tuple(name.replace("_", " ") for name in (
    "person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant stop_sign "
    "parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella handbag "
    "tie suitcase frisbee skis snowboard sports_ball kite baseball_bat baseball_glove skateboard surfboard "
    "tennis_racket bottle wine_glass cup fork knife spoon bowl banana apple sandwich orange broccoli carrot "
    "hot_dog pizza donut cake chair couch potted_plant bed dining_table toilet tv laptop mouse remote keyboard "
    "cell_phone microwave oven toaster sink refrigerator book clock vase scissors teddy_bear hair_drier toothbrush"
).split())
_MIN_CANVAS = 640


def _colour(index: int) -> tuple[int, int, int]:
    """A distinct, stable colour per class index (golden-angle hues)."""
    h = (index * 0.618033988749895) % 1.0
    r, g, b = (abs((h * 6 + k) % 6 - 3) - 1 for k in (0, 4, 2))
    return tuple(int(255 * min(max(c, 0.0), 1.0)) for c in (r, g, b))  # type: ignore[return-value]


def _per_image(bboxes: Any, count: int) -> list[list[dict]]:
    if isinstance(bboxes, dict):
        return [[bboxes]] * count
    if not isinstance(bboxes, (list, tuple)):
        raise ValidationError(f"`bboxes` must be a box dict, a list of them or a list of lists, got {type(bboxes).__name__}")
    if bboxes and all(isinstance(b, (list, tuple)) for b in bboxes):
        return [list(bboxes[min(i, len(bboxes) - 1)]) for i in range(count)]
    return [list(bboxes)] * count


def _box(b: Any) -> tuple[float, float, float, float]:
    try:
        return float(b["x"]), float(b["y"]), float(b["width"]), float(b["height"])
    except (KeyError, TypeError, ValueError):
        raise ValidationError(f"`bboxes`: each box needs numeric x, y, width and height, got {b!r}") from None


def draw_boxes(canvas: PILImage.Image, boxes: list[dict]) -> PILImage.Image:
    """Outline each box; a COCO ``label`` (with its ``score``) is written above it."""
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(max(canvas.size) / 320))
    for b in boxes:
        x, y, w, h = _box(b)
        label = str(b.get("label", "")).strip().lower().replace("_", " ")
        index = COCO_CLASSES.index(label) if label in COCO_CLASSES else -1
        colour = _colour(index) if index >= 0 else (0, 255, 0)
        draw.rectangle((x, y, x + w, y + h), outline=colour, width=width)
        if index >= 0:
            score = b.get("score")
            text = label if score is None else f"{label} {float(score):.2f}"
            left, top, right, bottom = draw.textbbox((x, y), text)
            ty = y - (bottom - top) - 2 if y - (bottom - top) - 2 >= 0 else y + width
            draw.rectangle((x, ty, x + (right - left) + 4, ty + (bottom - top) + 2), fill=colour)
            draw.text((x + 2, ty), text, fill=(0, 0, 0))
    return canvas


class DrawBBoxes(Node):
    """Draw bounding boxes, COCO class labels and scores onto images (or onto a blank canvas)."""

    SCHEMA = Schema(
        "DrawBBoxes",
        display_name="Draw BBoxes",
        category="image/detection",
        inputs=[
            Custom("BOUNDING_BOX", "bboxes", tooltip="Boxes with x, y, width, height and optionally label and score: "
                                                     "one dict or a list for every image, or a list per image."),
            Image("image", optional=True, tooltip="The image(s) to draw on; without one a blank canvas holding every box is made."),
        ],
        outputs=[Output("IMAGE", "out_image", tooltip="The image(s) with the boxes drawn.")],
    )

    @classmethod
    def execute(cls, bboxes: Any, image: torch.Tensor | None = None) -> tuple[torch.Tensor]:
        count = int(image.shape[0]) if image is not None else (len(bboxes) if _is_nested(bboxes) else 1)
        sets = _per_image(bboxes, count)
        if image is None:
            boxes = [_box(b) for s in sets for b in s]
            w = max([_MIN_CANVAS] + [int(np.ceil(x + bw)) for x, _, bw, _ in boxes])
            h = max([_MIN_CANVAS] + [int(np.ceil(y + bh)) for _, y, _, bh in boxes])
            canvases = [PILImage.new("RGB", (w, h)) for _ in sets]
        else:
            pixels = (image[..., :3].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
            canvases = [PILImage.fromarray(p) for p in pixels]
        out = [np.asarray(draw_boxes(c, s), dtype=np.float32) / 255.0 for c, s in zip(canvases, sets)]
        return (torch.from_numpy(np.stack(out)),)


def _is_nested(bboxes: Any) -> bool:
    return isinstance(bboxes, (list, tuple)) and bool(bboxes) and all(isinstance(b, (list, tuple)) for b in bboxes)
