"""A small line chart drawn with Pillow (no plotting library needed).

Used for the KV-cache report: per-token latency against sequence position, one line per
cache mode. Returns a PIL image; saving is the caller's choice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from PIL import Image, ImageDraw, ImageFont

__all__ = ["line_chart"]

_COLORS = [(220, 60, 50), (40, 110, 210), (40, 160, 80), (200, 140, 20), (130, 70, 180), (20, 160, 170), (90, 90, 90)]


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    span = hi - lo if hi > lo else 1.0
    raw = span / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = raw
    for base in (1, 2, 2.5, 5, 10):
        if base * magnitude >= raw:
            step = base * magnitude
            break
    first = (lo // step) * step
    ticks, value = [], first
    while value <= hi + step * 1e-9:
        if value >= lo - step * 1e-9:
            ticks.append(round(value, 10))
        value += step
    return ticks


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str = "",
    x_label: str = "",
    y_label: str = "",
    size: tuple[int, int] = (800, 480),
) -> Image.Image:
    """Draw ``series`` (name → [(x, y), ...]) as lines on shared axes.

    Args:
        series: the lines; empty series are skipped.
        title / x_label / y_label: text around the chart.
        size: image size in pixels.

    Returns:
        An RGB image.

    Raises:
        ValueError: no series has any point.
    """
    points = [p for s in series.values() for p in s]
    if not points:
        raise ValueError("`series` must contain at least one point")
    width, height = size
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    left, right, top, bottom = 70, 20, 40, 50
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = 0.0, max(p[1] for p in points) * 1.05 or 1.0
    x1 = x1 if x1 > x0 else x0 + 1

    def to_px(x: float, y: float) -> tuple[float, float]:
        px = left + (x - x0) / (x1 - x0) * (width - left - right)
        py = height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)
        return px, py

    for tick in _nice_ticks(y0, y1):
        _, py = to_px(x0, tick)
        draw.line([(left, py), (width - right, py)], fill=(230, 230, 230))
        draw.text((5, py - 6), f"{tick:g}", fill=(60, 60, 60), font=font)
    for tick in _nice_ticks(x0, x1):
        px, _ = to_px(tick, y0)
        draw.line([(px, height - bottom), (px, height - bottom + 4)], fill=(60, 60, 60))
        draw.text((px - 10, height - bottom + 8), f"{tick:g}", fill=(60, 60, 60), font=font)
    draw.rectangle([left, top, width - right, height - bottom], outline=(60, 60, 60))
    for index, (name, pts) in enumerate(item for item in series.items() if item[1]):
        color = _COLORS[index % len(_COLORS)]
        xy = [to_px(x, y) for x, y in sorted(pts)]
        if len(xy) > 1:
            draw.line(xy, fill=color, width=2)
        else:
            draw.ellipse([xy[0][0] - 2, xy[0][1] - 2, xy[0][0] + 2, xy[0][1] + 2], fill=color)
        ly = top + 8 + 14 * index
        draw.line([(left + 10, ly + 6), (left + 30, ly + 6)], fill=color, width=3)
        draw.text((left + 36, ly), name, fill=(20, 20, 20), font=font)
    draw.text((left, 12), title, fill=(0, 0, 0), font=font)
    draw.text(((width - len(x_label) * 6) // 2, height - 20), x_label, fill=(0, 0, 0), font=font)
    draw.text((5, top - 24), y_label, fill=(0, 0, 0), font=font)
    return img
