"""Rendering camera paths over stills: subpixel warps with mip-map antialiasing.

Owns turning a :class:`~nodeloom.ops.camera.CameraPath` into frames: one homography per
frame applied to the original still (never to the previous frame, so nothing blurs or
drifts over time), cubic/Lanczos sampling on float pixels, and — when the camera zooms
out — trilinear sampling of an area-averaged mip pyramid so fine detail does not
shimmer. Also cross-fades between keyframe stills. numpy + OpenCV (``video`` extra).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nodeloom.errors import ValidationError, require
from nodeloom.ops.camera import CameraPath, frame_matrices

__all__ = ["BORDER_MODES", "INTERPOLATIONS", "MipPyramid", "build_pyramid", "render_keyframes", "render_path", "warp_frame"]

BORDER_MODES = ("reflect", "replicate", "wrap", "black")
INTERPOLATIONS = ("cubic", "lanczos", "linear")
FrameCallback = Callable[[int, np.ndarray], None]


def _cv2() -> Any:
    return require("cv2", "video")


def _check_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 3 or img.shape[0] < 2 or img.shape[1] < 2:
        raise ValidationError(f"`{name}` must be an [H,W,C] array of at least 2×2 pixels, got shape {img.shape}")
    return np.ascontiguousarray(img)


class MipPyramid(Sequence[np.ndarray]):
    """Area-averaged mip levels, each half the previous size (rounded up), built on first use.

    Level 0 is the image itself; a camera that never zooms out never pays for the rest.
    """

    def __init__(self, image: np.ndarray, max_levels: int = 12) -> None:
        self._levels: list[np.ndarray] = [_check_image(image)]
        h, w = self._levels[0].shape[:2]
        self._count = 1
        while self._count <= max_levels and min(h, w) >= 4:
            h, w = (h + 1) // 2, (w + 1) // 2
            self._count += 1

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]
        if not 0 <= index < self._count:
            raise IndexError(index)
        cv2 = _cv2()
        while len(self._levels) <= index:
            prev = self._levels[-1]
            h, w = prev.shape[:2]
            nxt = cv2.resize(prev, ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)
            self._levels.append(nxt.reshape(nxt.shape[0], nxt.shape[1], -1))
        return self._levels[index]


def build_pyramid(image: np.ndarray, max_levels: int = 12) -> MipPyramid:
    """The mip pyramid of ``image`` (levels are computed when first sampled).

    Args:
        image: float32 ``[H,W,C]``.
        max_levels: at most this many levels beyond the original.

    Returns:
        A sequence ``[level0 (the image), level1, ...]`` down to about 2 pixels.
    """
    return MipPyramid(image, max_levels)


def _footprint(inverse: np.ndarray, x: float, y: float) -> float:
    """Source pixels covered by one output pixel at (x, y): sqrt |det J| of dest→source."""
    q = inverse @ np.array([x, y, 1.0])
    if abs(q[2]) < 1e-12:
        return 1.0
    src = q[:2] / q[2]
    jac = (inverse[:2, :2] - np.outer(src, inverse[2, :2])) / q[2]
    return math.sqrt(abs(float(np.linalg.det(jac))))


def _level_matrix(base: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Map from level-0 pixel centres to a mip level's pixel centres."""
    sx, sy = level.shape[1] / base.shape[1], level.shape[0] / base.shape[0]
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])


def _distortion_maps(inverse: np.ndarray, k1: float, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    w, h = size
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float64) - cx, np.arange(h, dtype=np.float64) - cy)
    r2 = (gx**2 + gy**2) / (cx**2 + cy**2)
    f = 1.0 + k1 * r2
    ux, uy = gx * f + cx, gy * f + cy
    q0 = inverse[0, 0] * ux + inverse[0, 1] * uy + inverse[0, 2]
    q1 = inverse[1, 0] * ux + inverse[1, 1] * uy + inverse[1, 2]
    q2 = inverse[2, 0] * ux + inverse[2, 1] * uy + inverse[2, 2]
    return (q0 / q2).astype(np.float32), (q1 / q2).astype(np.float32)


def warp_frame(
    pyramid: Sequence[np.ndarray],
    matrix: np.ndarray,
    out_size: tuple[int, int],
    *,
    border: str = "reflect",
    interpolation: str = "cubic",
    antialias: bool = True,
    distortion: float = 0.0,
    dst: np.ndarray | None = None,
) -> np.ndarray:
    """Render one frame: ``out(H·p) = source(p)`` with antialiasing when minifying.

    Args:
        pyramid: from :func:`build_pyramid` (a one-element list disables mip sampling).
        matrix: 3×3 homography from source pixel centres to output pixel centres.
        out_size: ``(width, height)`` of the frame.
        border: one of :data:`BORDER_MODES` (what shows outside the still).
        interpolation: one of :data:`INTERPOLATIONS`.
        antialias: sample the mip pyramid trilinearly where one output pixel covers
            more than one source pixel.
        distortion: radial lens k1 applied on the output (> 0 barrel).
        dst: optional C-contiguous float32 ``[H,W,C]`` buffer to render into.

    Returns:
        float32 ``[H,W,C]`` clipped to 0..1 (``dst`` when given).
    """
    cv2 = _cv2()
    if border not in BORDER_MODES:
        raise ValidationError(f"`border` must be one of {list(BORDER_MODES)}, got `{border}`")
    if interpolation not in INTERPOLATIONS:
        raise ValidationError(f"`interpolation` must be one of {list(INTERPOLATIONS)}, got `{interpolation}`")
    flags = {"cubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4, "linear": cv2.INTER_LINEAR}[interpolation]
    mode = {"reflect": cv2.BORDER_REFLECT_101, "replicate": cv2.BORDER_REPLICATE,
            "wrap": cv2.BORDER_WRAP, "black": cv2.BORDER_CONSTANT}[border]
    inverse = np.linalg.inv(matrix)
    w, h = out_size
    level_f = 0.0
    if antialias and len(pyramid) > 1:
        level_f = min(max(math.log2(max(_footprint(inverse, (w - 1) / 2, (h - 1) / 2), 1e-6)), 0.0), len(pyramid) - 1.0)
    lo = int(math.floor(level_f))
    frac = level_f - lo
    out = _sample(pyramid, lo, inverse, out_size, flags, mode, distortion, dst)
    if frac > 1e-3 and lo + 1 < len(pyramid):
        hi = _sample(pyramid, lo + 1, inverse, out_size, flags, mode, distortion)
        cv2.addWeighted(out, 1.0 - frac, hi, frac, 0.0, dst=out)
    return np.clip(out, 0.0, 1.0, out=out)


def _sample(pyramid: Sequence[np.ndarray], level: int, inverse: np.ndarray, size: tuple[int, int],
            flags: int, mode: int, distortion: float, dst: np.ndarray | None = None) -> np.ndarray:
    cv2 = _cv2()
    src = pyramid[level]
    inv_l = _level_matrix(pyramid[0], src) @ inverse
    channels = src.shape[2]
    out = dst if dst is not None else np.empty((size[1], size[0], channels), np.float32)
    maps = _distortion_maps(inv_l, distortion, size) if distortion else None
    affine = np.allclose(inv_l[2], [0.0, 0.0, 1.0], atol=1e-12)
    for i in range(0, channels, 4):  # OpenCV warps at most 4 channels at a time
        part = src if channels <= 4 else np.ascontiguousarray(src[..., i : i + 4])
        target = out if channels <= 4 else np.empty((size[1], size[0], part.shape[2]), np.float32)
        view = target[..., 0] if target.shape[2] == 1 else target
        img = part[..., 0] if part.shape[2] == 1 else part
        if maps is not None:
            cv2.remap(img, maps[0], maps[1], flags, dst=view, borderMode=mode, borderValue=0)
        elif affine:  # the cheaper warp
            cv2.warpAffine(img, inv_l[:2], size, dst=view, flags=flags | cv2.WARP_INVERSE_MAP, borderMode=mode, borderValue=0)
        else:
            cv2.warpPerspective(img, inv_l, size, dst=view, flags=flags | cv2.WARP_INVERSE_MAP, borderMode=mode, borderValue=0)
        if channels > 4:
            out[..., i : i + 4] = target
    return out


def _output_matrices(path: CameraPath, width: int, height: int, out_size: tuple[int, int] | None) -> tuple[np.ndarray, tuple[int, int]]:
    mats = frame_matrices(path, width, height)
    if out_size is None or out_size == (width, height):
        return mats, (width, height)
    ow, oh = out_size
    if ow < 2 or oh < 2:
        raise ValidationError(f"output size must be at least 2×2, got {ow}×{oh}")
    sx, sy = ow / width, oh / height
    fit = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])
    return fit @ mats, (ow, oh)


def render_path(
    image: np.ndarray,
    path: CameraPath,
    *,
    out_size: tuple[int, int] | None = None,
    border: str = "reflect",
    interpolation: str = "cubic",
    antialias: bool = True,
    on_frame: FrameCallback | None = None,
) -> np.ndarray:
    """Render every frame of ``path`` over one still.

    Args:
        image: float ``[H,W,C]`` in 0..1.
        path: the camera path.
        out_size: ``(width, height)`` of the frames; default the still's size.
        border / interpolation / antialias: see :func:`warp_frame`.
        on_frame: called as ``on_frame(index, frame)`` after each frame (progress).

    Returns:
        float32 ``[frames, H, W, C]``.
    """
    img = _check_image(image)
    return render_keyframes(img[None], [0], path, crossfade=0, out_size=out_size, border=border,
                            interpolation=interpolation, antialias=antialias, on_frame=on_frame)


def render_keyframes(
    stills: np.ndarray,
    keyframes: Sequence[int],
    path: CameraPath,
    *,
    crossfade: int = 8,
    out_size: tuple[int, int] | None = None,
    border: str = "reflect",
    interpolation: str = "cubic",
    antialias: bool = True,
    on_frame: FrameCallback | None = None,
) -> np.ndarray:
    """Render a path over several stills that take over at keyframes, cross-fading.

    Still ``j`` is shown from ``keyframes[j]``; during the ``crossfade`` frames before
    ``keyframes[j+1]`` it dissolves into still ``j+1``. All stills share the camera.

    Args:
        stills: float ``[K,H,W,C]``.
        keyframes: K increasing frame indices, the first 0.
        path: the camera path (its length is the clip length).
        crossfade: frames of dissolve before each keyframe (0 = hard cut).

    Returns:
        float32 ``[frames, H, W, C]``.

    Raises:
        ValidationError: mismatched counts, unsorted or out-of-range keyframes.
    """
    stills = np.asarray(stills, dtype=np.float32)
    keys = [int(k) for k in keyframes]
    if stills.ndim != 4 or len(keys) != stills.shape[0]:
        raise ValidationError(f"need one keyframe per still: {stills.shape[0] if stills.ndim == 4 else '?'} stills, {len(keys)} keyframes")
    if keys[0] != 0 or any(b <= a for a, b in zip(keys, keys[1:])) or keys[-1] >= path.frames:
        raise ValidationError(f"`keyframes` must start at 0, increase, and stay below {path.frames}; got {keys}")
    if crossfade < 0:
        raise ValidationError(f"`crossfade` must be ≥ 0, got {crossfade}")
    pyramids = [build_pyramid(s) for s in stills]
    mats, size = _output_matrices(path, stills.shape[2], stills.shape[1], out_size)
    out = np.empty((path.frames, size[1], size[0], stills.shape[3]), np.float32)
    opts = {"border": border, "interpolation": interpolation, "antialias": antialias}
    for i in range(path.frames):
        j = int(np.searchsorted(keys, i, side="right")) - 1
        d = float(path.distortion[i])
        frame = warp_frame(pyramids[j], mats[i], size, distortion=d, dst=out[i], **opts)
        if j + 1 < len(keys) and crossfade > 0 and i > keys[j + 1] - crossfade - 1:
            wgt = (i - (keys[j + 1] - crossfade - 1)) / (crossfade + 1)
            frame *= 1 - wgt
            frame += warp_frame(pyramids[j + 1], mats[i], size, distortion=d, **opts) * wgt
        if on_frame is not None:
            on_frame(i, out[i])
    return out
