"""Film nodes: a storyboard's shots as per-shot prompts and lengths, the frame smoother that
keeps shots consistent, and assembly of the shots (cuts, cross-fades, audio) into one VIDEO
with a drift report for the whole film. The work is in ``ops.film``."""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import numpy as np

from nodeloom.node_api import IO, Combo, Custom, Float, Image, Int, Node, Output, Schema, String, ValidationError
from nodeloom.nodes.video._common import AUDIO, CAMERA_MOVE, STORYBOARD, to_frames, to_image
from nodeloom.nodes.video.storyboard_nodes import StoryboardCamera
from nodeloom.ops.drift import DEFAULT_THRESHOLDS
from nodeloom.ops.drift_fix import DEFLICKER_MODES
from nodeloom.ops.film import (
    assemble_shots,
    film_report,
    parse_shot_lengths,
    parse_transitions,
    smooth_shots,
    split_shots,
)
from nodeloom.ops.flow import FLOW_METHODS
from nodeloom.ops.storyboard import Storyboard as Board
from nodeloom.ops.video_plots import render_curves
from nodeloom.ops.video_value import VideoComponents, VideoFromComponents

__all__ = ["FilmAssemble", "FrameSmoother", "StoryboardShots"]

CATEGORY = "video/film"


def _lengths_text(lengths: list[int]) -> str:
    return ", ".join(str(n) for n in lengths)


class StoryboardShots(Node):
    """Each shot of a storyboard as a list item: its prompt (shot size, angle, text, camera move),
    its length in frames and its camera move — what a video model is run with once per shot."""

    SCHEMA = Schema(
        "StoryboardShots",
        display_name="Storyboard Shots",
        category=CATEGORY,
        inputs=[Custom(STORYBOARD, "storyboard", tooltip="The shot list.")],
        outputs=[
            Output(IO.STRING, "prompt", is_list=True, tooltip="One prompt per shot (size, angle, action, camera move, style)."),
            Output(IO.INT, "frames", is_list=True, tooltip="One frame count per shot."),
            Output(CAMERA_MOVE, "camera", is_list=True, tooltip="One camera move per shot."),
            Output(IO.STRING, "shot_frames", tooltip="All shot lengths, e.g. `24, 12, 36` (for Frame Smoother)."),
            Output(IO.STRING, "keyframes", tooltip="The frame where each shot starts, e.g. `0, 24, 36`."),
        ],
    )

    @classmethod
    def execute(cls, storyboard: Board) -> tuple[Any, ...]:
        if not isinstance(storyboard, Board):
            raise ValidationError(f"`storyboard` must come from a Storyboard node, got {type(storyboard).__name__}")
        fps = storyboard.fps
        lengths = [s.frames(fps) for s in storyboard.shots]
        cameras = [StoryboardCamera.execute(storyboard, i + 1)[0] for i in range(len(lengths))]
        return ([s.prompt for s in storyboard.shots], lengths, cameras, _lengths_text(lengths),
                _lengths_text(storyboard.shot_starts()))


def _scalar(values: Any, name: str) -> Any:
    """One value of a list input (``input_is_list`` nodes receive every input as a list)."""
    if isinstance(values, list):
        if len(values) != 1:
            raise ValidationError(f"`{name}` must be a single value, got a list of {len(values)}")
        return values[0]
    return values


class FrameSmoother(Node):
    """Make the shots of a film consistent and steady: each shot's colours are anchored to the
    previous shot's last frames, then deflicker and flow smoothing run within every shot.

    Takes either one frame batch with ``shot_frames`` (e.g. from Storyboard Shots), or a list
    of clips — one per shot, as a video model run per shot gives them.
    """

    SCHEMA = Schema(
        "FrameSmoother",
        display_name="Frame Smoother (Film)",
        category=CATEGORY,
        input_is_list=True,
        inputs=[
            Image("images", tooltip="The film as one batch, or a list of clips (one per shot)."),
            String("shot_frames", "", tooltip="Shot lengths, e.g. `24, 12, 36` (empty: each clip is a shot)."),
            Int("anchor_frames", 4, min=1, max=1000, tooltip="Frames either side of a cut whose colours are matched."),
            Float("anchor_strength", 1.0, min=0.0, max=1.0, step=0.05,
                  tooltip="Colour anchoring to the previous shot (0 = off, 1 = full)."),
            Float("within_shot_strength", 0.0, min=0.0, max=1.0, step=0.05,
                  tooltip="Pull each frame's colours toward its shot's first frame (0 = off)."),
            Int("deflicker_size", 5, min=0, max=129, tooltip="Deflicker window in frames within each shot (0 = off)."),
            Combo("deflicker_mode", list(DEFLICKER_MODES), default="am", tooltip="Deflicker's averaging mode."),
            Float("flow_alpha", 0.0, min=0.0, max=0.95, step=0.05,
                  tooltip="Temporal smoothing along optical flow within each shot (0 = off)."),
            Combo("flow_method", list(FLOW_METHODS), default="dis_medium", tooltip="Optical flow method."),
        ],
        outputs=[
            Output(IO.IMAGE, "images", tooltip="The smoothed film, all shots in one batch."),
            Output(IO.STRING, "shot_frames", tooltip="The shot lengths (for Film Assemble)."),
            Output(IO.STRING, "json", tooltip="Per shot: the colour jump into it before and after anchoring."),
        ],
    )

    @classmethod
    def execute(cls, images: Any, shot_frames: Any = "", anchor_frames: Any = 4, anchor_strength: Any = 1.0,
                within_shot_strength: Any = 0.0, deflicker_size: Any = 5, deflicker_mode: Any = "am",
                flow_alpha: Any = 0.0, flow_method: Any = "dis_medium") -> tuple[Any, ...]:
        batches = [to_frames(b) for b in (images if isinstance(images, list) else [images])]
        lengths_text = _scalar(shot_frames, "shot_frames")
        if len(batches) == 1:
            clips = split_shots(batches[0], parse_shot_lengths(lengths_text))
        elif lengths_text.strip():
            raise ValidationError("give `shot_frames` for one batch, or a list of clips, not both")
        else:
            clips = batches
        clips, notes = smooth_shots(
            clips, anchor_frames=_scalar(anchor_frames, "anchor_frames"),
            anchor_strength=_scalar(anchor_strength, "anchor_strength"),
            within_shot_strength=_scalar(within_shot_strength, "within_shot_strength"),
            deflicker_size=_scalar(deflicker_size, "deflicker_size"), deflicker_mode=_scalar(deflicker_mode, "deflicker_mode"),
            flow_alpha=_scalar(flow_alpha, "flow_alpha"), flow_method=_scalar(flow_method, "flow_method"))
        sizes = {c.shape[1:3] for c in clips}
        if len(sizes) > 1:
            raise ValidationError(f"all shots must have one frame size to form a film, got {sorted(sizes)}")
        film = to_image(np.concatenate(clips))
        return film, _lengths_text([len(c) for c in clips]), json.dumps({"shots": notes})


class FilmAssemble(Node):
    """Join the shots with cuts or cross-fades, add an optional audio track, and report the
    whole film's drift (per-shot curves on the film's timeline, flagged segments, colour jumps
    at the cuts). Save the VIDEO with Save Video."""

    SCHEMA = Schema(
        "FilmAssemble",
        display_name="Film Assemble (Shots → Video)",
        category=CATEGORY,
        inputs=[
            Image("images", tooltip="The shots in one batch (from Frame Smoother)."),
            String("shot_frames", "", tooltip="Shot lengths, e.g. `24, 12, 36` (empty: one shot)."),
            Float("fps", 24.0, min=1.0, max=240.0, tooltip="Frames per second of the film."),
            Int("crossfade_frames", 0, min=0, max=1000, tooltip="Cross-fade length at every boundary (0 = cuts)."),
            String("transitions", "", tooltip="Per boundary: `cut`, `fade N` or `dissolve N`, comma-separated (overrides crossfade_frames)."),
            Int("anchor_frames", 4, min=1, max=1000, tooltip="Frames either side of a boundary whose colours are compared."),
            Int("max_side", 256, min=0, max=16384, tooltip="Measure drift on frames resized to at most this side (0 = full)."),
            Custom(AUDIO, "audio", optional=True, tooltip="A soundtrack (cut to the film's length)."),
        ],
        outputs=[
            Output(IO.VIDEO, "VIDEO", tooltip="The film: frames, frame rate and audio."),
            Output(IO.IMAGE, "drift_plot", tooltip="The film's drift curves with thresholds and flagged segments."),
            Output(IO.STRING, "drift_json", tooltip="Curves, flagged segments, cross-shot colour jumps and summary."),
        ],
    )

    @classmethod
    def execute(cls, images: Any, shot_frames: str = "", fps: float = 24.0, crossfade_frames: int = 0,
                transitions: str = "", anchor_frames: int = 4, max_side: int = 256,
                audio: dict[str, Any] | None = None) -> tuple[Any, ...]:
        clips = split_shots(to_frames(images), parse_shot_lengths(shot_frames))
        fades = parse_transitions(transitions, len(clips) - 1, crossfade_frames)
        film, starts = assemble_shots(clips, fades)
        report = film_report(clips, starts, anchor_frames=anchor_frames, max_side=max_side)
        report["transitions"] = ["cut" if f == 0 else f"fade {f}" for f in fades]
        plot_curves = {k: v for k, v in report["curves"].items() if k != "visible_fraction"}
        thresholds = {k: v for k, v in DEFAULT_THRESHOLDS.items() if k in plot_curves}
        plot = render_curves(plot_curves, thresholds, report["flagged"])
        rate = Fraction(fps).limit_denominator(1001)
        video = VideoFromComponents(VideoComponents(to_image(film), rate, audio))
        return video, to_image(plot), json.dumps(report)

