"""Camera paths over a still: per-frame camera state and the homographies it implies.

Owns :class:`CameraPath` (absolute per-frame state: 2D content moves, 3D camera rotation,
position, field of view, lens distortion), building paths from Deforum-style schedules,
and the per-frame 3×3 matrices mapping source pixels to output pixels. numpy only; the
rendering lives in ``ops.camera_render``, presets and Bezier paths in ``ops.camera_paths``.

Conventions (documented in docs/packs/video.md):
* 2D: ``x``/``y`` shift the *content* in pixels (right/down positive), ``zoom`` > 1
  enlarges it, ``angle`` turns it counter-clockwise in degrees about the pivot
  (``pivot_x``/``pivot_y`` as fractions of the frame).
* 3D: the still is a card at distance ``f0`` (its focal length in pixels) in front of
  the camera. ``pan`` > 0 turns the camera right, ``tilt`` > 0 up, ``roll`` > 0 clockwise
  (degrees); ``cam_x``/``cam_y`` move the camera in pixels at the card (right/down);
  ``dolly`` > 0 moves it forward, in percent of the starting distance; ``fov`` is the
  horizontal field of view in degrees; ``distortion`` is a radial k1 (> 0 barrel).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from nodeloom.errors import ValidationError
from nodeloom.ops.schedule import schedule_values

__all__ = [
    "DEFORUM_SCHEDULES",
    "CameraMove",
    "CameraPath",
    "camera_rotation",
    "focal_length",
    "frame_matrices",
    "path_from_schedules",
]

_ADDITIVE = ("x", "y", "angle", "pan", "tilt", "roll", "cam_x", "cam_y", "dolly", "distortion")


@dataclass(frozen=True)
class CameraPath:
    """Absolute camera state at each frame (frame 0 is usually the untouched still).

    Every field is a float64 array of length :attr:`frames`; see the module docstring
    for units and directions.
    """

    x: np.ndarray
    y: np.ndarray
    zoom: np.ndarray
    angle: np.ndarray
    pivot_x: np.ndarray
    pivot_y: np.ndarray
    pan: np.ndarray
    tilt: np.ndarray
    roll: np.ndarray
    cam_x: np.ndarray
    cam_y: np.ndarray
    dolly: np.ndarray
    fov: np.ndarray
    distortion: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.x)
        for f in fields(self):
            arr = np.asarray(getattr(self, f.name), dtype=np.float64)
            if arr.shape != (n,):
                raise ValidationError(f"camera path field `{f.name}` must have {n} values, got shape {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ValidationError(f"camera path field `{f.name}` has non-finite values")
            object.__setattr__(self, f.name, arr)
        if n < 1:
            raise ValidationError("a camera path needs at least 1 frame")
        if np.any(self.zoom <= 0):
            raise ValidationError(f"camera `zoom` must stay > 0, got min {self.zoom.min():g}")
        if np.any((self.fov <= 1) | (self.fov >= 179)):
            raise ValidationError(f"camera `fov` must stay within (1, 179) degrees, got {self.fov.min():g}..{self.fov.max():g}")
        if np.any(self.dolly >= 95):
            raise ValidationError(f"camera `dolly` must stay below 95 (% of the distance to the still), got {self.dolly.max():g}")

    @property
    def frames(self) -> int:
        return len(self.x)

    @classmethod
    def static(cls, frames: int, fov: float = 60.0) -> CameraPath:
        """A camera that does not move for ``frames`` frames."""
        if frames < 1:
            raise ValidationError(f"`frames` must be ≥ 1, got {frames}")
        z, o = np.zeros(frames), np.ones(frames)
        return cls(x=z, y=z, zoom=o, angle=z, pivot_x=o * 0.5, pivot_y=o * 0.5, pan=z, tilt=z, roll=z,
                   cam_x=z, cam_y=z, dolly=z, fov=o * fov, distortion=z)

    def with_values(self, **values: Any) -> CameraPath:
        """A copy with some fields replaced (scalars are broadcast)."""
        return replace(self, **{k: np.broadcast_to(np.asarray(v, np.float64), (self.frames,)).copy() for k, v in values.items()})

    def combine(self, other: CameraPath) -> CameraPath:
        """Apply ``other`` on top of this path: additive fields add, zoom multiplies.

        The pivot and field of view come from ``self`` unless ``other`` changes them.
        """
        if other.frames != self.frames:
            raise ValidationError(f"cannot combine camera paths of {self.frames} and {other.frames} frames")
        vals: dict[str, np.ndarray] = {k: getattr(self, k) + getattr(other, k) for k in _ADDITIVE}
        vals["zoom"] = self.zoom * other.zoom
        fov_changed = not np.allclose(other.fov, other.fov[0])
        vals["fov"] = other.fov if fov_changed else self.fov
        return replace(self, **vals)

    def concat(self, other: CameraPath) -> CameraPath:
        """Play ``other`` after this path (for a sequence of shots)."""
        return replace(self, **{f.name: np.concatenate([getattr(self, f.name), getattr(other, f.name)]) for f in fields(self)})

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-friendly ``{field: [values]}``."""
        return {f.name: [round(float(v), 6) for v in getattr(self, f.name)] for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CameraPath:
        """Inverse of :meth:`to_dict`; missing fields take their static value."""
        try:
            n = len(next(iter(data.values())))
        except StopIteration:
            raise ValidationError("camera path dict is empty") from None
        base = cls.static(n)
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValidationError(f"unknown camera path field(s) {sorted(unknown)}")
        return base.with_values(**data)


@dataclass(frozen=True)
class CameraMove:
    """A camera move not yet fixed to a frame size (what flows between camera nodes).

    Translations of presets scale with the still, so a move is a recipe that is built
    for the size of whatever it is rendered over.

    Attributes:
        frames: clip length.
        build: ``build(width, height) -> CameraPath``.
        description: JSON-friendly summary of how the move was made.
    """

    frames: int
    build: Callable[[int, int], CameraPath]
    description: Mapping[str, Any] = field(default_factory=dict)

    def combine(self, other: CameraMove) -> CameraMove:
        """Both moves at once (see :meth:`CameraPath.combine`)."""
        if other.frames != self.frames:
            raise ValidationError(f"cannot combine camera moves of {self.frames} and {other.frames} frames")
        return CameraMove(self.frames, lambda w, h: self.build(w, h).combine(other.build(w, h)),
                          {"combine": [dict(self.description), dict(other.description)]})

    def then(self, other: CameraMove) -> CameraMove:
        """``other`` after this move."""
        return CameraMove(self.frames + other.frames, lambda w, h: self.build(w, h).concat(other.build(w, h)),
                          {"sequence": [dict(self.description), dict(other.description)]})


#: Deforum schedule names → (CameraPath field, how per-frame values accumulate).
DEFORUM_SCHEDULES: dict[str, tuple[str, str]] = {
    "translation_x": ("x", "sum"),
    "translation_y": ("y", "sum"),
    "zoom": ("zoom", "product"),
    "angle": ("angle", "sum"),
    "transform_center_x": ("pivot_x", "absolute"),
    "transform_center_y": ("pivot_y", "absolute"),
    "translation_z": ("dolly", "sum"),
    "rotation_3d_x": ("tilt", "sum"),
    "rotation_3d_y": ("pan", "sum"),
    "rotation_3d_z": ("roll", "sum"),
    "fov": ("fov", "absolute"),
}


def path_from_schedules(
    frames: int,
    schedules: Mapping[str, str],
    *,
    interpolation: str = "linear",
    width: int = 512,
    height: int = 512,
    fps: float = 24.0,
) -> CameraPath:
    """Build a path from Deforum-style per-frame schedules.

    Like Deforum, motion schedules are per-frame increments applied from frame 1 on
    (``zoom`` multiplies, the others add); ``transform_center_*`` and ``fov`` are absolute.

    Args:
        frames: number of frames.
        schedules: ``{name: schedule}`` with names from :data:`DEFORUM_SCHEDULES`.
        interpolation: see ``ops.schedule.INTERPOLATIONS``.
        width / height / fps: values of ``W``, ``H``, ``fps`` inside expressions.

    Returns:
        The camera path.

    Raises:
        ValidationError: an unknown name or a malformed schedule.
    """
    path = CameraPath.static(frames)
    env = {"W": float(width), "H": float(height), "fps": float(fps)}
    values: dict[str, np.ndarray] = {}
    for name, text in schedules.items():
        if name not in DEFORUM_SCHEDULES:
            raise ValidationError(f"unknown schedule `{name}`; known: {sorted(DEFORUM_SCHEDULES)}")
        if text is None or not str(text).strip():
            continue
        field, mode = DEFORUM_SCHEDULES[name]
        per_frame = schedule_values(str(text), frames, interpolation=interpolation, variables=env)
        if mode == "absolute":
            values[field] = per_frame
        elif mode == "sum":
            values[field] = np.concatenate([[0.0], np.cumsum(per_frame[1:])])
        else:
            if np.any(per_frame <= 0):
                raise ValidationError(f"schedule `{name}` must stay > 0, got {per_frame.min():g}")
            values[field] = np.concatenate([[1.0], np.cumprod(per_frame[1:])])
    return path.with_values(**values) if values else path


# --------------------------------------------------------------------------- matrices


def camera_rotation(pan: float, tilt: float, roll: float) -> np.ndarray:
    """Camera-to-world rotation: yaw (right), pitch (up, image y points down), roll (clockwise)."""
    p, t, r = (math.radians(v) for v in (pan, tilt, roll))
    ry = np.array([[math.cos(p), 0, math.sin(p)], [0, 1, 0], [-math.sin(p), 0, math.cos(p)]])
    rx = np.array([[1, 0, 0], [0, math.cos(t), -math.sin(t)], [0, math.sin(t), math.cos(t)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return ry @ rx @ rz


def focal_length(width: int, fov: float) -> float:
    """Focal length in pixels for a horizontal field of view in degrees."""
    return (width / 2.0) / math.tan(math.radians(fov) / 2.0)


def _matrix_2d(path: CameraPath, i: int, width: int, height: int) -> np.ndarray:
    px, py = path.pivot_x[i] * (width - 1), path.pivot_y[i] * (height - 1)
    a = math.radians(path.angle[i])
    s = path.zoom[i]
    # angle > 0 turns content counter-clockwise on screen (y points down)
    c, sn = s * math.cos(a), s * math.sin(a)
    rot = np.array([[c, sn, 0], [-sn, c, 0], [0, 0, 1.0]])
    to_pivot = np.array([[1, 0, -px], [0, 1, -py], [0, 0, 1.0]])
    back = np.array([[1, 0, px + path.x[i]], [0, 1, py + path.y[i]], [0, 0, 1.0]])
    return back @ rot @ to_pivot


def _matrix_3d(path: CameraPath, i: int, width: int, height: int) -> np.ndarray:
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    f0 = focal_length(width, path.fov[0])
    fi = focal_length(width, path.fov[i])
    to_card = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, f0]])  # pixel → point on the card
    centre = np.array([path.cam_x[i], path.cam_y[i], f0 * path.dolly[i] / 100.0])
    shift = np.eye(3) - np.outer(centre, [0, 0, 1.0 / f0])  # X - C, using z(X) = f0
    k = np.array([[fi, 0, cx], [0, fi, cy], [0, 0, 1.0]])
    return k @ camera_rotation(path.pan[i], path.tilt[i], path.roll[i]).T @ shift @ to_card


def frame_matrices(path: CameraPath, width: int, height: int) -> np.ndarray:
    """Per-frame homographies mapping source pixel centres to output pixel centres.

    The 2D move is applied to the still first, then the 3D camera looks at it.

    Args:
        path: the camera path.
        width / height: the still's size in pixels.

    Returns:
        float64 ``[frames, 3, 3]``, each normalised so that ``H[2,2] == 1``.
    """
    if width < 2 or height < 2:
        raise ValidationError(f"the still must be at least 2×2 pixels, got {width}×{height}")
    out = np.empty((path.frames, 3, 3))
    for i in range(path.frames):
        h = _matrix_3d(path, i, width, height) @ _matrix_2d(path, i, width, height)
        out[i] = h / h[2, 2]
    return out
