"""Burning subtitles into frames: each frame shows the segment active at its time, drawn as
white text with a dark outline, wrapped to the frame's width. Pure numpy + Pillow."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from nodeloom.errors import ValidationError
from nodeloom.ops.subtitles import Segment
from nodeloom.ops.video_plots import _font

__all__ = ["active_segment", "burn_subtitles"]


def active_segment(segments: list[Segment], t: float) -> Segment | None:
    """The segment showing at time ``t`` (start inclusive, end exclusive)."""
    return next((s for s in segments if s.start <= t < s.end), None)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: object, width: int) -> list[str]:
    lines: list[str] = []
    for para in text.split("\n"):
        words = para.split(" ") if " " in para else list(para)  # CJK text wraps by character
        joiner = " " if " " in para else ""
        line = ""
        for word in words:
            trial = f"{line}{joiner}{word}" if line else word
            if line and draw.textlength(trial, font=font) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        if line:
            lines.append(line)
    return lines


def burn_subtitles(frames: np.ndarray, segments: list[Segment], fps: float, *, font_size: int = 0,
                   position: str = "bottom", start_time: float = 0.0) -> np.ndarray:
    """Draw the segment active at each frame's time onto a copy of ``frames`` (``[N,H,W,3]`` 0..1).

    Args:
        font_size: text height in pixels (0: a twentieth of the frame height, at least 10).
        position: ``bottom`` or ``top``.
        start_time: the time of the first frame in seconds.
    """
    if fps <= 0:
        raise ValidationError(f"`fps` must be > 0, got {fps}")
    if position not in ("bottom", "top"):
        raise ValidationError(f"`position` must be `bottom` or `top`, got {position!r}")
    out = np.array(frames, np.float32, copy=True)
    h, w = out.shape[1:3]
    size = font_size or max(10, h // 20)
    cjk = any(ord(c) > 0x2E80 for s in segments for c in s.text)
    font = _font(size, cjk=cjk)
    cache: dict[int, np.ndarray] = {}
    for i in range(out.shape[0]):
        seg = active_segment(segments, start_time + i / fps)
        if seg is None:
            continue
        key = id(seg)
        if key not in cache:
            layer = Image.new("LA", (w, h), (0, 0))
            draw = ImageDraw.Draw(layer)
            lines = _wrap(draw, seg.text, font, int(w * 0.9))
            step = int(size * 1.25)
            y = size // 2 if position == "top" else h - size // 2 - step * len(lines)
            for line in lines:
                x = (w - draw.textlength(line, font=font)) / 2
                draw.text((x, y), line, font=font, fill=(255, 255), stroke_width=max(1, size // 12), stroke_fill=(0, 255))
                y += step
            cache[key] = np.asarray(layer, np.float32) / 255.0
        la = cache[key]
        alpha = la[..., 1:2]
        out[i] = out[i] * (1 - alpha) + la[..., 0:1] * alpha
    return out
