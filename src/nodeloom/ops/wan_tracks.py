"""Point tracks for Wan-Move style motion control: parse, generate, join and draw them.

A TRACKS value is ``{"track_path": float32 [T, N, 2], "track_visibility": bool [T, N]}``:
``T`` frames, ``N`` points, pixel ``(x, y)`` coordinates in the video's frame. Owns
:func:`parse_track_coords`, :func:`tracks_from_coords`, :func:`generate_tracks`,
:func:`concat_tracks` and :func:`draw_tracks`. Plain functions on tensors: no nodes, no engine.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from nodeloom.errors import ValidationError

__all__ = ["EASINGS", "TRACK_COLORS", "check_tracks", "concat_tracks", "draw_tracks", "generate_tracks",
           "mask_visibility", "parse_track_coords", "tracks_from_coords"]

#: how the position along the path advances with the frame index (u in 0..1)
EASINGS = {
    "linear": lambda u: u,
    "ease_in": lambda u: u * u,
    "ease_out": lambda u: 1.0 - (1.0 - u) * (1.0 - u),
    "ease_in_out": lambda u: u * u * (3.0 - 2.0 * u),
    "constant": lambda u: 0.0 * u,
}

#: the repeating palette tracks are drawn with (RGB, 0..1): ComfyUI's five colours
TRACK_COLORS = tuple(tuple(c / 255.0 for c in rgb) for rgb in
                     ((102, 153, 255), (0, 255, 255), (255, 255, 0), (255, 102, 204), (0, 255, 0)))


def parse_track_coords(text: str) -> list[list[tuple[float, float]]]:
    """Tracks from a spline editor's JSON: a list of tracks, each a list of ``{"x", "y"}`` points.

    One bare track (a list of points) is read as a single track; single quotes are accepted
    (editors often write Python reprs).

    Raises:
        ValidationError: the text is not JSON of that shape, a point lacks a number ``x``/``y``, no
            track is given, or tracks differ in length.
    """
    try:
        data = json.loads(text.replace("'", '"')) if text.strip() else []
    except json.JSONDecodeError as exc:
        raise ValidationError(f"`track_coords` is not valid JSON ({exc.msg} at character {exc.pos})") from exc
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = [data]
    if not isinstance(data, list) or not data or not all(isinstance(t, list) and t for t in data):
        raise ValidationError("`track_coords` must be a non-empty JSON list of tracks, each a non-empty list of "
                         '{"x": ..., "y": ...} points')
    tracks = []
    for index, track in enumerate(data):
        points = []
        for frame, point in enumerate(track):
            if not (isinstance(point, dict) and all(isinstance(point.get(k), (int, float))
                                                    and not isinstance(point.get(k), bool) for k in ("x", "y"))):
                raise ValidationError(f"`track_coords`: track {index} frame {frame} must be an object with number "
                                 f"`x` and `y`, got {point!r}")
            points.append((float(point["x"]), float(point["y"])))
        tracks.append(points)
    lengths = sorted({len(t) for t in tracks})
    if len(lengths) > 1:
        raise ValidationError(f"`track_coords`: every track needs the same number of frames, got lengths {lengths}")
    return tracks


def mask_visibility(track_mask: torch.Tensor | None, frames: int, count: int, name: str = "track_mask") -> torch.Tensor:
    """Per-frame visibility ``bool [frames, count]``: a frame is visible where the mask has any
    nonzero pixel (all frames without a mask; a one-frame mask applies to every frame).

    Raises:
        ValidationError: the mask is not ``[F,H,W]`` or has a frame count other than 1 or ``frames``.
    """
    if track_mask is None:
        return torch.ones(frames, count, dtype=torch.bool)
    mask = track_mask if track_mask.ndim == 3 else track_mask.unsqueeze(0) if track_mask.ndim == 2 else None
    if mask is None:
        raise ValidationError(f"`{name}` must be a MASK [frames, height, width], got shape {tuple(track_mask.shape)}")
    if mask.shape[0] not in (1, frames):
        raise ValidationError(f"`{name}` has {mask.shape[0]} frames; the tracks have {frames} (give 1 or {frames})")
    visible = (mask != 0).flatten(1).any(dim=1).cpu()
    return visible.expand(frames).unsqueeze(1).expand(frames, count).clone()


def tracks_from_coords(text: str, track_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """A TRACKS value from :func:`parse_track_coords` text and an optional visibility mask."""
    tracks = parse_track_coords(text)
    path = torch.tensor(tracks, dtype=torch.float32).permute(1, 0, 2).contiguous()  # [T, N, 2]
    frames, count = int(path.shape[0]), int(path.shape[1])
    return {"track_path": path, "track_visibility": mask_visibility(track_mask, frames, count)}


def generate_tracks(width: int, height: int, start: tuple[float, float], end: tuple[float, float], num_frames: int,
                    num_tracks: int, track_spread: float, mid: tuple[float, float] | None = None,
                    interpolation: str = "linear", track_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """``num_tracks`` parallel point tracks along a straight line or a quadratic Bezier curve.

    Points are given normalised (0..1) and worked in pixels. ``interpolation`` (one of
    :data:`EASINGS`) maps frame ``f`` of ``num_frames`` to the path parameter. The path runs
    from ``start`` to ``end``, bent towards ``mid`` when it is given. Track ``i`` sits
    ``(i - (num_tracks - 1) / 2) * track_spread * (width + height) / 2`` pixels off the path,
    along its normal: the path's direction turned 90° (the chord's for a straight line, the
    curve's tangent for a Bezier), or along x where that direction vanishes.

    Raises:
        ValidationError: an unknown ``interpolation`` or a count below 1.
    """
    if interpolation not in EASINGS:
        raise ValidationError(f"`interpolation` must be one of {list(EASINGS)}, got {interpolation!r}")
    if num_frames < 1 or num_tracks < 1:
        raise ValidationError(f"`num_frames` and `num_tracks` must be ≥ 1, got {num_frames} and {num_tracks}")
    scale = np.array([width, height], dtype=np.float64)
    p0, p2 = np.asarray(start, dtype=np.float64) * scale, np.asarray(end, dtype=np.float64) * scale
    u = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)
    u = np.asarray(EASINGS[interpolation](u), dtype=np.float64)[:, None]
    if mid is None:
        points = p0 + (p2 - p0) * u
        tangents = np.broadcast_to(p2 - p0, points.shape)
    else:
        p1 = np.asarray(mid, dtype=np.float64) * scale
        points = (1 - u) ** 2 * p0 + 2 * (1 - u) * u * p1 + u**2 * p2
        tangents = 2 * (1 - u) * (p1 - p0) + 2 * u * (p2 - p1)
    lengths = np.linalg.norm(tangents, axis=1, keepdims=True)
    turned = np.stack([-tangents[:, 1], tangents[:, 0]], axis=1)
    normal = np.where(lengths > 0, turned / np.where(lengths > 0, lengths, 1), np.array([1.0, 0.0]))
    offsets = (np.arange(num_tracks) - (num_tracks - 1) / 2.0) * track_spread * (width + height) / 2.0
    path = points[:, None, :] + normal[:, None, :] * offsets[None, :, None]  # [T, N, 2]
    return {"track_path": torch.from_numpy(path.astype(np.float32)),
            "track_visibility": mask_visibility(track_mask, num_frames, num_tracks)}


def check_tracks(tracks: Any, name: str = "tracks") -> tuple[torch.Tensor, torch.Tensor]:
    """``(path [T,N,2] float, visibility [T,N] bool)`` of a TRACKS value (all visible when absent).

    Raises:
        ValidationError: not a dict with a ``track_path`` of shape ``[T, N, 2]`` and a matching visibility.
    """
    path = tracks.get("track_path") if isinstance(tracks, dict) else None
    if not isinstance(path, torch.Tensor) or path.ndim != 3 or path.shape[-1] != 2:
        got = tuple(path.shape) if isinstance(path, torch.Tensor) else type(tracks).__name__
        raise ValidationError(f"`{name}` must be TRACKS with a `track_path` of shape [frames, points, 2], got {got}")
    visibility = tracks.get("track_visibility")
    if visibility is None:
        visibility = torch.ones(path.shape[:2], dtype=torch.bool)
    visibility = torch.as_tensor(visibility)
    try:
        visibility = visibility.to(torch.bool).expand(path.shape[:2])
    except RuntimeError as exc:
        raise ValidationError(f"`{name}`: `track_visibility` {tuple(visibility.shape)} does not fit a `track_path` of "
                         f"{tuple(path.shape[:2])}") from exc
    return path, visibility


def concat_tracks(first: Any, second: Any) -> dict[str, torch.Tensor]:
    """The points of both TRACKS values in one (``first``'s points, then ``second``'s).

    Raises:
        ValidationError: either is not TRACKS, or they cover different frame counts.
    """
    path1, vis1 = check_tracks(first, "tracks_1")
    path2, vis2 = check_tracks(second, "tracks_2")
    if path1.shape[0] != path2.shape[0]:
        raise ValidationError(f"`tracks_1` has {path1.shape[0]} frames and `tracks_2` {path2.shape[0]}; "
                         "concatenated tracks need the same frame count")
    return {"track_path": torch.cat([path1, path2.to(path1.device, path1.dtype)], dim=1),
            "track_visibility": torch.cat([vis1, vis2.to(vis1.device)], dim=1)}


def _over(canvas: np.ndarray, color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return canvas * (1 - alpha[..., None]) + color * alpha[..., None]


def _trail_stamps(trail: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points about a pixel apart along ``trail`` (oldest → current position) and each one's
    ratio of the way from the current end (0) back to the oldest (1), oldest first."""
    newest_first = trail[::-1]
    seg = np.diff(newest_first, axis=0)
    lengths = np.linalg.norm(seg, axis=1)
    total = float(lengths.sum())
    if total <= 0:
        return np.zeros((0, 2)), np.zeros(0)
    counts = np.maximum(lengths.astype(np.int64), 1)
    index = np.repeat(np.arange(len(seg)), counts)
    within = (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)) / counts[index]
    points = newest_first[index] + seg[index] * within[:, None]
    ratios = (np.concatenate([[0.0], np.cumsum(lengths)[:-1]])[index] + within * lengths[index]) / total
    return points[::-1], ratios[::-1]


def _draw_trail(rgb: np.ndarray, alpha: np.ndarray, trail: np.ndarray, color: tuple[float, ...], line_width: int,
                opacity: float) -> None:
    """Stamp one point's trail into the layer: fading in alpha and width from ``opacity`` and
    ``line_width`` at the current end to nothing and 1 px at the oldest; newer stamps cover older."""
    import cv2

    points, ratios = _trail_stamps(trail)
    for (x, y), ratio in zip(points.astype(np.int64).tolist(), ratios.tolist(), strict=True):
        radius = max(int(line_width * (1 - ratio)), 1) // 2
        cv2.circle(rgb, (x, y), radius, color, -1, cv2.LINE_8)
        cv2.circle(alpha, (x, y), radius, (1 - ratio) * opacity, -1, cv2.LINE_8)


def draw_tracks(images: torch.Tensor, tracks: Any, line_resolution: int, circle_size: int, opacity: float,
                line_width: int) -> torch.Tensor:
    """``images`` with the tracks drawn as ComfyUI's visualiser does: at each frame a dot of
    radius ``circle_size`` at every visible point (alpha ``opacity``), then each such point's
    trail over the previous ``line_resolution`` frames, fading from ``line_width`` px and
    ``opacity`` at the point to 1 px and nothing at its oldest end. Point ``n`` uses
    :data:`TRACK_COLORS` ``[n % 5]``; dots, then trails, are each one layer blended once.

    The output has one frame per track frame; frame ``t`` is drawn on ``images[t % B]``
    (a single start image is repeated).
    """
    import cv2  # opencv-python-headless: a core dependency, imported where it is used

    path, visibility = check_tracks(tracks)
    path_np = path.detach().cpu().double().numpy()
    visible = visibility.cpu().numpy()
    frames, count = path_np.shape[:2]
    base = images.detach().cpu().float().numpy()
    height, width = base.shape[1:3]
    out = np.empty((frames, *base.shape[1:]), dtype=np.float32)
    for t in range(frames):
        source = base[t % base.shape[0]]
        canvas = source[..., :3].copy()
        shown = [n for n in range(count) if visible[t, n] and np.isfinite(path_np[t, n]).all()]
        if shown:
            dots_rgb, dots_alpha = np.zeros((height, width, 3), np.uint8), np.zeros((height, width), np.uint8)
            for n in shown:
                centre = tuple(int(v) for v in np.round(path_np[t, n]))
                color = tuple(int(round(c * 255)) for c in TRACK_COLORS[n % len(TRACK_COLORS)])
                cv2.circle(dots_rgb, centre, circle_size, color, -1, cv2.LINE_AA)
                cv2.circle(dots_alpha, centre, circle_size, 255, -1, cv2.LINE_AA)
            canvas = _over(canvas, dots_rgb.astype(np.float32) / 255.0, dots_alpha.astype(np.float32) / 255.0 * opacity)
            trail_rgb, trail_alpha = np.zeros((height, width, 3), np.float32), np.zeros((height, width), np.float32)
            for n in shown:
                trail = path_np[max(t - line_resolution, 0):t + 1, n]
                if len(trail) > 1 and np.isfinite(trail).all():
                    _draw_trail(trail_rgb, trail_alpha, trail, TRACK_COLORS[n % len(TRACK_COLORS)], line_width, opacity)
            canvas = _over(canvas, trail_rgb, trail_alpha)
        out[t] = np.concatenate([canvas, source[..., 3:]], axis=-1) if source.shape[-1] > 3 else canvas
    return torch.from_numpy(out).clamp_(0.0, 1.0)
