"""Video: link per-frame boxes into tracks by IoU, smooth them over time, one seed per track.

Matching is greedy by IoU (best pairs first); for faces that do not overlap each other it gives
the same links as an optimal assignment and needs no solver. Imports numpy only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from nodeloom.errors import ValidationError
from nodeloom.ops.detail.segs import box_iou

__all__ = ["Track", "link_tracks", "smooth_track", "track_seed"]

FloatBox = tuple[float, float, float, float]


@dataclass
class Track:
    """One object over time: ``boxes[frame]`` as detected and ``smoothed[frame]``."""

    track_id: int
    label: str
    boxes: dict[int, FloatBox] = field(default_factory=dict)
    confidences: dict[int, float] = field(default_factory=dict)
    smoothed: dict[int, FloatBox] = field(default_factory=dict)

    @property
    def last_frame(self) -> int:
        return max(self.boxes)


def link_tracks(
    frames: list[list[tuple[FloatBox, float, str]]],
    iou_threshold: float = 0.3,
    max_gap: int = 2,
    smooth_window: int = 5,
) -> list[Track]:
    """Link detections frame to frame (greedy on IoU, best pairs first, same label only).

    Args:
        frames: per frame, a list of ``(box, confidence, label)``.
        iou_threshold: a detection continues a track when their IoU is at least this.
        max_gap: frames a track may miss before it ends.
        smooth_window: frames averaged by :func:`smooth_track`.

    Returns:
        Tracks in order of first appearance, ids 0, 1, 2...

    Raises:
        ValidationError: ``iou_threshold`` outside (0, 1] or negative ``max_gap``.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValidationError(f"`iou_threshold` must be in (0, 1], got {iou_threshold}")
    if max_gap < 0:
        raise ValidationError(f"`max_gap` must be ≥ 0, got {max_gap}")
    tracks: list[Track] = []
    for f, dets in enumerate(frames):
        live = [t for t in tracks if f - t.last_frame <= max_gap + 1]
        pairs = sorted(
            (
                (box_iou(t.boxes[t.last_frame], box), i, j)
                for i, t in enumerate(live)
                for j, (box, _, label) in enumerate(dets)
                if label == t.label
            ),
            reverse=True,
        )
        used_tracks: set[int] = set()
        matched: set[int] = set()
        for iou, i, j in pairs:
            if iou < iou_threshold:
                break
            if i in used_tracks or j in matched:
                continue
            live[i].boxes[f], live[i].confidences[f] = dets[j][0], dets[j][1]
            used_tracks.add(i)
            matched.add(j)
        for j, (box, conf, label) in enumerate(dets):
            if j not in matched:
                tracks.append(Track(len(tracks), label, {f: box}, {f: conf}))
    for t in tracks:
        t.smoothed = smooth_track(t.boxes, smooth_window)
    return tracks


def smooth_track(boxes: dict[int, FloatBox], window: int = 5) -> dict[int, FloatBox]:
    """Centred moving average of box centre and size over ``window`` frames.

    Frames missing inside the track's span are filled by linear interpolation first, so
    the smoothed track covers every frame from its first to its last detection.
    """
    if not boxes:
        return {}
    frames = sorted(boxes)
    span = np.arange(frames[0], frames[-1] + 1)
    raw = np.array([[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]] for b in (boxes[f] for f in frames)])
    full = np.stack([np.interp(span, frames, raw[:, k]) for k in range(4)], axis=1)
    half = max(0, window // 2)
    out: dict[int, FloatBox] = {}
    for i, f in enumerate(span):
        lo, hi = max(0, i - half), min(len(span), i + half + 1)
        cx, cy, w, h = full[lo:hi].mean(axis=0)
        out[int(f)] = (float(cx - w / 2), float(cy - h / 2), float(cx + w / 2), float(cy + h / 2))
    return out


def track_seed(seed: int, track_id: int) -> int:
    """The seed every frame of track ``track_id`` uses."""
    digest = hashlib.blake2b(f"{int(seed)}:track:{int(track_id)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & ((1 << 63) - 1)
