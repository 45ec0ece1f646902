"""WanDancerPadKeyframesList (ComfyUI's id): the frames of a Wan Dancer "global" pass spread as
keyframes over padded fixed-length segments of the song, with keyframe masks and the audio cut
to match, as lists for the "local" pass (WanDancerVideo, a model nodeloom does not run). The
arithmetic is :mod:`nodeloom.ops.dance_keyframes`."""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.node_api import Custom, Image, Int, Node, Output, Schema
from nodeloom.ops.dance_keyframes import audio_segment, pad_keyframe_segment, total_frames_for
from nodeloom.ops.video_value import check_audio

__all__ = ["WanDancerPadKeyframesList"]


class WanDancerPadKeyframesList(Node):
    """Split the frames into `num_segments` padded segments of `segment_length` frames: the video
    spans as many 30 fps segments as the audio needs, the frames are spread evenly over it as
    keyframes (each segment ends on a keyframe the next one starts from), the other frames are
    black, a mask is 1 on keyframes, and each segment gets its span of the audio."""

    SCHEMA = Schema(
        "WanDancerPadKeyframesList", display_name="WanDancerPadKeyframesList", category="image/video",
        inputs=[
            Image("images", tooltip="The keyframes (e.g. the global pass's frames) to spread over the segments."),
            Int("segment_length", 149, min=1, max=10000, tooltip="Length of each segment (usually 149 frames)"),
            Int("num_segments", 1, min=1, max=100, tooltip="How many padded segments to emit as lists."),
            Custom("AUDIO", "audio", tooltip="The audio, cut into one piece per output segment."),
        ],
        outputs=[
            Output("IMAGE", "keyframes_sequence", is_list=True, tooltip="Padded keyframe sequences"),
            Output("MASK", "keyframes_mask", is_list=True, tooltip="Masks indicating valid frames"),
            Output("AUDIO", "audio_segment", is_list=True, tooltip="Audio segment for each video segment"),
        ],
    )

    @classmethod
    def execute(cls, images: torch.Tensor, segment_length: int, num_segments: int, audio: Any) -> tuple[list[Any], ...]:
        audio = check_audio(audio)
        total = total_frames_for(audio["waveform"].shape[-1] / audio["sample_rate"], segment_length)
        segments = [pad_keyframe_segment(images, segment_length, i, total) for i in range(num_segments)]
        return ([s[0] for s in segments], [s[1] for s in segments],
                [audio_segment(audio, segment_length, i) for i in range(num_segments)])
