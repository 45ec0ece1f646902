"""Drift nodes: measure temporal drift (warping error, flicker, colour drift) and reduce it
(colour anchoring, deflicker, flow-guided smoothing)."""

from __future__ import annotations

import json
from typing import Any

from nodeloom.node_api import IO, Boolean, Combo, Float, Image, Int, Node, Output, Schema, ValidationError
from nodeloom.nodes.video._common import frame_progress, to_frames, to_image
from nodeloom.ops.drift import DEFAULT_THRESHOLDS, measure_drift
from nodeloom.ops.drift_fix import ANCHOR_METHODS, COLOR_SPACES, DEFLICKER_MODES, color_anchor, deflicker, flow_smooth
from nodeloom.ops.flow import FLOW_METHODS
from nodeloom.ops.video_plots import render_curves

__all__ = ["ColorAnchor", "Deflicker", "DriftMetrics", "FlowSmooth"]


def _flow_input() -> Combo:
    return Combo("flow_method", list(FLOW_METHODS), default="dis_medium", tooltip="Optical flow (OpenCV DIS presets or Farneback).")


class DriftMetrics(Node):
    """Measure temporal drift of a frame sequence and flag the frames that drift.

    Curves: warping error (Lai et al. 2018, ×1000, occlusion-masked), VBench flicker
    (mean |Δ| of consecutive frames, 0..255), luminance jumps (0..255) and colour drift
    (CIEDE2000 of the mean colour vs the anchor frame). Segments above a threshold are
    flagged; a still sequence scores 0 / 1.0 / 0 / 0.
    """

    SCHEMA = Schema(
        "DriftMetrics",
        display_name="Drift Metrics",
        category="video/drift",
        inputs=[
            Image("images", tooltip="The frames to measure (at least 2)."),
            Image("source", optional=True, tooltip="Frames to take the motion from (e.g. the video these were made from)."),
            Int("anchor_frame", 0, min=0, max=100000, tooltip="Reference frame for colour drift."),
            Float("warp_threshold", DEFAULT_THRESHOLDS["warping_error"], min=0.0, max=1000.0, tooltip="Flag warping error above this (MSE×1000)."),
            Float("luma_threshold", DEFAULT_THRESHOLDS["luma_jump"], min=0.0, max=255.0, tooltip="Flag luminance jumps above this (0..255)."),
            Float("delta_e_threshold", DEFAULT_THRESHOLDS["delta_e"], min=0.0, max=100.0, tooltip="Flag colour drift above this ΔE00."),
            Boolean("warping_error", True, tooltip="Compute the warping error (needs optical flow; the slowest part)."),
            _flow_input(),
            Int("max_side", 512, min=0, max=16384, tooltip="Measure on frames resized to at most this side (0 = full size)."),
        ],
        outputs=[
            Output(IO.IMAGE, "plot", tooltip="Per-frame curves with thresholds and flagged segments."),
            Output(IO.STRING, "json", tooltip="Curves, summary and flagged segments as JSON."),
            Output(IO.FLOAT, "flicker_score", tooltip="VBench temporal flicker score (1 = no change)."),
            Output(IO.FLOAT, "mean_delta_e", tooltip="Mean colour drift vs the anchor (ΔE00)."),
            Output(IO.FLOAT, "warp_error", tooltip="Mean warping error (MSE×1000; 0 when not computed)."),
        ],
    )

    @classmethod
    def execute(cls, images: Any, source: Any = None, anchor_frame: int = 0, warp_threshold: float = 4.0,
                luma_threshold: float = 4.0, delta_e_threshold: float = 3.0, warping_error: bool = True,
                flow_method: str = "dis_medium", max_side: int = 512) -> tuple[Any, ...]:
        frames = to_frames(images)
        if anchor_frame >= len(frames):
            raise ValidationError(f"`anchor_frame` must be below the {len(frames)} frames, got {anchor_frame}")
        report = measure_drift(
            frames, source=to_frames(source, "source") if source is not None else None, anchor=anchor_frame,
            thresholds={"warping_error": warp_threshold, "luma_jump": luma_threshold, "delta_e": delta_e_threshold},
            flow_method=flow_method, include_warp=warping_error, max_side=max_side,
        )
        shown = {k: v for k, v in report.curves.items() if k != "visible_fraction"}
        plot = render_curves(shown, report.thresholds, report.flagged)
        s = report.summary
        return (to_image(plot), json.dumps(report.to_dict()), s["temporal_flicker_score"], s["mean_delta_e"],
                s.get("warping_error", 0.0))


class ColorAnchor(Node):
    """Keep colours steady: match every frame's colour statistics to an anchor frame
    (Deforum's colour coherence), by mean/std or full histogram, in Lab, HSV or RGB."""

    SCHEMA = Schema(
        "ColorAnchor",
        display_name="Colour Anchor (Drift Fix)",
        category="video/drift",
        inputs=[
            Image("images", tooltip="The frames to correct."),
            Int("anchor_frame", 0, min=0, max=100000, tooltip="The frame whose colours the others follow."),
            Combo("color_space", list(COLOR_SPACES), default="lab", tooltip="Where the statistics are matched."),
            Combo("method", list(ANCHOR_METHODS), default="mean_std", tooltip="`mean_std` keeps structure; `histogram` matches fully."),
            Float("strength", 1.0, min=0.0, max=1.0, tooltip="0 = unchanged, 1 = fully matched."),
            Image("reference", optional=True, tooltip="Use this image as the anchor instead of a frame."),
        ],
        outputs=[Output(IO.IMAGE, "IMAGE", tooltip="The corrected frames.")],
    )

    @classmethod
    def execute(cls, images: Any, anchor_frame: int = 0, color_space: str = "lab", method: str = "mean_std",
                strength: float = 1.0, reference: Any = None) -> tuple[Any]:
        frames = to_frames(images)
        anchor = to_frames(reference, "reference")[0] if reference is not None else anchor_frame
        out = color_anchor(frames, anchor, space=color_space, method=method, strength=strength,
                           on_frame=frame_progress(len(frames)))
        return (to_image(out),)


class Deflicker(Node):
    """Even out brightness flicker like FFmpeg's deflicker: scale each frame so its mean
    luminance follows an average over neighbouring frames."""

    SCHEMA = Schema(
        "Deflicker",
        display_name="Deflicker (Drift Fix)",
        category="video/drift",
        inputs=[
            Image("images", tooltip="The frames to correct."),
            Int("size", 5, min=2, max=129, tooltip="Window length in frames."),
            Combo("mode", list(DEFLICKER_MODES), default="am",
                  tooltip="Average: am arithmetic, gm geometric, hm harmonic, qm quadratic, cm cubic, pm power, median."),
            Float("strength", 1.0, min=0.0, max=1.0, tooltip="How much of the correction to apply."),
        ],
        outputs=[Output(IO.IMAGE, "IMAGE", tooltip="The corrected frames.")],
    )

    @classmethod
    def execute(cls, images: Any, size: int = 5, mode: str = "am", strength: float = 1.0) -> tuple[Any]:
        return (to_image(deflicker(to_frames(images), size=size, mode=mode, strength=strength)),)


class FlowSmooth(Node):
    """Smooth frames along their motion: blend each frame with the previous result warped
    by optical flow, leaving occluded pixels untouched (no ghosting)."""

    SCHEMA = Schema(
        "FlowSmooth",
        display_name="Flow-Guided Smoothing (Drift Fix)",
        category="video/drift",
        inputs=[
            Image("images", tooltip="The frames to smooth."),
            Float("alpha", 0.5, min=0.0, max=0.95, tooltip="Weight of the warped previous frame."),
            _flow_input(),
            Boolean("occlusion_aware", True, tooltip="Skip occluded pixels and changes the flow does not explain."),
            Float("tolerance", 0.2, min=0.01, max=1.0, tooltip="Mean RGB difference above which a pixel is left alone."),
        ],
        outputs=[Output(IO.IMAGE, "IMAGE", tooltip="The smoothed frames.")],
    )

    @classmethod
    def execute(cls, images: Any, alpha: float = 0.5, flow_method: str = "dis_medium",
                occlusion_aware: bool = True, tolerance: float = 0.2) -> tuple[Any]:
        frames = to_frames(images)
        out = flow_smooth(frames, alpha=alpha, method=flow_method, occlusion_aware=occlusion_aware, tolerance=tolerance,
                          on_frame=frame_progress(len(frames)))
        return (to_image(out),)
