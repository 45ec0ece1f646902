"""Films made of shots: keeping shots consistent, joining them, and reporting drift for the whole film.

Owns splitting a frame sequence into shots, the frame smoother behind ``FrameSmoother``
(colour anchoring of each shot to the previous shot's last frames, then the existing
deflicker and flow smoothing within each shot — ``ops.drift_fix``), assembling shots with
cuts and cross-fades, the cross-shot colour jump (CIEDE2000 between the mean colours either
side of a boundary) and a whole-film drift report (``ops.drift`` per shot, placed on the
film's timeline). Numpy only; no nodes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from nodeloom.errors import ValidationError
from nodeloom.ops.drift import measure_drift
from nodeloom.ops.drift_color import delta_e_2000, lab_to_rgb, rgb_to_lab
from nodeloom.ops.drift_fix import color_anchor, deflicker, flow_smooth

__all__ = [
    "assemble_shots",
    "cross_shot_jumps",
    "film_report",
    "parse_shot_lengths",
    "parse_transitions",
    "smooth_shots",
    "split_shots",
]

#: the grade that anchors a shot never stretches a channel's spread by more than this factor
MAX_SPREAD_RATIO = 2.0


def parse_shot_lengths(text: str) -> list[int]:
    """``"48, 24, 72"`` → ``[48, 24, 72]``.

    Raises:
        ValidationError: an item that is not a positive whole number.
    """
    items = [t for t in re.split(r"[,\s;]+", text.strip()) if t]
    try:
        lengths = [int(t) for t in items]
    except ValueError:
        raise ValidationError(f"`shot_frames` must be whole numbers separated by commas, got `{text}`") from None
    if any(n < 1 for n in lengths):
        raise ValidationError(f"every shot needs at least 1 frame, got `{text}`")
    return lengths


def split_shots(frames: np.ndarray, lengths: Sequence[int]) -> list[np.ndarray]:
    """Cut ``[N,H,W,3]`` frames into shots of ``lengths`` frames (they must add up to N).

    Raises:
        ValidationError: the lengths do not add up to the number of frames.
    """
    if not lengths:
        return [frames]
    if sum(lengths) != len(frames):
        raise ValidationError(f"the shot lengths add up to {sum(lengths)} frames but there are {len(frames)} "
                              f"(shots: {list(lengths)})")
    bounds = np.cumsum([0, *lengths])
    return [frames[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _mean_lab(frames: np.ndarray) -> np.ndarray:
    return rgb_to_lab(np.asarray(frames, np.float32)[..., :3]).reshape(-1, 3).mean(axis=0)


def _lab_stats(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lab = rgb_to_lab(np.asarray(frames, np.float32)[..., :3]).reshape(-1, 3)
    return lab.mean(axis=0), lab.std(axis=0) + 1e-6


def _anchor_grade(clip: np.ndarray, reference: np.ndarray, k: int, strength: float) -> np.ndarray:
    """One colour grade for the whole shot: its first ``k`` frames' Lab statistics → the reference's.

    The same transform is applied to every frame, so the shot's own changes over time stay.
    """
    mu_h, sd_h = _lab_stats(clip[:k])
    mu_r, sd_r = _lab_stats(reference)
    ratio = np.clip(sd_r / sd_h, 1.0 / MAX_SPREAD_RATIO, MAX_SPREAD_RATIO)
    out = np.empty_like(clip)
    for i, frame in enumerate(clip):
        lab = rgb_to_lab(frame[..., :3])
        graded = lab_to_rgb((lab - mu_h) * ratio + mu_r).astype(np.float32)
        out[i] = np.clip(frame[..., :3] + (graded - frame[..., :3]) * strength, 0.0, 1.0)
    return out


def smooth_shots(
    clips: Sequence[np.ndarray],
    *,
    anchor_frames: int = 4,
    anchor_strength: float = 1.0,
    within_shot_strength: float = 0.0,
    deflicker_size: int = 0,
    deflicker_mode: str = "am",
    flow_alpha: float = 0.0,
    flow_method: str = "dis_medium",
) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """Make shots consistent with each other and steady within themselves.

    For every shot after the first, one colour grade maps the Lab mean and spread of its first
    ``anchor_frames`` frames onto those of the previous (already smoothed) shot's last
    ``anchor_frames`` frames; then, within the shot, colours may be pulled toward its first
    frame (``within_shot_strength``), brightness evened out (``deflicker_size`` ≥ 2) and
    frames smoothed along optical flow (``flow_alpha`` > 0). Nothing crosses a cut except
    the colour anchor.

    Args:
        clips: the shots, each ``[n,H,W,3]`` float in 0..1.
        anchor_frames: frames either side of a boundary whose colours are matched.
        anchor_strength: 0 = no cross-shot anchoring, 1 = full.
        within_shot_strength: 0..1, colour anchoring of each frame to its shot's first frame.
        deflicker_size: window of ``ops.drift_fix.deflicker`` (0 = off).
        deflicker_mode: its averaging mode.
        flow_alpha: weight of ``ops.drift_fix.flow_smooth`` (0 = off).
        flow_method: optical flow method.

    Returns:
        ``(smoothed clips, per-shot notes)``; a note gives the ΔE00 jump into the shot before
        and after anchoring.
    """
    if anchor_frames < 1:
        raise ValidationError(f"`anchor_frames` must be ≥ 1, got {anchor_frames}")
    for name, value in (("anchor_strength", anchor_strength), ("within_shot_strength", within_shot_strength)):
        if not 0.0 <= value <= 1.0:
            raise ValidationError(f"`{name}` must be within 0..1, got {value}")
    if deflicker_size and not 2 <= deflicker_size <= 129:
        raise ValidationError(f"`deflicker_size` must be 0 (off) or within 2..129, got {deflicker_size}")
    out: list[np.ndarray] = []
    notes: list[dict[str, Any]] = []
    for i, raw in enumerate(clips):
        clip = np.asarray(raw, np.float32)[..., :3]
        note: dict[str, Any] = {"shot": i + 1, "frames": len(clip)}
        if out and anchor_strength > 0:
            reference = out[-1][-anchor_frames:]
            note["jump_before"] = _jump(reference, clip[:anchor_frames])
            clip = _anchor_grade(clip, reference, anchor_frames, anchor_strength)
            note["jump_after"] = _jump(reference, clip[:anchor_frames])
        if within_shot_strength > 0 and len(clip) > 1:
            clip = color_anchor(clip, 0, strength=within_shot_strength)
        if deflicker_size and len(clip) > 1:
            clip = deflicker(clip, size=deflicker_size, mode=deflicker_mode)
        if flow_alpha > 0 and len(clip) > 1:
            clip = flow_smooth(clip, alpha=flow_alpha, method=flow_method)
        out.append(clip)
        notes.append(note)
    return out, notes


def _jump(before: np.ndarray, after: np.ndarray) -> float:
    return round(float(delta_e_2000(_mean_lab(before), _mean_lab(after))), 4)


def cross_shot_jumps(clips: Sequence[np.ndarray], frames: int = 4) -> list[float]:
    """ΔE00 between the mean colour of each shot's last ``frames`` frames and the next shot's first ones."""
    return [_jump(a[-frames:], b[:frames]) for a, b in zip(clips[:-1], clips[1:])]


def parse_transitions(text: str, boundaries: int, default_frames: int = 0) -> list[int]:
    """Cross-fade length at each boundary (0 = a cut).

    ``text`` lists one item per boundary — ``cut``, ``fade 12`` / ``crossfade 12`` /
    ``dissolve 12`` or a bare number — separated by commas; an empty text uses
    ``default_frames`` everywhere.

    Raises:
        ValidationError: an unknown item or the wrong number of items.
    """
    if not text.strip():
        return [default_frames] * boundaries
    items = [t.strip().lower() for t in text.split(",")]
    if len(items) != boundaries:
        raise ValidationError(f"`transitions` needs one item per boundary ({boundaries}), got {len(items)}: `{text}`")
    fades = []
    for item in items:
        if item in ("cut", "0"):
            fades.append(0)
        elif m := re.fullmatch(r"(?:(?:cross)?fade|dissolve)?\s*(\d+)(?:\s*f)?", item):
            fades.append(int(m[1]))
        else:
            raise ValidationError(f"transition `{item}` must be `cut`, `fade N`, `dissolve N` or a frame count")
    return fades


def assemble_shots(clips: Sequence[np.ndarray], fades: Sequence[int]) -> tuple[np.ndarray, list[int]]:
    """Join shots; a fade of ``n`` frames overlaps the end of one shot with the start of the next.

    Returns:
        ``(frames [N,H,W,3], the film frame where each shot starts)``.

    Raises:
        ValidationError: shots of different sizes, or a fade longer than a shot it joins.
    """
    if not clips:
        raise ValidationError("there are no shots to assemble")
    size = clips[0].shape[1:3]
    for i, c in enumerate(clips):
        if c.shape[1:3] != size:
            raise ValidationError(f"shot {i + 1} is {c.shape[2]}×{c.shape[1]} but shot 1 is {size[1]}×{size[0]}")
    if len(fades) != len(clips) - 1:
        raise ValidationError(f"{len(clips)} shots need {len(clips) - 1} transitions, got {len(fades)}")
    film = [np.asarray(clips[0], np.float32)]
    starts, length = [0], len(clips[0])
    for i, (fade, clip) in enumerate(zip(fades, clips[1:]), start=1):
        if fade > min(len(film[-1]), len(clip)):
            raise ValidationError(f"a {fade}-frame fade into shot {i + 1} is longer than a shot it joins "
                                  f"({len(clips[i - 1])} and {len(clip)} frames)")
        clip = np.asarray(clip, np.float32)
        shot_length = len(clip)
        if fade:
            w = (np.arange(1, fade + 1, dtype=np.float32) / (fade + 1))[:, None, None, None]
            tail = film[-1][-fade:]
            film[-1] = film[-1][:-fade]
            film.append(tail * (1 - w) + clip[:fade] * w)
            clip = clip[fade:]
        starts.append(length - fade)
        length += shot_length - fade
        film.append(clip)
    return np.concatenate([f for f in film if len(f)]), starts


def film_report(clips: Sequence[np.ndarray], starts: Sequence[int], *, anchor_frames: int = 4,
                include_warp: bool = True, max_side: int = 256,
                thresholds: dict[str, float] | None = None) -> dict[str, Any]:
    """Drift of a whole film: each shot measured on its own, placed on the film's timeline.

    Curves (``warping_error``, ``flicker``, ``luma_jump``, ``delta_e`` against the shot's
    first frame) restart at every shot, so a cut is never mistaken for drift; flagged
    segments carry film frame numbers and their shot; ``cross_shot_delta_e`` gives the colour
    jump at each boundary.
    """
    total = starts[-1] + len(clips[-1]) if starts else 0
    curves: dict[str, np.ndarray] = {}
    flagged: dict[str, list[dict[str, Any]]] = {}
    for shot, (clip, start) in enumerate(zip(clips, starts), start=1):
        if len(clip) < 2:
            continue
        rep = measure_drift(clip, include_warp=include_warp, max_side=max_side, thresholds=thresholds)
        for name, curve in rep.curves.items():
            full = curves.setdefault(name, np.zeros(total, np.float64))
            end = min(total, start + len(curve))
            full[start:end] = np.maximum(full[start:end], curve[: end - start])
        for name, segs in rep.flagged.items():
            flagged.setdefault(name, []).extend(
                {**s, "start": s["start"] + start, "end": s["end"] + start, "peak_frame": s["peak_frame"] + start,
                 "shot": shot} for s in segs)
    jumps = cross_shot_jumps(clips, anchor_frames)
    summary = {f"mean_{k}": float(v[v > 0].mean()) if (v > 0).any() else 0.0 for k, v in curves.items()}
    summary.update({"max_cross_shot_delta_e": max(jumps, default=0.0),
                    "mean_cross_shot_delta_e": float(np.mean(jumps)) if jumps else 0.0})
    return {"frames": total, "shots": len(clips), "shot_starts": list(starts), "summary": summary,
            "cross_shot_delta_e": jumps, "flagged": flagged,
            "curves": {k: [round(float(x), 5) for x in v] for k, v in curves.items()}}
