"""Drawing a storyboard as a contact sheet, and drift curves as a chart.

Owns two Pillow renderings: the contact sheet (one panel per shot — the shot's frame
when given, otherwise a framing sketch whose figure size follows the shot size, with
the horizon tilted for a dutch angle and an arrow for the move — plus a caption) and a
line chart of per-frame curves with thresholds and flagged segments. Returns float
``[H,W,3]`` arrays in 0..1; no torch, no nodes.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from nodeloom.errors import ValidationError
from nodeloom.ops.storyboard import Storyboard
from nodeloom.ops.storyboard_terms import has_cjk

__all__ = ["render_contact_sheet", "render_curves"]

#: figure height as a fraction of the panel height, per shot size.
_FIGURE_SCALE = {"EWS": 0.12, "WS": 0.35, "FS": 0.8, "2S": 0.8, "MS": 1.5, "MCU": 2.2, "OTS": 1.8,
                 "POV": 0.6, "CU": 3.4, "ECU": 7.0, "INS": 0.0}
#: move → arrow directions (unit vectors, y down) drawn on the sketch.
_ARROWS: dict[str, list[tuple[float, float]]] = {
    "push in": [(1, 1), (-1, -1), (1, -1), (-1, 1)], "pull out": [(1, 1), (-1, -1), (1, -1), (-1, 1)],
    "pan left": [(-1, 0)], "pan right": [(1, 0)], "tilt up": [(0, -1)], "tilt down": [(0, 1)],
    "track left": [(-1, 0)], "track right": [(1, 0)], "crane up": [(0, -1)], "crane down": [(0, 1)],
}


#: fonts with Chinese glyphs, looked for when a caption needs them (the first found is used);
#: Pillow's own font has none, so without one of these Chinese captions show as boxes
CJK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/System/Library/Fonts/PingFang.ttc", "/System/Library/Fonts/STHeiti Light.ttc", "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/simhei.ttf",
)


def _font(size: int, cjk: bool = False) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's font, or for text with Chinese characters the first installed font of :data:`CJK_FONTS`."""
    for path in CJK_FONTS if cjk else ():
        if os.path.isfile(path):
            try:
                return ImageFont.truetype(path, size)
            except OSError:  # a broken or unsupported font file: try the next
                continue
    return ImageFont.load_default(size)


def _arrow(d: ImageDraw.ImageDraw, w: int, h: int, dirs: list[tuple[float, float]], inward: bool = False) -> None:
    """Arrows from the centre outwards (pull out, pans) or from the corners inwards (push in)."""
    red = (190, 30, 30)
    for dx, dy in dirs:
        n = math.hypot(dx, dy)
        ux, uy = dx / n, dy / n
        length = 0.18 * min(w, h) * 2
        sx, sy = w / 2 + ux * 0.12 * w, h / 2 + uy * 0.12 * h
        ex, ey = sx + ux * length, sy + uy * length
        if inward:
            sx, sy, ex, ey = ex, ey, sx, sy
        d.line([(sx, sy), (ex, ey)], fill=red, width=3)
        px, py = -uy, ux
        d.polygon([(ex + ux * 8, ey + uy * 8), (ex + px * 6, ey + py * 6), (ex - px * 6, ey - py * 6)], fill=red)


def _sketch(size: tuple[int, int], shot_size: str, angle: str, move: str) -> Image.Image:
    w, h = size
    img = Image.new("RGB", size, (228, 226, 220))
    d = ImageDraw.Draw(img)
    tilt = math.radians(12 if angle == "dutch angle" else 0)
    horizon = h * (0.7 if angle in ("high angle", "overhead") else 0.35 if angle in ("low angle", "worm's-eye") else 0.55)
    dy = math.tan(tilt) * w / 2
    d.line([(0, horizon + dy), (w, horizon - dy)], fill=(150, 150, 150), width=2)
    scale = _FIGURE_SCALE.get(shot_size, 1.0) * h
    ink = (40, 40, 40)
    if scale > 0:
        cx = w * (0.62 if shot_size == "OTS" else 0.5)
        head_r = scale * 0.11
        # whole figures stand on the ground; closer sizes keep the head at eye height
        head_y = 0.9 * h - scale + head_r if scale <= 0.85 * h else 0.4 * h
        d.ellipse([cx - head_r, head_y - head_r, cx + head_r, head_y + head_r], outline=ink, width=3)
        d.line([(cx, head_y + head_r), (cx, head_y + scale * 0.55)], fill=ink, width=3)
        d.line([(cx - scale * 0.2, head_y + scale * 0.25), (cx + scale * 0.2, head_y + scale * 0.25)], fill=ink, width=3)
        if shot_size == "OTS":
            d.ellipse([-w * 0.15, h * 0.35, w * 0.35, h * 1.4], fill=(90, 90, 90))
    else:
        d.rectangle([w * 0.3, h * 0.3, w * 0.7, h * 0.7], outline=ink, width=3)
    if move in _ARROWS:
        _arrow(d, w, h, _ARROWS[move], inward=move == "push in")
    elif move != "static":
        d.text((8, 6), move, fill=(180, 30, 30), font=_font(max(12, h // 10)))
    return img


def render_contact_sheet(
    board: Storyboard,
    frames: np.ndarray | None = None,
    *,
    columns: int = 3,
    panel_width: int = 320,
    aspect: float = 16 / 9,
) -> np.ndarray:
    """Render the board: a grid of panels with captions.

    Args:
        board: the storyboard.
        frames: optional ``[K,H,W,3]`` images; with K = number of shots panel i shows
            frame i, otherwise frames are spread evenly over the shots.
        columns: panels per row (≥ 1).
        panel_width: width of each panel in pixels (≥ 64).
        aspect: panel width / height.

    Returns:
        float32 ``[H,W,3]`` in 0..1.
    """
    if columns < 1 or panel_width < 64 or aspect <= 0:
        raise ValidationError(f"`columns` must be ≥ 1 and `panel_width` ≥ 64, got {columns} and {panel_width}")
    n = len(board.shots)
    pw, ph = panel_width, int(round(panel_width / aspect))
    cjk = any(has_cjk(f"{s.text} {s.dialogue or ''} {s.speaker or ''}") for s in board.shots)
    cap_font, text_font = _font(max(11, pw // 22)), _font(max(10, pw // 26), cjk)
    wrap = max(16, int(pw / max(text_font.getlength("abcdefghijklmnopqrstuvwxyz ") / 27, 4)))
    wrap = wrap // 2 if cjk else wrap  # a Chinese character is about two Latin letters wide
    # a FreeType font knows its size; Pillow's bitmap fallback (no FreeType) is about 11 px
    cap_px, text_px = getattr(cap_font, "size", 11), getattr(text_font, "size", 11)
    line_h = int(text_px * 1.25)
    cap_h = int(cap_px * 1.6) + 3 * line_h + 8
    rows = math.ceil(n / columns)
    pad = 12
    sheet = Image.new("RGB", (columns * (pw + pad) + pad, rows * (ph + cap_h + pad) + pad), (255, 255, 255))
    d = ImageDraw.Draw(sheet)
    for i, shot in enumerate(board.shots):
        x0 = pad + (i % columns) * (pw + pad)
        y0 = pad + (i // columns) * (ph + cap_h + pad)
        panel = _panel(frames, i, n, (pw, ph)) if frames is not None else _sketch((pw, ph), shot.size, shot.angle, shot.movement)
        sheet.paste(panel, (x0, y0))
        d.rectangle([x0 - 1, y0 - 1, x0 + pw, y0 + ph], outline=(0, 0, 0))
        head = f"{shot.id}  {shot.size} · {shot.angle} · {shot.movement} · {shot.duration:g}s"
        d.text((x0, y0 + ph + 4), head, fill=(0, 0, 0), font=cap_font)
        body = f"{shot.speaker}: {shot.dialogue}" if shot.speaker else shot.text
        for k, line in enumerate(textwrap.wrap(body, wrap)[:3]):
            d.text((x0, y0 + ph + 6 + int(cap_px * 1.5) + k * line_h), line, fill=(60, 60, 60), font=text_font)
    return np.asarray(sheet, dtype=np.float32) / 255.0


def _panel(frames: np.ndarray, i: int, n: int, size: tuple[int, int]) -> Image.Image:
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] < 3:
        raise ValidationError(f"`images` must be [K,H,W,3], got shape {arr.shape}")
    k = i if len(arr) == n else int(round(i * (len(arr) - 1) / max(n - 1, 1)))
    pic = Image.fromarray(np.clip(arr[k, ..., :3] * 255 + 0.5, 0, 255).astype(np.uint8))
    return pic.resize(size, Image.Resampling.LANCZOS)


_COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14)]


def render_curves(
    curves: Mapping[str, Sequence[float] | np.ndarray],
    thresholds: Mapping[str, float] | None = None,
    flagged: Mapping[str, Sequence[Mapping[str, float]]] | None = None,
    *,
    width: int = 768,
    panel_height: int = 150,
) -> np.ndarray:
    """One small line chart per curve: values over frames, the threshold dashed, flagged
    segments shaded.

    Returns:
        float32 ``[H,W,3]`` in 0..1.
    """
    if not curves:
        raise ValidationError("no curves to plot")
    names = list(curves)
    font = _font(12)
    img = Image.new("RGB", (width, panel_height * len(names)), (255, 255, 255))
    d = ImageDraw.Draw(img)
    left, right, top, bottom = 56, 12, 20, 18
    for p, name in enumerate(names):
        vals = np.asarray(curves[name], dtype=np.float64)
        y0 = p * panel_height
        thr = (thresholds or {}).get(name)
        vmax = max(float(vals.max()) if len(vals) else 1.0, thr or 0.0, 1e-6) * 1.1
        sx = (width - left - right) / max(len(vals) - 1, 1)
        sy = (panel_height - top - bottom) / vmax

        def pt(i: float, v: float, y0: int = y0, sx: float = sx, sy: float = sy) -> tuple[float, float]:
            return left + i * sx, y0 + panel_height - bottom - v * sy

        for seg in (flagged or {}).get(name, []):
            a, b = pt(seg["start"] - 0.5, vmax), pt(seg["end"] + 0.5, 0)
            d.rectangle([max(a[0], left), a[1], min(b[0], width - right), b[1]], fill=(255, 220, 220))
        d.rectangle([left, y0 + top, width - right, y0 + panel_height - bottom], outline=(120, 120, 120))
        if thr is not None:
            ty = pt(0, thr)[1]
            for x in range(left, width - right, 10):
                d.line([(x, ty), (min(x + 5, width - right), ty)], fill=(200, 0, 0))
        if len(vals) > 1:
            d.line([pt(i, v) for i, v in enumerate(vals)], fill=_COLORS[p % len(_COLORS)], width=2)
        d.text((left, y0 + 3), name, fill=(0, 0, 0), font=font)
        d.text((4, y0 + top - 6), f"{vmax / 1.1:.3g}", fill=(80, 80, 80), font=font)
        d.text((4, y0 + panel_height - bottom - 8), "0", fill=(80, 80, 80), font=font)
        d.text((width - right - 40, y0 + panel_height - bottom + 2), f"{len(vals) - 1}", fill=(80, 80, 80), font=font)
    return np.asarray(img, dtype=np.float32) / 255.0
