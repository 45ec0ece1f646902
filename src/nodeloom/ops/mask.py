"""Mask algorithms on ``[B, H, W]`` float tensors (0..1) and ``[B, H, W, C]`` images.

Morphology (grow/shrink, feather), boolean logic, colour-range selection, connected
components (remove small objects, fill holes), bounding boxes, crop by mask, compositing and
ROI shapes. Pure functions: inputs are never modified. scipy (the ``image`` extra) is
imported only by the connected-component functions. No nodes here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from nodeloom.errors import ValidationError, require
from nodeloom.ops.color import color_distance

__all__ = [
    "LOGIC_OPS",
    "bounding_box",
    "color_range_mask",
    "combine_masks",
    "composite",
    "crop_to_mask",
    "feather_edges",
    "fill_holes",
    "grow",
    "remove_small_objects",
    "replace_color",
    "roi_mask",
    "to_batch_mask",
    "union_box",
]

LOGIC_OPS = ("and", "or", "xor", "subtract", "multiply", "add", "difference")


def to_batch_mask(mask: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """``mask`` as ``[B, H, W]`` (accepts ``[H, W]``, ``[B, H, W]`` or ``[B, 1, H, W]``).

    Raises:
        ValidationError: any other shape.
    """
    if mask.ndim == 2:
        return mask.unsqueeze(0)
    if mask.ndim == 3:
        return mask
    if mask.ndim == 4 and mask.shape[1] == 1:
        return mask[:, 0]
    raise ValidationError(f"`{name}` must be a MASK [B,H,W] (or [H,W]), got shape {tuple(mask.shape)}")


def _dilate_cross(x: torch.Tensor) -> torch.Tensor:
    """One 3×3 cross (4-neighbour) grey dilation; outside the image does not count."""
    p = F.pad(x, (1, 1, 1, 1), value=float("-inf"))
    out = torch.maximum(x, p[:, :-2, 1:-1])
    out = torch.maximum(out, p[:, 2:, 1:-1])
    out = torch.maximum(out, p[:, 1:-1, :-2])
    return torch.maximum(out, p[:, 1:-1, 2:])


def grow(mask: torch.Tensor, expand: int, tapered_corners: bool = True) -> torch.Tensor:
    """Grey dilation (``expand`` > 0) or erosion (< 0) by ``|expand|`` pixels.

    Matches repeating a 3×3 step ``|expand|`` times: with ``tapered_corners`` the step is a
    cross (the reach is a diamond), otherwise a full square (the reach is a square, done in
    one max-pool). Pixels outside the image never contribute.

    Args:
        mask: ``[B, H, W]`` mask.
        expand: pixels to grow (negative shrinks).
        tapered_corners: cross (True) or square (False) structuring step.

    Returns:
        A new ``[B, H, W]`` mask.
    """
    m = to_batch_mask(mask).float()
    if expand == 0:
        return m.clone()
    sign = 1.0 if expand > 0 else -1.0
    x = m * sign
    h, w = m.shape[-2:]
    # Beyond these reaches every pixel already sees the whole image: more steps change nothing.
    n = min(abs(int(expand)), h + w - 2 if tapered_corners else max(h, w) - 1)
    if n <= 0:
        return m.clone()
    if tapered_corners:
        for _ in range(n):
            x = _dilate_cross(x)
    else:
        k = 2 * n + 1
        x = F.max_pool2d(F.pad(x.unsqueeze(1), (n, n, n, n), value=float("-inf")), k, stride=1).squeeze(1)
    return x * sign


def feather_edges(mask: torch.Tensor, left: int, top: int, right: int, bottom: int) -> torch.Tensor:
    """Fade a mask linearly to the image edges.

    The pixel ``d`` steps in from an edge (``d`` = 0 at the edge) is multiplied by
    ``(d + 1) / n`` for a feather of ``n`` pixels on that side; corners get both factors.

    Raises:
        ValidationError: a negative width.
    """
    if min(left, top, right, bottom) < 0:
        raise ValidationError(f"feather widths must be ≥ 0, got left={left} top={top} right={right} bottom={bottom}")
    m = to_batch_mask(mask).float()
    h, w = m.shape[-2:]

    def ramp(size: int, lo: int, hi: int) -> torch.Tensor:
        idx = torch.arange(size, dtype=torch.float32)
        r = torch.ones(size)
        if lo > 0:
            r = torch.minimum(r, ((idx + 1) / lo).clamp(max=1.0))
        if hi > 0:
            r = torch.minimum(r, ((size - idx) / hi).clamp(max=1.0))
        return r

    return m * ramp(h, top, bottom)[:, None] * ramp(w, left, right)[None, :]


def combine_masks(a: torch.Tensor, b: torch.Tensor, op: str, threshold: float | None = None) -> torch.Tensor:
    """Element-wise logic on masks (batch sizes broadcast; sizes must match).

    Soft masks use fuzzy logic: ``and`` = min, ``or`` = max, ``xor`` = |a − b|,
    ``subtract`` = max(a − b, 0), ``multiply`` = a·b, ``add`` = min(a + b, 1),
    ``difference`` = |a − b|. With ``threshold`` both masks are first binarised (``> t``).

    Raises:
        ValidationError: unknown op or different sizes.
    """
    if op not in LOGIC_OPS:
        raise ValidationError(f"`op` must be one of {list(LOGIC_OPS)}, got {op!r}")
    a, b = to_batch_mask(a, "a").float(), to_batch_mask(b, "b").float()
    if a.shape[-2:] != b.shape[-2:]:
        raise ValidationError(f"masks differ in size: `a` is {tuple(a.shape[-2:])}, `b` is {tuple(b.shape[-2:])} (H, W)")
    if threshold is not None:
        a, b = (a > threshold).float(), (b > threshold).float()
    if op == "and":
        return torch.minimum(a, b)
    if op == "or":
        return torch.maximum(a, b)
    if op in ("xor", "difference"):
        return (a - b).abs()
    if op == "subtract":
        return (a - b).clamp(min=0.0)
    if op == "multiply":
        return a * b
    return (a + b).clamp(max=1.0)


def color_range_mask(
    image: torch.Tensor,
    color: Sequence[float],
    tolerance: float,
    space: str = "rgb",
    softness: float = 0.0,
) -> torch.Tensor:
    """Select pixels whose colour is within ``tolerance`` of ``color``.

    Distances: ``"rgb"`` Euclidean on 0..1 sRGB, ``"hsv"`` weighted HSV with hue
    wrap-around (0..~1.7), ``"delta_e"`` CIEDE2000. With ``softness`` > 0 the mask falls
    linearly from 1 at ``tolerance`` to 0 at ``tolerance + softness``.

    Args:
        image: ``[B, H, W, C]`` image (first three channels used).
        color: the target sRGB colour, three numbers in 0..1.
        tolerance: the largest distance that still selects fully (≥ 0).
        space: ``"rgb"``, ``"hsv"`` or ``"delta_e"``.
        softness: width of the soft edge in the same units (≥ 0).

    Returns:
        ``[B, H, W]`` float mask.

    Raises:
        ValidationError: bad space, colour or tolerances.
    """
    methods = {"rgb": "rgb_euclidean", "hsv": "hsv_weighted", "delta_e": "ciede2000"}
    if space not in methods:
        raise ValidationError(f"`space` must be one of {list(methods)}, got {space!r}")
    if len(color) != 3:
        raise ValidationError(f"`color` must be three numbers (R, G, B in 0..1), got {tuple(color)}")
    if tolerance < 0 or softness < 0:
        raise ValidationError(f"`tolerance` and `softness` must be ≥ 0, got {tolerance} and {softness}")
    rgb = image[..., :3].float()
    target = torch.tensor(list(color), dtype=torch.float32, device=rgb.device).expand_as(rgb)
    d = color_distance(target, rgb, methods[space])
    if softness > 0:
        return (1.0 - (d - tolerance) / softness).clamp(0.0, 1.0)
    return (d <= tolerance).float()


def _labels(binary: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    ndimage = require("scipy.ndimage", "image")
    if connectivity not in (4, 8):
        raise ValidationError(f"`connectivity` must be 4 or 8, got {connectivity}")
    structure = np.ones((3, 3), dtype=bool) if connectivity == 8 else None
    return ndimage.label(binary, structure=structure)


def remove_small_objects(
    mask: torch.Tensor, min_size: int, threshold: float = 0.5, connectivity: int = 8
) -> torch.Tensor:
    """Zero the connected regions (of pixels ``> threshold``) smaller than ``min_size`` pixels.

    Kept regions keep their soft values.

    Raises:
        ValidationError: negative ``min_size`` or bad connectivity.
    """
    if min_size < 0:
        raise ValidationError(f"`min_size` must be ≥ 0, got {min_size}")
    m = to_batch_mask(mask).float()
    out = m.clone()
    for i in range(m.shape[0]):
        labels, n = _labels((m[i] > threshold).cpu().numpy(), connectivity)
        if n == 0:
            continue
        sizes = np.bincount(labels.ravel())
        small = sizes < min_size
        small[0] = False
        out[i][torch.from_numpy(small[labels]).to(out.device)] = 0.0
    return out


def fill_holes(mask: torch.Tensor, max_hole_size: int = 0, threshold: float = 0.5) -> torch.Tensor:
    """Set to 1 the background regions that do not touch the image border.

    Args:
        mask: ``[B, H, W]`` mask; foreground is ``> threshold``.
        max_hole_size: fill only holes up to this many pixels (0 = every hole).
        threshold: binarisation level.

    Returns:
        A new mask; filled pixels become 1, the rest keep their values.
    """
    if max_hole_size < 0:
        raise ValidationError(f"`max_hole_size` must be ≥ 0, got {max_hole_size}")
    m = to_batch_mask(mask).float()
    out = m.clone()
    for i in range(m.shape[0]):
        # Holes are background components; 4-connectivity for background pairs with
        # 8-connected foreground, so a diagonal gap does not leak.
        labels, n = _labels((m[i] <= threshold).cpu().numpy(), 4)
        if n == 0:
            continue
        border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        hole = np.ones(n + 1, dtype=bool)
        hole[0] = False
        hole[border] = False
        if max_hole_size > 0:
            hole &= np.bincount(labels.ravel(), minlength=n + 1) <= max_hole_size
        out[i][torch.from_numpy(hole[labels]).to(out.device)] = 1.0
    return out


def bounding_box(mask: torch.Tensor, threshold: float = 0.5) -> list[tuple[int, int, int, int] | None]:
    """Per batch item, the box ``(x, y, width, height)`` of the pixels ``> threshold``.

    Returns:
        One box per item, or ``None`` for an empty mask.
    """
    m = to_batch_mask(mask) > threshold
    boxes: list[tuple[int, int, int, int] | None] = []
    for item in m:
        rows = torch.nonzero(item.any(dim=1)).flatten()
        cols = torch.nonzero(item.any(dim=0)).flatten()
        if rows.numel() == 0:
            boxes.append(None)
            continue
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
        boxes.append((x0, y0, x1 - x0 + 1, y1 - y0 + 1))
    return boxes


def union_box(mask: torch.Tensor, padding: int = 0, threshold: float = 0.5) -> tuple[int, int, int, int]:
    """One box ``(x, y, width, height)`` around every item's pixels ``> threshold``, grown by
    ``padding`` and clipped to the mask.

    Raises:
        ValidationError: empty mask or negative padding.
    """
    m = to_batch_mask(mask)
    if padding < 0:
        raise ValidationError(f"`padding` must be ≥ 0, got {padding}")
    boxes = [b for b in bounding_box(m, threshold) if b is not None]
    if not boxes:
        raise ValidationError(f"`mask` has no pixel above {threshold}; there is no box")
    h, w = m.shape[1:3]
    x0 = max(min(b[0] for b in boxes) - padding, 0)
    y0 = max(min(b[1] for b in boxes) - padding, 0)
    x1 = min(max(b[0] + b[2] for b in boxes) + padding, w)
    y1 = min(max(b[1] + b[3] for b in boxes) + padding, h)
    return x0, y0, x1 - x0, y1 - y0


def crop_to_mask(
    image: torch.Tensor, mask: torch.Tensor, padding: int = 0, threshold: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int, int, int]]:
    """Crop an image (and its mask) to :func:`union_box` of the mask.

    One box covers the whole batch, so the output stays a single tensor.

    Returns:
        ``(image_crop, mask_crop, (x, y, width, height))``.

    Raises:
        ValidationError: empty mask, negative padding, or mask and image sizes differ.
    """
    m = to_batch_mask(mask)
    if image.shape[1:3] != m.shape[1:3]:
        raise ValidationError(f"`mask` is {tuple(m.shape[1:3])} but `image` is {tuple(image.shape[1:3])} (H, W)")
    x, y, w, h = union_box(m, padding, threshold)
    return image[:, y : y + h, x : x + w].clone(), m[:, y : y + h, x : x + w].clone(), (x, y, w, h)


def composite(destination: torch.Tensor, source: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``destination·(1 − mask) + source·mask`` (batches broadcast; sizes must match).

    Raises:
        ValidationError: different sizes or channel counts.
    """
    m = to_batch_mask(mask).float()
    if destination.shape[1:] != source.shape[1:]:
        raise ValidationError(
            f"`source` {tuple(source.shape[1:])} and `destination` {tuple(destination.shape[1:])} differ (H, W, C)"
        )
    if m.shape[1:] != destination.shape[1:3]:
        raise ValidationError(f"`mask` is {tuple(m.shape[1:])} but the images are {tuple(destination.shape[1:3])} (H, W)")
    m = m.unsqueeze(-1).to(destination.device)
    return destination * (1.0 - m) + source.to(destination.device) * m


def replace_color(image: torch.Tensor, mask: torch.Tensor, color: Sequence[float], strength: float = 1.0) -> torch.Tensor:
    """Paint ``color`` over the masked area with ``strength`` (0..1) times the mask as opacity.

    Raises:
        ValidationError: bad colour, strength or sizes.
    """
    if len(color) != 3:
        raise ValidationError(f"`color` must be three numbers (R, G, B in 0..1), got {tuple(color)}")
    if not 0.0 <= strength <= 1.0:
        raise ValidationError(f"`strength` must be in 0..1, got {strength}")
    rgb = image[..., :3]
    fill = torch.tensor(list(color), dtype=image.dtype, device=image.device).expand_as(rgb)
    out = image.clone()
    out[..., :3] = composite(rgb, fill.expand(rgb.shape[0], -1, -1, -1), to_batch_mask(mask) * strength)
    return out


def roi_mask(
    width: int, height: int, x: int, y: int, roi_width: int, roi_height: int, shape: str = "rectangle", feather: int = 0
) -> torch.Tensor:
    """A ``[1, height, width]`` mask with 1 inside a rectangle or ellipse, 0 outside.

    ``feather`` > 0 softens the edge over that many pixels (inside the shape).

    Raises:
        ValidationError: non-positive sizes, unknown shape, or negative feather.
    """
    if min(width, height, roi_width, roi_height) < 1:
        raise ValidationError(
            f"sizes must be ≥ 1, got width={width} height={height} roi_width={roi_width} roi_height={roi_height}"
        )
    if shape not in ("rectangle", "ellipse"):
        raise ValidationError(f"`shape` must be 'rectangle' or 'ellipse', got {shape!r}")
    if feather < 0:
        raise ValidationError(f"`feather` must be ≥ 0, got {feather}")
    yy = torch.arange(height, dtype=torch.float32)[:, None] + 0.5
    xx = torch.arange(width, dtype=torch.float32)[None, :] + 0.5
    cx, cy, rx, ry = x + roi_width / 2, y + roi_height / 2, roi_width / 2, roi_height / 2
    if shape == "rectangle":
        inside = torch.minimum(rx - (xx - cx).abs(), ry - (yy - cy).abs())  # px to the edge
    else:
        r = torch.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
        inside = (1.0 - r) * min(rx, ry)
    m = (inside / feather).clamp(0.0, 1.0) if feather > 0 else (inside > 0).float()
    return m.unsqueeze(0)
