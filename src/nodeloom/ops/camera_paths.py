"""Camera paths people ask for by name: six semantic axes, presets and Bezier paths.

Owns the mapping from the axes users know (horizontal, vertical, pan, tilt, roll, zoom;
each −10…10 over the whole clip) and named presets (static, pan left/right, zoom in/out,
orbit, dolly zoom, crane) to :class:`~nodeloom.ops.camera.CameraPath`, and paths that
follow a smooth Bezier curve at eased, arc-length-uniform speed. numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from nodeloom.errors import ValidationError
from nodeloom.ops.camera import CameraPath, focal_length
from nodeloom.ops.schedule import EASINGS

__all__ = [
    "AXES",
    "AXIS_UNITS",
    "PRESETS",
    "bezier_curve",
    "bezier_path",
    "ease_progress",
    "parse_points",
    "semantic_path",
]

AXES = ("horizontal", "vertical", "pan", "tilt", "roll", "zoom")

#: what strength 1 means over the whole clip (documented in docs/packs/video.md).
AXIS_UNITS = {
    "horizontal": "camera moves right by 3 % of the frame width",
    "vertical": "camera moves up by 3 % of the frame height",
    "pan": "camera turns right by 2°",
    "tilt": "camera turns up by 1.5°",
    "roll": "camera rolls clockwise by 3°",
    "zoom": "zoom factor ×2^(1/10) (10 → ×2, −10 → ×0.5)",
}

#: preset → axis strengths (orbit, dolly zoom and crane add moves the axes cannot express).
PRESETS: dict[str, dict[str, float]] = {
    "static": {},
    "pan left": {"pan": -5.0},
    "pan right": {"pan": 5.0},
    "zoom in": {"zoom": 5.0},
    "zoom out": {"zoom": -5.0},
    "orbit left": {},
    "orbit right": {},
    "dolly zoom": {},
    "crane up": {},
    "crane down": {},
}


def ease_progress(frames: int, easing: str = "linear") -> np.ndarray:
    """Progress 0→1 over ``frames`` frames shaped by an easing curve.

    Args:
        frames: ≥ 1.
        easing: ``linear`` or a name from ``ops.schedule.EASINGS``.

    Returns:
        float64 ``[frames]``, 0 at the first frame and 1 at the last.
    """
    if frames < 1:
        raise ValidationError(f"`frames` must be ≥ 1, got {frames}")
    if easing != "linear" and easing not in EASINGS:
        raise ValidationError(f"`easing` must be one of {['linear', *EASINGS]}, got `{easing}`")
    u = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    return u if easing == "linear" else EASINGS[easing](u)


def semantic_path(
    frames: int,
    width: int,
    height: int,
    axes: Mapping[str, float] | None = None,
    *,
    preset: str = "static",
    strength: float = 1.0,
    easing: str = "ease_in_out",
    fov: float = 60.0,
) -> CameraPath:
    """A camera move from semantic axes and/or a preset.

    Args:
        frames: clip length.
        width / height: size of the still (translations scale with it).
        axes: ``{axis: strength}`` for axes in :data:`AXES`, each −10…10; added to the preset.
        preset: one of :data:`PRESETS`.
        strength: multiplies the preset's own move (1 = as documented).
        easing: how the move accelerates (see :func:`ease_progress`).
        fov: horizontal field of view of the camera in degrees.

    Returns:
        The camera path (frame 0 is the untouched still).

    Raises:
        ValidationError: unknown axis/preset or a strength outside −10…10.
    """
    if preset not in PRESETS:
        raise ValidationError(f"`preset` must be one of {list(PRESETS)}, got `{preset}`")
    vals = {a: PRESETS[preset].get(a, 0.0) * strength for a in AXES}
    for name, v in (axes or {}).items():
        if name not in AXES:
            raise ValidationError(f"unknown camera axis `{name}`; known: {list(AXES)}")
        if not -10.0 <= float(v) <= 10.0:
            raise ValidationError(f"camera axis `{name}` must be within −10…10, got {v}")
        vals[name] += float(v)
    u = ease_progress(frames, easing)
    path = CameraPath.static(frames, fov=fov).with_values(
        cam_x=0.03 * width * vals["horizontal"] * u,
        cam_y=-0.03 * height * vals["vertical"] * u,
        pan=2.0 * vals["pan"] * u,
        tilt=1.5 * vals["tilt"] * u,
        roll=3.0 * vals["roll"] * u,
        zoom=np.power(2.0, vals["zoom"] / 10.0 * u),
    )
    extra = _preset_extra(preset, u, width, height, strength, fov)
    return path.combine(extra) if extra is not None else path


def _preset_extra(preset: str, u: np.ndarray, width: int, height: int, strength: float, fov: float) -> CameraPath | None:
    frames = len(u)
    base = CameraPath.static(frames, fov=fov)
    f0 = focal_length(width, fov)
    if preset.startswith("orbit"):
        # the camera circles the still's centre at its distance, turning to keep it framed
        sign = 1.0 if preset == "orbit right" else -1.0
        theta = np.radians(20.0 * strength) * u * sign
        return base.with_values(cam_x=f0 * np.sin(theta), dolly=100.0 * (1 - np.cos(theta)), pan=-np.degrees(theta))
    if preset == "dolly zoom":
        # a flat still has no depth, so the widening lens is shown as growing barrel distortion
        # while the dolly keeps the centre the same size
        dolly = 30.0 * strength * u
        fov_i = np.degrees(2 * np.arctan(np.tan(math.radians(fov) / 2) / (1 - dolly / 100.0)))
        return base.with_values(dolly=dolly, fov=np.minimum(fov_i, 170.0), distortion=0.25 * strength * u)
    if preset.startswith("crane"):
        sign = 1.0 if preset == "crane up" else -1.0
        rise = 0.15 * height * strength * u * sign
        return base.with_values(cam_y=-rise, tilt=-np.degrees(np.arctan2(rise, f0)), dolly=-10.0 * strength * u)
    return None


# --------------------------------------------------------------------------- Bezier


def parse_points(text: str, name: str = "points") -> np.ndarray:
    """Parse ``"x,y; x,y; ..."`` into an ``[N,2]`` array.

    Raises:
        ValidationError: naming the entry that is not two numbers.
    """
    pts = []
    for i, chunk in enumerate(p for p in text.replace("\n", ";").split(";") if p.strip()):
        parts = [v for v in chunk.replace(" ", ",").split(",") if v]
        try:
            if len(parts) != 2:
                raise ValueError
            pts.append((float(parts[0]), float(parts[1])))
        except ValueError:
            raise ValidationError(f"`{name}` entry {i + 1} (`{chunk.strip()}`) must be two numbers `x,y`") from None
    if len(pts) < 2:
        raise ValidationError(f"`{name}` needs at least 2 points `x,y; x,y`, got {len(pts)}")
    return np.asarray(pts, dtype=np.float64)


def bezier_curve(control: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Evaluate a Bezier curve of any degree (Bernstein form) at parameters ``t``.

    Args:
        control: ``[K,D]`` control points (K ≥ 2).
        t: parameters in 0..1.

    Returns:
        ``[len(t), D]`` points.
    """
    control = np.asarray(control, dtype=np.float64)
    k = len(control) - 1
    t = np.asarray(t, dtype=np.float64)[:, None]
    coeff = np.array([math.comb(k, i) for i in range(k + 1)], dtype=np.float64)
    basis = coeff * t ** np.arange(k + 1) * (1 - t) ** (k - np.arange(k + 1))
    return basis @ control


def bezier_path(
    frames: int,
    control: Sequence[Sequence[float]] | np.ndarray,
    *,
    width: int,
    height: int,
    easing: str = "ease_in_out",
    zoom: tuple[float, float] = (1.0, 1.0),
    angle: tuple[float, float] = (0.0, 0.0),
    fov: float = 60.0,
) -> CameraPath:
    """A camera that travels along a Bezier curve at eased speed.

    Control points are camera positions in pixels relative to the centre of the still
    (x right, y down); the camera covers equal distances per unit of eased progress
    (arc-length parametrisation), so speed follows the easing, not the control spacing.

    Args:
        frames: clip length.
        control: ``[K,2]`` control points, K ≥ 2 (2 = straight line, 4 = cubic).
        width / height: size of the still (for validation only).
        easing: see :func:`ease_progress`.
        zoom: zoom at the start and end of the path, eased alike.
        angle: content rotation (degrees, counter-clockwise) at start and end.
        fov: camera field of view.

    Returns:
        The camera path; frame 0 sits at the first control point.
    """
    pts = np.asarray(control, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 2:
        raise ValidationError(f"`control` must be at least 2 points of (x, y), got shape {pts.shape}")
    if zoom[0] <= 0 or zoom[1] <= 0:
        raise ValidationError(f"`zoom` values must be > 0, got {zoom}")
    dense_t = np.linspace(0, 1, 2049)
    dense = bezier_curve(pts, dense_t)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    u = ease_progress(frames, easing)
    if arc[-1] > 0:
        t = np.interp(u * arc[-1], arc, dense_t)
    else:
        t = u
    pos = bezier_curve(pts, t) - pts[0]
    z = zoom[0] * (zoom[1] / zoom[0]) ** u
    return CameraPath.static(frames, fov=fov).with_values(
        cam_x=pos[:, 0], cam_y=pos[:, 1], zoom=z, angle=angle[0] + (angle[1] - angle[0]) * u
    )
