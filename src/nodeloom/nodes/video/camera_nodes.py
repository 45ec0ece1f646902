"""Camera nodes: moves from Deforum schedules, semantic axes/presets and Bezier paths, and
rendering a move over a still (or keyframe stills) into frames."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from nodeloom.node_api import IO, Boolean, Combo, Custom, Float, Image, Int, Node, Output, Schema, String, ValidationError
from nodeloom.nodes.video._common import CAMERA_MOVE, frame_progress, to_frames, to_image
from nodeloom.ops.camera import DEFORUM_SCHEDULES, CameraMove, CameraPath, path_from_schedules
from nodeloom.ops.camera_paths import AXES, AXIS_UNITS, PRESETS, bezier_path, parse_points, semantic_path
from nodeloom.ops.camera_render import BORDER_MODES, INTERPOLATIONS as SAMPLERS, render_keyframes
from nodeloom.ops.schedule import EASINGS, INTERPOLATIONS
from nodeloom.ops.video_plots import render_curves

__all__ = ["CameraBezierPath", "CameraCombine", "CameraMovePlot", "CameraSchedule", "RenderCameraMove", "SemanticCamera"]

EASING_CHOICES = ["linear", *EASINGS]
_MOVE_OUT = [Output(CAMERA_MOVE, "camera", tooltip="The camera move, rendered by Render Camera Move.")]


def _frames_input(default: int = 48) -> Int:
    return Int("frames", default, min=1, max=100000, tooltip="Length of the move in frames.")


_SCHEDULE_DEFAULTS = {
    "translation_x": ("0:(0)", "2D: content shift right per frame, in pixels."),
    "translation_y": ("0:(0)", "2D: content shift down per frame, in pixels."),
    "zoom": ("0:(1.0)", "2D: zoom factor per frame (1.02 = 2 % closer each frame)."),
    "angle": ("0:(0)", "2D: counter-clockwise rotation per frame, in degrees."),
    "transform_center_x": ("0:(0.5)", "2D: pivot x as a fraction of the width (absolute)."),
    "transform_center_y": ("0:(0.5)", "2D: pivot y as a fraction of the height (absolute)."),
    "translation_z": ("0:(0)", "3D: dolly forward per frame, in % of the distance to the still."),
    "rotation_3d_x": ("0:(0)", "3D: tilt up per frame, in degrees."),
    "rotation_3d_y": ("0:(0)", "3D: pan right per frame, in degrees."),
    "rotation_3d_z": ("0:(0)", "3D: roll clockwise per frame, in degrees."),
    "fov": ("0:(60)", "3D: horizontal field of view in degrees (absolute)."),
}


class CameraSchedule(Node):
    """A camera move from Deforum-style keyframe schedules (``0:(1.0), 30:(1.02)``).

    Motion schedules are per-frame increments from frame 1 on; values may be
    expressions in ``t`` (frame), ``max_f`` (last frame), ``W``, ``H``, ``fps`` and
    math functions (``sin``, ``cos``, ``abs``, ``min``, ``max``, ``where``...).
    """

    SCHEMA = Schema(
        "CameraSchedule",
        display_name="Camera Schedule (Deforum)",
        category="video/camera",
        inputs=[
            _frames_input(),
            *[String(name, default, tooltip=tip) for name, (default, tip) in _SCHEDULE_DEFAULTS.items()],
            Combo("interpolation", list(INTERPOLATIONS), default="linear", tooltip="How values between keyframes are filled."),
            Float("fps", 24.0, min=1, max=240, tooltip="Value of `fps` inside expressions."),
        ],
        outputs=_MOVE_OUT,
    )

    @classmethod
    def execute(cls, frames: int, interpolation: str = "linear", fps: float = 24.0, **schedules: str) -> tuple[Any]:
        given = {k: v for k, v in schedules.items() if k in DEFORUM_SCHEDULES}

        def build(w: int, h: int) -> CameraPath:
            return path_from_schedules(frames, given, interpolation=interpolation, width=w, height=h, fps=fps)

        build(512, 512)  # report malformed schedules now, with their position
        return (CameraMove(frames, build, {"schedules": given, "interpolation": interpolation}),)


class SemanticCamera(Node):
    """A camera move from the six axes people know, and/or a preset.

    Each axis runs −10…10 over the whole clip: horizontal (3 % of the width per unit),
    vertical (3 % of the height), pan (2°), tilt (1.5°), roll (3°), zoom (×2 at 10).
    Presets: static, pan left/right, zoom in/out, orbit left/right, dolly zoom, crane up/down.
    """

    SCHEMA = Schema(
        "SemanticCamera",
        display_name="Camera Move (Semantic)",
        category="video/camera",
        inputs=[
            _frames_input(),
            Combo("preset", list(PRESETS), default="static", tooltip="A named move; the axes add to it."),
            *[Float(a, 0.0, min=-10.0, max=10.0, step=0.1, tooltip=f"1 = {AXIS_UNITS[a]}.") for a in AXES],
            Float("strength", 1.0, min=0.0, max=3.0, tooltip="Scales the preset's own move."),
            Combo("easing", EASING_CHOICES, default="ease_in_out", tooltip="How the move accelerates."),
            Float("fov", 60.0, min=10.0, max=150.0, tooltip="Camera field of view in degrees."),
        ],
        outputs=_MOVE_OUT,
    )

    @classmethod
    def execute(cls, frames: int, preset: str = "static", strength: float = 1.0, easing: str = "ease_in_out",
                fov: float = 60.0, **axes: float) -> tuple[Any]:
        values = {a: float(axes.get(a, 0.0)) for a in AXES}

        def build(w: int, h: int) -> CameraPath:
            return semantic_path(frames, w, h, values, preset=preset, strength=strength, easing=easing, fov=fov)

        build(512, 512)
        return (CameraMove(frames, build, {"preset": preset, "axes": values, "strength": strength, "easing": easing}),)


class CameraBezierPath(Node):
    """A camera that glides along a smooth Bezier curve, with eased speed, zoom and rotation.

    Points are ``x,y`` pairs (right/down) separated by ``;``: 2 points = a line, 3 = a
    quadratic, 4 = a cubic curve. The camera starts at the first point and covers equal
    distances per unit of eased time.
    """

    SCHEMA = Schema(
        "CameraBezierPath",
        display_name="Camera Path (Bezier)",
        category="video/camera",
        inputs=[
            _frames_input(),
            String("points", "0,0; 10,-5; 20,5; 30,0", multiline=True, tooltip="Control points `x,y; x,y; ...`."),
            Combo("units", ["percent", "pixels"], default="percent", tooltip="Points in % of the frame size or in pixels."),
            Combo("easing", EASING_CHOICES, default="ease_in_out", tooltip="Speed profile along the curve."),
            Float("zoom_start", 1.0, min=0.05, max=20.0, tooltip="Zoom at the start."),
            Float("zoom_end", 1.0, min=0.05, max=20.0, tooltip="Zoom at the end."),
            Float("angle_start", 0.0, min=-360.0, max=360.0, tooltip="Rotation at the start (degrees, counter-clockwise)."),
            Float("angle_end", 0.0, min=-360.0, max=360.0, tooltip="Rotation at the end."),
        ],
        outputs=_MOVE_OUT,
    )

    @classmethod
    def execute(cls, frames: int, points: str, units: str = "percent", easing: str = "ease_in_out",
                zoom_start: float = 1.0, zoom_end: float = 1.0, angle_start: float = 0.0,
                angle_end: float = 0.0) -> tuple[Any]:
        pts = parse_points(points)

        def build(w: int, h: int) -> CameraPath:
            scaled = pts * [w / 100.0, h / 100.0] if units == "percent" else pts
            return bezier_path(frames, scaled, width=w, height=h, easing=easing,
                               zoom=(zoom_start, zoom_end), angle=(angle_start, angle_end))

        build(512, 512)
        return (CameraMove(frames, build, {"bezier": pts.tolist(), "units": units, "easing": easing}),)


class CameraCombine(Node):
    """Combine two camera moves: at the same time (same length) or one after the other."""

    SCHEMA = Schema(
        "CameraCombine",
        display_name="Combine Camera Moves",
        category="video/camera",
        inputs=[
            Custom(CAMERA_MOVE, "camera_a", tooltip="The first move."),
            Custom(CAMERA_MOVE, "camera_b", tooltip="The second move."),
            Combo("mode", ["together", "sequence"], default="together", tooltip="`together` adds the moves; `sequence` plays b after a."),
        ],
        outputs=_MOVE_OUT,
    )

    @classmethod
    def execute(cls, camera_a: CameraMove, camera_b: CameraMove, mode: str = "together") -> tuple[Any]:
        return (camera_a.combine(camera_b) if mode == "together" else camera_a.then(camera_b),)


class RenderCameraMove(Node):
    """Render a camera move over a still into frames (subpixel-accurate, antialiased).

    With several images, each takes over at its keyframe and dissolves into the next.
    Every frame is resampled once from the original still, so nothing blurs over time;
    when the camera zooms out, a mip pyramid is sampled so detail does not shimmer.
    """

    SCHEMA = Schema(
        "RenderCameraMove",
        display_name="Render Camera Move",
        category="video/camera",
        inputs=[
            Image("image", tooltip="The still, or keyframe stills as a batch."),
            Custom(CAMERA_MOVE, "camera", tooltip="The camera move."),
            String("keyframes", "", tooltip="Frame where each still takes over, e.g. `0, 48, 96` (empty: evenly spread)."),
            Int("crossfade", 8, min=0, max=1000, tooltip="Frames of dissolve before each keyframe."),
            Int("width", 0, min=0, max=16384, tooltip="Output width (0 = the still's)."),
            Int("height", 0, min=0, max=16384, tooltip="Output height (0 = the still's)."),
            Combo("border", list(BORDER_MODES), default="reflect", tooltip="What shows beyond the still's edges."),
            Combo("interpolation", list(SAMPLERS), default="cubic", tooltip="Resampling filter."),
            Boolean("antialias", True, tooltip="Mip-map prefilter when zooming out (prevents shimmer)."),
        ],
        outputs=[Output(IO.IMAGE, "IMAGE", tooltip="The rendered frames.")],
    )

    @classmethod
    def execute(cls, image: Any, camera: CameraMove, keyframes: str = "", crossfade: int = 8, width: int = 0,
                height: int = 0, border: str = "reflect", interpolation: str = "cubic",
                antialias: bool = True) -> tuple[Any]:
        stills = to_frames(image, "image")
        keys = _keyframes(keyframes, len(stills), camera.frames)
        h, w = stills.shape[1:3]
        path = camera.build(w, h)
        out_size = (width or w, height or h) if (width or height) else None
        frames = render_keyframes(stills, keys, path, crossfade=crossfade, out_size=out_size, border=border,
                                  interpolation=interpolation, antialias=antialias,
                                  on_frame=frame_progress(path.frames))
        return (to_image(frames),)


def _keyframes(text: str, stills: int, frames: int) -> list[int]:
    if not text.strip():
        return [round(i * frames / stills) for i in range(stills)]
    try:
        keys = [int(k) for k in text.replace(";", ",").split(",") if k.strip()]
    except ValueError:
        raise ValidationError(f"`keyframes` must be whole numbers separated by commas, got `{text}`") from None
    if len(keys) != stills:
        raise ValidationError(f"`keyframes` lists {len(keys)} frames but `image` has {stills} stills")
    return keys


class CameraMovePlot(Node):
    """Plot a camera move's per-frame values (the fields that change) and give them as JSON."""

    SCHEMA = Schema(
        "CameraMovePlot",
        display_name="Plot Camera Move",
        category="video/camera",
        inputs=[
            Custom(CAMERA_MOVE, "camera", tooltip="The camera move to inspect."),
            Int("width", 512, min=2, max=16384, tooltip="Frame width the move is built for."),
            Int("height", 512, min=2, max=16384, tooltip="Frame height the move is built for."),
        ],
        outputs=[Output(IO.IMAGE, "plot", tooltip="One small chart per changing field."),
                 Output(IO.STRING, "json", tooltip="Every field's per-frame values.")],
    )

    @classmethod
    def execute(cls, camera: CameraMove, width: int = 512, height: int = 512) -> tuple[Any, ...]:
        path = camera.build(width, height)
        values = path.to_dict()
        moving = {k: v for k, v in values.items() if np.ptp(np.asarray(v)) > 1e-9}
        plot = render_curves(moving or {"zoom": values["zoom"]})
        return to_image(plot), json.dumps({"frames": path.frames, "description": dict(camera.description), "fields": values})
