"""WanDancerPadKeyframesList (ComfyUI's id): a Wan Dancer "global" clip spread as keyframes over
padded fixed-length segments, with keyframe masks and the audio cut to match, as lists for the
"local" pass (WanDancerVideo, a model nodeloom does not run). The work is
:mod:`nodeloom.ops.dance_keyframes`."""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.node_api import Custom, Image, Int, Node, Output, Schema
from nodeloom.ops.dance_keyframes import pad_keyframe_segments, split_audio
from nodeloom.ops.video_value import check_audio

__all__ = ["WanDancerPadKeyframesList"]


class WanDancerPadKeyframesList(Node):
    """Spread the frames over `num_segments` segments of `segment_length` frames as keyframes
    (evenly over the whole run; a boundary keyframe ends one segment and starts the next), pad
    the other frames with black, and emit per segment the frames, a mask that is 1 on
    keyframes, and the matching share of the audio."""

    SCHEMA = Schema(
        "WanDancerPadKeyframesList", display_name="WanDancerPadKeyframesList", category="conditioning/video_models",
        inputs=[
            Image("images", tooltip="The keyframes (e.g. the global pass's frames) to spread over the segments."),
            Int("segment_length", 149, min=1, max=10000, tooltip="Length of each segment in frames."),
            Int("num_segments", 1, min=1, max=100, tooltip="How many padded segments to emit as lists."),
            Custom("AUDIO", "audio", optional=True, tooltip="Audio to slice for each emitted segment."),
        ],
        outputs=[
            Output("IMAGE", "keyframes_sequence", is_list=True, tooltip="Per segment: keyframes in place, black "
                                                                        "padding elsewhere."),
            Output("MASK", "keyframes_mask", is_list=True, tooltip="Per segment: 1 on keyframe frames, 0 on padding."),
            Output("AUDIO", "audio_segment", is_list=True, tooltip="Per segment: its share of the audio (None "
                                                                   "without audio)."),
        ],
    )

    @classmethod
    def execute(cls, images: torch.Tensor, segment_length: int, num_segments: int,
                audio: Any = None) -> tuple[list[Any], ...]:
        segments = pad_keyframe_segments(images, segment_length, num_segments)
        audio_parts: list[Any] = split_audio(check_audio(audio), num_segments) if audio is not None else \
            [None] * num_segments
        return [s[0] for s in segments], [s[1] for s in segments], audio_parts
