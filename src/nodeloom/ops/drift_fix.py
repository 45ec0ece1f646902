"""Reducing temporal drift: colour anchoring, luminance deflicker, flow-guided smoothing.

Owns three fixes for frame sequences (float ``[N,H,W,3]`` in 0..1, inputs never changed):

* colour anchoring — match each frame's colour statistics (mean/std, or the full
  histogram) to an anchor frame in Lab, HSV or RGB (Deforum's "colour coherence");
* deflicker — scale each frame so its mean luminance follows a moving average of the
  neighbouring frames, with FFmpeg ``deflicker``'s averaging modes;
* temporal smoothing — blend each frame with the previous output warped along optical
  flow, only where the forward–backward check says the pixel is visible.

numpy + OpenCV (flow).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nodeloom.errors import ValidationError
from nodeloom.ops.drift_color import anchor_image, hsv_to_rgb, lab_to_rgb, rgb_to_hsv, rgb_to_lab
from nodeloom.ops.flow import compute_flow, occlusion_mask, warp_by_flow

__all__ = ["ANCHOR_METHODS", "COLOR_SPACES", "DEFLICKER_MODES", "color_anchor", "deflicker", "flow_smooth"]

COLOR_SPACES = ("lab", "hsv", "rgb")
ANCHOR_METHODS = ("mean_std", "histogram")
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
FrameCallback = Callable[[int, np.ndarray], None]


def _check(frames: np.ndarray) -> np.ndarray:
    arr = np.asarray(frames, dtype=np.float32)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] < 1:
        raise ValidationError(f"`images` must be RGB frames [N,H,W,3], got shape {arr.shape}")
    return arr


def _check_strength(strength: float) -> None:
    if not 0.0 <= strength <= 1.0:
        raise ValidationError(f"`strength` must be within 0..1, got {strength}")


# --------------------------------------------------------------------------- colour anchoring


def _to_space(rgb: np.ndarray, space: str) -> np.ndarray:
    return rgb_to_lab(rgb) if space == "lab" else rgb_to_hsv(rgb) if space == "hsv" else rgb.astype(np.float64)


def _from_space(x: np.ndarray, space: str) -> np.ndarray:
    return lab_to_rgb(x) if space == "lab" else hsv_to_rgb(x) if space == "hsv" else x


def _match_mean_std(x: np.ndarray, ref: np.ndarray, space: str) -> np.ndarray:
    out = np.empty_like(x)
    for c in range(3):
        if space == "hsv" and c == 0:  # hue is an angle: shift by the circular mean difference
            shift = _circular_mean(ref[..., 0]) - _circular_mean(x[..., 0])
            out[..., 0] = np.mod(x[..., 0] + shift, 360.0)
            continue
        xs, rs = x[..., c].std(), ref[..., c].std()
        scale = rs / xs if xs > 1e-8 else 1.0
        out[..., c] = (x[..., c] - x[..., c].mean()) * scale + ref[..., c].mean()
    return out


def _circular_mean(deg: np.ndarray) -> float:
    rad = np.radians(deg)
    return float(np.degrees(np.arctan2(np.sin(rad).mean(), np.cos(rad).mean())))


def _match_histogram(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-channel CDF matching (hue treated as a linear channel)."""
    out = np.empty_like(x)
    for c in range(3):
        src = x[..., c].ravel()
        order = np.argsort(src, kind="stable")
        quantiles = (np.arange(src.size) + 0.5) / src.size
        ref_sorted = np.sort(ref[..., c].ravel())
        ref_q = (np.arange(ref_sorted.size) + 0.5) / ref_sorted.size
        matched = np.empty_like(src)
        matched[order] = np.interp(quantiles, ref_q, ref_sorted)
        out[..., c] = matched.reshape(x.shape[:-1])
    return out


def color_anchor(
    frames: np.ndarray,
    anchor: int | np.ndarray = 0,
    *,
    space: str = "lab",
    method: str = "mean_std",
    strength: float = 1.0,
    on_frame: FrameCallback | None = None,
) -> np.ndarray:
    """Pull every frame's colours toward an anchor frame.

    Args:
        frames: ``[N,H,W,3]`` float in 0..1.
        anchor: a frame index or an ``[H,W,3]`` reference image (any size).
        space: one of :data:`COLOR_SPACES`.
        method: ``mean_std`` (per-channel mean and spread; keeps the frame's own
            structure) or ``histogram`` (full per-channel distribution).
        strength: 0 = unchanged, 1 = fully matched (linear blend in RGB).
        on_frame: progress callback.

    Returns:
        float32 ``[N,H,W,3]`` clipped to 0..1.
    """
    v = _check(frames)
    if space not in COLOR_SPACES:
        raise ValidationError(f"`space` must be one of {list(COLOR_SPACES)}, got `{space}`")
    if method not in ANCHOR_METHODS:
        raise ValidationError(f"`method` must be one of {list(ANCHOR_METHODS)}, got `{method}`")
    _check_strength(strength)
    ref_rgb = anchor_image(v, anchor)
    ref = _to_space(ref_rgb, space)
    out = np.empty_like(v)
    for i, frame in enumerate(v):
        x = _to_space(frame, space)
        matched = _match_mean_std(x, ref, space) if method == "mean_std" else _match_histogram(x, ref)
        rgb = _from_space(matched, space).astype(np.float32)
        out[i] = np.clip(frame + (rgb - frame) * strength, 0.0, 1.0)
        if on_frame is not None:
            on_frame(i, out[i])
    return out


# --------------------------------------------------------------------------- deflicker


def _power_mean(p: float) -> Callable[[np.ndarray], float]:
    return lambda x: float(np.mean(x**p) ** (1.0 / p))


#: FFmpeg deflicker's averaging modes over the window of frame luminances.
DEFLICKER_MODES: dict[str, Callable[[np.ndarray], float]] = {
    "am": lambda x: float(np.mean(x)),
    "gm": lambda x: float(np.exp(np.mean(np.log(np.maximum(x, 1e-6))))),
    "hm": lambda x: float(len(x) / np.sum(1.0 / np.maximum(x, 1e-6))),
    "qm": _power_mean(2.0),
    "cm": _power_mean(3.0),
    "pm": _power_mean(5.0),
    "median": lambda x: float(np.median(x)),
}


def deflicker(frames: np.ndarray, size: int = 5, mode: str = "am", strength: float = 1.0) -> np.ndarray:
    """Even out frame-to-frame brightness like FFmpeg's ``deflicker`` filter.

    Each frame's mean luminance is compared with the ``mode`` average over a window of
    ``size`` frames centred on it (FFmpeg's window looks ahead; a centred one does not
    shift the correction in time), and the frame is scaled by the ratio.

    Args:
        frames: ``[N,H,W,3]`` float in 0..1.
        size: window length in frames, 2..129 (FFmpeg's range).
        mode: a key of :data:`DEFLICKER_MODES` (``am`` arithmetic, ``gm`` geometric,
            ``hm`` harmonic, ``qm`` quadratic, ``cm`` cubic, ``pm`` power, ``median``).
        strength: 0..1, how much of the correction to apply.

    Returns:
        float32 ``[N,H,W,3]`` clipped to 0..1.
    """
    v = _check(frames)
    if not 2 <= size <= 129:
        raise ValidationError(f"`size` must be within 2..129, got {size}")
    if mode not in DEFLICKER_MODES:
        raise ValidationError(f"`mode` must be one of {list(DEFLICKER_MODES)}, got `{mode}`")
    _check_strength(strength)
    luma = (v @ _LUMA).mean(axis=(1, 2)).astype(np.float64)
    avg = DEFLICKER_MODES[mode]
    before, after = (size - 1) // 2, size // 2
    out = np.empty_like(v)
    for i in range(len(v)):
        window = luma[max(0, i - before) : i + after + 1]
        target = avg(window)
        factor = target / luma[i] if luma[i] > 1e-6 else 1.0
        factor = 1.0 + (factor - 1.0) * strength
        out[i] = np.clip(v[i] * factor, 0.0, 1.0)
    return out


# --------------------------------------------------------------------------- flow smoothing


def flow_smooth(
    frames: np.ndarray,
    *,
    alpha: float = 0.5,
    method: str = "dis_medium",
    occlusion_aware: bool = True,
    tolerance: float = 0.2,
    on_frame: FrameCallback | None = None,
) -> np.ndarray:
    """Temporal smoothing along motion: ``out_t = (1−α)·f_t + α·warp(out_{t−1})``.

    Flow is computed between the input frames, so smoothing does not feed on itself.
    Where the forward–backward check marks a pixel occluded (or it leaves the frame),
    or where the warped previous frame still differs from the frame by more than
    ``tolerance`` (a change the flow did not explain, e.g. a jump too large to track),
    the frame is kept as it is, which avoids ghosting.

    Args:
        frames: ``[N,H,W,3]`` float in 0..1.
        alpha: weight of the warped previous output, 0..0.95.
        method: optical flow method.
        occlusion_aware: mask occluded and unexplained pixels (recommended).
        tolerance: mean absolute RGB difference above which a pixel counts as unexplained.
        on_frame: progress callback.

    Returns:
        float32 ``[N,H,W,3]``.
    """
    v = _check(frames)
    if not 0.0 <= alpha <= 0.95:
        raise ValidationError(f"`alpha` must be within 0..0.95, got {alpha}")
    if tolerance <= 0:
        raise ValidationError(f"`tolerance` must be > 0, got {tolerance}")
    out = np.empty_like(v)
    out[0] = v[0]
    for t in range(1, len(v)):
        fwd = compute_flow(v[t], v[t - 1], method)
        warped = warp_by_flow(out[t - 1], fwd)
        if occlusion_aware:
            mask = occlusion_mask(fwd, compute_flow(v[t - 1], v[t], method))
            mask *= np.abs(v[t] - warp_by_flow(v[t - 1], fwd)).mean(axis=-1) <= tolerance
            mask = mask[..., None]
        else:
            mask = np.ones(v.shape[1:3] + (1,), np.float32)
        weight = alpha * mask
        out[t] = np.clip(v[t] * (1.0 - weight) + warped * weight, 0.0, 1.0)
        if on_frame is not None:
            on_frame(t, out[t])
    return out
