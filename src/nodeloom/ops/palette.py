"""Named colours and palettes: parse, and match pixels to their nearest palette entry.

The named colours are the CSS Color Module Level 4 keywords, read from Pillow's table at
run time. Matching works on the distinct colours of an image (8-bit quantised), so a photo
costs (distinct colours × palette size) distance evaluations, not pixels × palette size.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import torch

from nodeloom.errors import ValidationError
from nodeloom.ops.color import METHODS, color_distance

__all__ = ["Palette", "css_palette", "nearest_in_palette", "parse_color", "parse_palette", "to_hex"]

_HEX = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


class Palette:
    """Named sRGB colours: ``names`` (list of str) and ``rgb`` (float64 ``[P, 3]`` in 0..1)."""

    def __init__(self, names: list[str], rgb: np.ndarray) -> None:
        if len(names) == 0:
            raise ValidationError("a palette needs at least one colour")
        self.names = list(names)
        self.rgb = np.asarray(rgb, dtype=np.float64).reshape(-1, 3)

    def __len__(self) -> int:
        return len(self.names)


def to_hex(rgb: np.ndarray | list[float]) -> str:
    """``"#rrggbb"`` for an sRGB triple in 0..1."""
    v = np.clip(np.round(np.asarray(rgb, dtype=np.float64) * 255.0), 0, 255).astype(int)
    return "#{:02x}{:02x}{:02x}".format(*v.tolist())


def _parse_hex(text: str) -> np.ndarray | None:
    m = _HEX.match(text.strip())
    if not m:
        return None
    h = m.group(1)
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return np.array([int(h[i : i + 2], 16) for i in (0, 2, 4)], dtype=np.float64) / 255.0


@lru_cache(maxsize=1)
def _css() -> tuple[tuple[str, ...], tuple[tuple[float, float, float], ...]]:
    from PIL import ImageColor

    names = sorted(ImageColor.colormap)
    rgb = tuple(tuple(c / 255.0 for c in ImageColor.getrgb(n)[:3]) for n in names)
    return tuple(names), rgb  # type: ignore[return-value]


def css_palette() -> Palette:
    """The 148 CSS named colours (``grey``/``gray`` spellings both present)."""
    names, rgb = _css()
    return Palette(list(names), np.array(rgb))


def parse_color(text: str, name: str = "color") -> tuple[float, float, float]:
    """One colour from ``"#rrggbb"``, ``"#rgb"`` or a CSS name, as sRGB 0..1.

    Raises:
        ValidationError: anything else; the message names the input ``name``.
    """
    rgb = _parse_hex(text)
    if rgb is None:
        names, colors = _css()
        key = text.strip().lower().replace(" ", "")
        if key in names:
            rgb = np.array(colors[names.index(key)])
    if rgb is None:
        raise ValidationError(f"`{name}` must be a hex colour like '#ff8800' or a CSS colour name, got {text!r}")
    return (float(rgb[0]), float(rgb[1]), float(rgb[2]))


def parse_palette(text: str) -> Palette:
    """Parse ``"#ff0000, navy, brand: #1a2b3c"`` (commas, semicolons or new lines).

    Each entry is a hex colour (``#rgb`` / ``#rrggbb``), a CSS colour name, or
    ``label: colour``. The entry ``css`` expands to every CSS named colour.

    Raises:
        ValidationError: an entry that is neither; the message names it.
    """
    css_names, css_rgb = _css()
    lookup = {n: np.array(c) for n, c in zip(css_names, css_rgb)}
    names: list[str] = []
    colors: list[np.ndarray] = []
    for raw in re.split(r"[,;\n]", text):
        entry = raw.strip()
        if not entry:
            continue
        if entry.lower() == "css":
            names.extend(css_names)
            colors.extend(np.array(c) for c in css_rgb)
            continue
        label, _, value = entry.rpartition(":")
        value = value.strip()
        rgb = _parse_hex(value)
        if rgb is None:
            rgb = lookup.get(value.lower().replace(" ", ""))
        if rgb is None:
            raise ValidationError(f"`palette` entry {entry!r} is not a hex colour (#rrggbb) or a CSS colour name")
        names.append(label.strip() or (value.lower() if value.lower() in lookup else to_hex(rgb)))
        colors.append(rgb)
    if not names:
        raise ValidationError("`palette` is empty; give colours like '#ff0000, navy'")
    return Palette(names, np.stack(colors))


def nearest_in_palette(
    rgb: torch.Tensor | np.ndarray, palette: Palette, method: str = "ciede2000"
) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest palette colour, and its distance, for every pixel.

    Args:
        rgb: ``[..., 3]`` sRGB 0..1 (quantised to 8 bits for matching).
        palette: the candidates.
        method: a :data:`nodeloom.ops.color.METHODS` name (the palette colour is the
            reference for asymmetric methods).

    Returns:
        ``(index, distance)``, each shaped ``rgb.shape[:-1]``.

    Raises:
        ValidationError: unknown method or bad shape.
    """
    if method not in METHODS:
        raise ValidationError(f"`method` must be one of {list(METHODS)}, got {method!r}")
    arr = rgb.detach().cpu().numpy() if isinstance(rgb, torch.Tensor) else np.asarray(rgb)
    if arr.ndim == 0 or arr.shape[-1] != 3:
        raise ValidationError(f"`rgb` must have 3 channels in its last axis, got shape {arr.shape}")
    q = np.clip(np.round(arr.reshape(-1, 3) * 255.0), 0, 255).astype(np.int64)
    packed = (q[:, 0] << 16) | (q[:, 1] << 8) | q[:, 2]
    uniq, inverse = np.unique(packed, return_inverse=True)
    colors = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], axis=-1).astype(np.float64) / 255.0
    best = np.full(uniq.shape[0], np.inf)
    best_idx = np.zeros(uniq.shape[0], dtype=np.int64)
    for p, ref in enumerate(palette.rgb):
        d = color_distance(np.broadcast_to(ref, colors.shape), colors, method, precision="fast")
        better = d < best
        best[better] = d[better]
        best_idx[better] = p
    shape = arr.shape[:-1]
    return best_idx[inverse].reshape(shape), best[inverse].reshape(shape)
