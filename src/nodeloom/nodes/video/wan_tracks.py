"""ComfyUI's Wan-Move track nodes: WanMoveTracksFromCoords, GenerateTracks, WanMoveConcatTrack and
WanMoveVisualizeTracks. They make, join and draw TRACKS values (the maths is
:mod:`nodeloom.ops.wan_tracks`); a Wan-Move model reads them through WanMoveTrackToVideo."""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.errors import ValidationError
from nodeloom.node_api import Boolean, Combo, Custom, Float, Image, Int, Mask, Node, Output, Schema, String
from nodeloom.ops.wan_tracks import (
    EASINGS,
    check_tracks,
    concat_tracks,
    draw_tracks,
    generate_tracks,
    tracks_from_coords,
)

__all__ = ["TRACKS", "GenerateTracks", "WanMoveConcatTrack", "WanMoveTracksFromCoords", "WanMoveVisualizeTracks"]

TRACKS = "TRACKS"
_CATEGORY = "model/conditioning/video_models"


class WanMoveTracksFromCoords(Node):
    """Motion tracks from a spline editor's JSON coordinates (a list of tracks, each a list of
    {"x", "y"} pixel points, one per frame); an optional mask says in which frames they are visible."""

    SCHEMA = Schema(
        "WanMoveTracksFromCoords", display_name="WanMoveTracksFromCoords", category=_CATEGORY,
        inputs=[
            String("track_coords", "[]", optional=True, force_input=True,
                   tooltip='JSON list of tracks, each a list of {"x": ..., "y": ...} points in pixels, one per frame.'),
            Mask("track_mask", optional=True,
                 tooltip="Visibility per frame: tracks are visible where the mask has a nonzero pixel (default "
                         "all frames)."),
        ],
        outputs=[Output(TRACKS, "TRACKS", tooltip="Track paths [frames, points, 2] and their visibility."),
                 Output("INT", "track_length", tooltip="The number of frames the tracks cover.")],
    )

    @classmethod
    def execute(cls, track_coords: str = "[]", track_mask: torch.Tensor | None = None) -> tuple[Any, int]:
        tracks = tracks_from_coords(track_coords, track_mask)
        return tracks, int(tracks["track_path"].shape[0])


class GenerateTracks(Node):
    """Parallel motion tracks along a straight line or a Bezier curve from a start to an end point,
    spread across the path, moving with the chosen easing."""

    SCHEMA = Schema(
        "GenerateTracks", display_name="Generate Video Tracks", category=_CATEGORY,
        search_aliases=["motion paths", "camera movement", "trajectory"],
        inputs=[
            Int("width", 832, min=16, max=4096, step=16, tooltip="Width of the video frame in pixels."),
            Int("height", 480, min=16, max=4096, step=16, tooltip="Height of the video frame in pixels."),
            Float("start_x", 0.0, min=0.0, max=1.0, step=0.01, tooltip="Normalized X coordinate (0-1) of the start."),
            Float("start_y", 0.0, min=0.0, max=1.0, step=0.01, tooltip="Normalized Y coordinate (0-1) of the start."),
            Float("end_x", 1.0, min=0.0, max=1.0, step=0.01, tooltip="Normalized X coordinate (0-1) of the end."),
            Float("end_y", 1.0, min=0.0, max=1.0, step=0.01, tooltip="Normalized Y coordinate (0-1) of the end."),
            Int("num_frames", 81, min=1, max=1024, tooltip="Number of frames to generate track positions for."),
            Int("num_tracks", 5, min=1, max=100, tooltip="Number of parallel tracks."),
            Float("track_spread", 0.025, min=0.0, max=1.0, step=0.001,
                  tooltip="Normalized distance between tracks (of the mean of width and height), across the "
                          "direction of motion."),
            Boolean("bezier", False, tooltip="Bend the path into a Bezier curve with the mid point as control point."),
            Float("mid_x", 0.5, min=0.0, max=1.0, step=0.01,
                  tooltip="Normalized X of the Bezier control point (only with `bezier`)."),
            Float("mid_y", 0.5, min=0.0, max=1.0, step=0.01,
                  tooltip="Normalized Y of the Bezier control point (only with `bezier`)."),
            Combo("interpolation", list(EASINGS), default="linear",
                  tooltip="Speed along the path: linear, ease_in, ease_out, ease_in_out, or constant (stay at the "
                          "start)."),
            Mask("track_mask", optional=True,
                 tooltip="Visible frames: where the mask has a nonzero pixel, for all tracks (default all)."),
        ],
        outputs=[Output(TRACKS, "TRACKS", tooltip="Track paths [frames, points, 2] and their visibility."),
                 Output("INT", "track_length", tooltip="The number of frames, `num_frames`.")],
    )

    @classmethod
    def execute(cls, width: int, height: int, start_x: float, start_y: float, end_x: float, end_y: float,
                num_frames: int, num_tracks: int, track_spread: float, bezier: bool, mid_x: float, mid_y: float,
                interpolation: str, track_mask: torch.Tensor | None = None) -> tuple[Any, int]:
        tracks = generate_tracks(width, height, (start_x, start_y), (end_x, end_y), num_frames, num_tracks,
                                 track_spread, (mid_x, mid_y) if bezier else None, interpolation, track_mask)
        return tracks, num_frames


class WanMoveConcatTrack(Node):
    """Join two sets of tracks into one holding the points of both (same frame count); with only
    the first, it passes through."""

    SCHEMA = Schema(
        "WanMoveConcatTrack", display_name="WanMoveConcatTrack", category=_CATEGORY,
        inputs=[Custom(TRACKS, "tracks_1", tooltip="The first tracks."),
                Custom(TRACKS, "tracks_2", optional=True, tooltip="Tracks added after the first ones' points.")],
        outputs=[Output(TRACKS, "TRACKS", tooltip="The points of both, first then second.")],
    )

    @classmethod
    def execute(cls, tracks_1: Any, tracks_2: Any = None) -> tuple[Any]:
        if tracks_2 is None:
            check_tracks(tracks_1, "tracks_1")
            return (tracks_1,)
        return (concat_tracks(tracks_1, tracks_2),)


class WanMoveVisualizeTracks(Node):
    """Draw tracks over the frames: a dot where each visible point is now and its fading trail over
    the last frames, in five repeating colours; without tracks the images pass through."""

    SCHEMA = Schema(
        "WanMoveVisualizeTracks", display_name="WanMoveVisualizeTracks", category=_CATEGORY,
        inputs=[
            Image("images", tooltip="Frames to draw on (repeated when fewer than the tracks' frames)."),
            Custom(TRACKS, "tracks", optional=True, tooltip="The tracks to draw."),
            Int("line_resolution", 24, min=1, max=1024, tooltip="How many previous frames each trail spans."),
            Int("circle_size", 12, min=1, max=128, advanced=True,
                tooltip="Radius of the dot at each point's position, in pixels."),
            Float("opacity", 0.75, min=0.0, max=1.0, step=0.01, tooltip="Opacity of what is drawn."),
            Int("line_width", 16, min=1, max=128, advanced=True, tooltip="Width of the trails in pixels."),
        ],
        outputs=[Output("IMAGE", "IMAGE", tooltip="The frames with the tracks drawn, one per track frame.")],
    )

    @classmethod
    def execute(cls, images: torch.Tensor, line_resolution: int, circle_size: int, opacity: float, line_width: int,
                tracks: Any = None) -> tuple[torch.Tensor]:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[0] < 1:
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValidationError(f"`images` must be an IMAGE [frames, height, width, channels], got {got}")
        if tracks is None:
            return (images,)
        return (draw_tracks(images, tracks, line_resolution, circle_size, opacity, line_width),)
