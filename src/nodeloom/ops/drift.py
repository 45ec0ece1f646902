"""Temporal drift metrics for frame sequences: warping error, flicker, colour drift.

Owns the per-frame curves and their summaries:

* warping error (Lai et al., ECCV 2018): frame t−1 warped onto frame t by optical flow
  (from the frames, or from a source video they were made from), squared error averaged
  over the pixels that the forward–backward check finds visible in both;
* temporal flicker (VBench): mean absolute difference of consecutive frames in 0..255,
  scored as ``(255 − mean) / 255`` (1 = no change at all);
* luminance jumps: how far each frame's mean luma sits from the moving median around it
  (isolates the flickering frame itself);
* colour drift: mean CIEDE2000 of each frame against an anchor frame;

and flags the segments where a curve crosses its threshold. numpy + OpenCV; the plot
uses Pillow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nodeloom.errors import ValidationError, require
from nodeloom.ops.drift_color import anchor_image, delta_e_2000, rgb_to_lab
from nodeloom.ops.flow import compute_flow, occlusion_mask, warp_by_flow

__all__ = [
    "DEFAULT_THRESHOLDS",
    "DriftReport",
    "delta_e_curve",
    "flag_segments",
    "flicker_curve",
    "luma_jump_curve",
    "measure_drift",
    "warping_error_curve",
]

#: curve → threshold above which frames are flagged (units: MSE×1000, 0..255, ΔE00).
#: The raw ``flicker`` curve is flagged only when a threshold is given: on a moving
#: camera every frame differs from the last, so it has no universal cut-off.
DEFAULT_THRESHOLDS: dict[str, float] = {"warping_error": 4.0, "luma_jump": 4.0, "delta_e": 3.0}
_FLAGGABLE = ("warping_error", "flicker", "luma_jump", "delta_e")
_LUMA = np.array([0.299, 0.587, 0.114])


def _check(frames: np.ndarray, name: str = "frames") -> np.ndarray:
    arr = np.asarray(frames, dtype=np.float32)
    if arr.ndim != 4 or arr.shape[-1] < 3 or arr.shape[0] < 1:
        raise ValidationError(f"`{name}` must be RGB frames [N,H,W,3], got shape {arr.shape}")
    return arr[..., :3]


def _shrink(frames: np.ndarray, max_side: int) -> np.ndarray:
    """Area-resize frames so the longer side is at most ``max_side`` (0 keeps them)."""
    if max_side < 0:
        raise ValidationError(f"`max_side` must be ≥ 0, got {max_side}")
    h, w = frames.shape[1:3]
    if not max_side or max(h, w) <= max_side:
        return frames
    cv2 = require("cv2", "video")
    scale = max_side / max(h, w)
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


def _downsample(frame: np.ndarray, max_side: int) -> np.ndarray:
    step = int(np.ceil(max(frame.shape[:2]) / max_side))
    return frame[::step, ::step] if step > 1 else frame


def warping_error_curve(frames: np.ndarray, source: np.ndarray | None = None, method: str = "dis_medium") -> tuple[np.ndarray, np.ndarray]:
    """Lai et al.'s warping error of each frame against the previous one.

    For each t ≥ 1, flow between frames t and t−1 (computed on ``source`` when given)
    warps frame t−1 onto t; the error is the mean over visible pixels of the squared
    RGB difference (channel mean, values in 0..1), reported ×1000.

    Args:
        frames: ``[N,H,W,3]`` float in 0..1.
        source: optional ``[N,H,W,3]`` frames to take the motion from.
        method: see ``ops.flow.FLOW_METHODS``.

    Returns:
        ``(errors [N], visible_fraction [N])``; both 0 / 1 at frame 0.
    """
    v = _check(frames)
    motion = v if source is None else _check(source, "source")
    if motion.shape != v.shape:
        raise ValidationError(f"`source` must match `frames` in shape, got {motion.shape} vs {v.shape}")
    err, visible = np.zeros(len(v)), np.ones(len(v))
    for t in range(1, len(v)):
        fwd = compute_flow(motion[t], motion[t - 1], method)  # t → t−1
        bwd = compute_flow(motion[t - 1], motion[t], method)
        mask = occlusion_mask(fwd, bwd)
        warped = warp_by_flow(v[t - 1], fwd)
        sq = np.mean((v[t] - warped) ** 2, axis=-1)
        total = mask.sum()
        visible[t] = total / mask.size
        err[t] = 1000.0 * float((sq * mask).sum() / total) if total > 0 else 0.0
    return err, visible


def flicker_curve(frames: np.ndarray) -> np.ndarray:
    """VBench's per-pair flicker: mean |frame t − frame t−1| in 0..255 (0 at frame 0)."""
    v = _check(frames)
    q = np.round(np.clip(v, 0, 1) * 255.0)
    out = np.zeros(len(v))
    out[1:] = np.abs(q[1:] - q[:-1]).mean(axis=(1, 2, 3))
    return out


def luma_jump_curve(frames: np.ndarray, window: int = 5) -> np.ndarray:
    """|mean luma − moving median of mean luma| per frame, in 0..255.

    A brightness flash on one frame shows up on that frame only (the median ignores it).
    """
    if window < 3 or window % 2 == 0:
        raise ValidationError(f"`window` must be an odd number ≥ 3, got {window}")
    luma = _check(frames) @ _LUMA.astype(np.float32)
    means = luma.mean(axis=(1, 2)) * 255.0
    half = window // 2
    padded = np.pad(means, half, mode="edge")
    med = np.array([np.median(padded[i : i + window]) for i in range(len(means))])
    return np.abs(means - med)


def delta_e_curve(frames: np.ndarray, anchor: int | np.ndarray = 0, *, mode: str = "mean_color", max_side: int = 256) -> np.ndarray:
    """CIEDE2000 of each frame against the anchor (a frame index or an image).

    Args:
        frames: ``[N,H,W,3]`` float in 0..1.
        anchor: frame index, or an ``[H,W,3]`` reference image.
        mode: ``mean_color`` compares each frame's mean Lab colour with the anchor's (a
            colour cast, blind to motion — the default); ``pixelwise`` averages per-pixel
            ΔE00 (only meaningful when the camera and scene hold still; same size needed).
        max_side: frames are compared on a grid of at most this many pixels per side.

    Returns:
        float64 ``[N]``.
    """
    v = _check(frames)
    if mode not in ("mean_color", "pixelwise"):
        raise ValidationError(f"`mode` must be `mean_color` or `pixelwise`, got `{mode}`")
    ref = anchor_image(v, anchor)
    if mode == "pixelwise" and ref.shape != v.shape[1:]:
        raise ValidationError(f"a pixelwise anchor must be {v.shape[2]}×{v.shape[1]}, got {ref.shape[1]}×{ref.shape[0]}")
    ref_lab = rgb_to_lab(_downsample(ref, max_side))
    if mode == "mean_color":
        ref_mean = ref_lab.reshape(-1, 3).mean(axis=0)
        means = np.stack([rgb_to_lab(_downsample(f, max_side)).reshape(-1, 3).mean(axis=0) for f in v])
        return np.asarray(delta_e_2000(means, ref_mean[None]), dtype=np.float64)
    return np.array([float(delta_e_2000(ref_lab, rgb_to_lab(_downsample(f, max_side))).mean()) for f in v])


def flag_segments(curve: Sequence[float] | np.ndarray, threshold: float) -> list[dict[str, float]]:
    """Runs of consecutive frames whose value exceeds ``threshold``.

    Returns:
        ``[{"start": i, "end": j, "peak": max, "peak_frame": k}]`` with ``end`` inclusive.
    """
    values = np.asarray(curve, dtype=np.float64)
    above = values > threshold
    segments = []
    i = 0
    while i < len(values):
        if above[i]:
            j = i
            while j + 1 < len(values) and above[j + 1]:
                j += 1
            k = i + int(np.argmax(values[i : j + 1]))
            segments.append({"start": i, "end": j, "peak": round(float(values[k]), 4), "peak_frame": k})
            i = j + 1
        else:
            i += 1
    return segments


@dataclass
class DriftReport:
    """Curves, summary numbers and flagged segments for one sequence."""

    curves: dict[str, np.ndarray]
    thresholds: dict[str, float]
    anchor: int
    summary: dict[str, float] = field(default_factory=dict)
    flagged: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    def flagged_frames(self, curve: str) -> list[int]:
        """Every frame index inside a flagged segment of ``curve``."""
        return [f for s in self.flagged.get(curve, []) for f in range(int(s["start"]), int(s["end"]) + 1)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "frames": len(next(iter(self.curves.values()))),
            "anchor": self.anchor,
            "summary": {k: round(float(v), 6) for k, v in self.summary.items()},
            "thresholds": dict(self.thresholds),
            "flagged": self.flagged,
            "curves": {k: [round(float(x), 5) for x in v] for k, v in self.curves.items()},
        }


def measure_drift(
    frames: np.ndarray,
    *,
    source: np.ndarray | None = None,
    anchor: int = 0,
    delta_e_mode: str = "mean_color",
    thresholds: Mapping[str, float] | None = None,
    flow_method: str = "dis_medium",
    include_warp: bool = True,
    max_side: int = 0,
) -> DriftReport:
    """All drift curves, their summaries and flagged segments.

    Summary keys: ``warping_error`` (mean over t ≥ 1), ``temporal_flicker_score`` (VBench,
    1 = perfect), ``mean_flicker`` (0..255), ``max_luma_jump``, ``mean_delta_e``,
    ``max_delta_e``. A static sequence scores warping 0, flicker score 1, ΔE 0.

    Args:
        frames: ``[N,H,W,3]`` float in 0..1 (N ≥ 2).
        source: frames to take motion from for the warping error.
        anchor: reference frame for colour drift.
        delta_e_mode: see :func:`delta_e_curve`.
        thresholds: overrides for :data:`DEFAULT_THRESHOLDS`.
        flow_method: optical flow method.
        include_warp: skip the (slowest) warping error when False.
        max_side: measure on frames area-resized so their longer side is at most this
            (0 = full resolution); the warping error depends on resolution, so compare
            numbers measured at the same size.

    Returns:
        The report.
    """
    v = _shrink(_check(frames), max_side)
    if source is not None:
        source = _shrink(_check(source, "source"), max_side)
    if len(v) < 2:
        raise ValidationError(f"drift needs at least 2 frames, got {len(v)}")
    thr = dict(DEFAULT_THRESHOLDS)
    for k, val in (thresholds or {}).items():
        if k not in _FLAGGABLE:
            raise ValidationError(f"unknown threshold `{k}`; known: {list(_FLAGGABLE)}")
        thr[k] = float(val)
    curves: dict[str, np.ndarray] = {}
    if include_warp:
        curves["warping_error"], curves["visible_fraction"] = warping_error_curve(v, source, flow_method)
    curves["flicker"] = flicker_curve(v)
    curves["luma_jump"] = luma_jump_curve(v, 5 if len(v) >= 5 else 3)
    curves["delta_e"] = delta_e_curve(v, anchor, mode=delta_e_mode)
    mean_flicker = float(curves["flicker"][1:].mean())
    summary = {
        "temporal_flicker_score": (255.0 - mean_flicker) / 255.0,
        "mean_flicker": mean_flicker,
        "max_luma_jump": float(curves["luma_jump"].max()),
        "mean_delta_e": float(curves["delta_e"].mean()),
        "max_delta_e": float(curves["delta_e"].max()),
    }
    if include_warp:
        summary["warping_error"] = float(curves["warping_error"][1:].mean())
    flagged = {k: flag_segments(curves[k], thr[k]) for k in thr if k in curves}
    return DriftReport(curves=curves, thresholds=thr, anchor=anchor, summary=summary, flagged=flagged)
