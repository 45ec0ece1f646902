"""Keyframe segments for two-pass dance video (Wan Dancer): the frames of a "global" pass spread
as keyframes over fixed-length segments of the full song at 30 fps, each segment padded with
black frames and a mask of its keyframes, and the audio cut to each segment's time span.

Owns :func:`total_frames_for`, :func:`keyframe_positions`, :func:`pad_keyframe_segment` and
:func:`audio_segment`, following ComfyUI's WanDancerPadKeyframes arithmetic. Plain tensor
functions: no nodes, no engine.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from nodeloom.errors import ValidationError

__all__ = ["DANCE_FPS", "audio_segment", "keyframe_positions", "pad_keyframe_segment", "total_frames_for"]

#: the frame rate of the local (final) pass
DANCE_FPS = 30
#: seconds of audio past whole segments that do not start another segment
_TAIL_BUFFER = 0.2


def total_frames_for(duration: float, segment_length: int) -> int:
    """Frames of the whole video: as many ``segment_length`` segments at :data:`DANCE_FPS` as the
    audio needs (a tail under 0.2 s adds none; no audio past 0.2 s gives 0)."""
    if duration <= _TAIL_BUFFER:
        return 0
    return (int((duration - _TAIL_BUFFER) / (segment_length / DANCE_FPS)) + 1) * segment_length


def _inner_count(end: int, interval: float) -> int:
    """How many keyframes ``c = 0, 1, ...`` fall before ``end`` with a whole interval to spare."""
    count = 0
    while count * interval < end - interval:
        count += 1
    return count


def keyframe_positions(count: int, segment_length: int, segment_index: int,
                       total_frames: int) -> list[tuple[int, int]]:
    """``(frame in the segment, keyframe index)`` pairs for one segment.

    The ``count`` keyframes are spaced ``total_frames / count`` frames apart over the whole
    video. A segment places its share at ``ceil(interval * c)`` and always ends on a keyframe
    at its last frame, which the next segment starts from again. Pairs past the last keyframe or
    the segment are dropped.
    """
    if total_frames <= 0 or count <= 0:
        return []
    interval = total_frames / count
    segments = math.ceil(total_frames / segment_length)

    def last_frame(index: int) -> int:
        return total_frames - segment_length * index - 1 if index == segments - 1 else segment_length - 1

    before = sum(_inner_count(last_frame(i), interval) for i in range(segment_index))
    end = last_frame(segment_index)
    inner = _inner_count(end, interval)
    pairs = [(int(math.ceil(interval * c)), before + c) for c in range(inner)] + [(end, before + inner)]
    return [(pos, k) for pos, k in pairs if k < count and 0 <= pos < segment_length]


def pad_keyframe_segment(images: torch.Tensor, segment_length: int, segment_index: int,
                         total_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(frames [L,H,W,C], mask [L,H,W])`` of one segment: the keyframes of
    :func:`keyframe_positions` in place, black (0) frames elsewhere; the mask is 1 on keyframes.

    Raises:
        ValidationError: ``images`` is not an IMAGE batch.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValidationError(f"`images` must be an IMAGE [frames, height, width, channels], got {got}")
    count, height, width, channels = images.shape
    frames = images.new_zeros((segment_length, height, width, channels))
    mask = images.new_zeros((segment_length, height, width))
    placed = keyframe_positions(int(count), segment_length, segment_index, total_frames)
    if placed:
        positions = torch.tensor([p for p, _ in placed], dtype=torch.long)
        frames[positions] = images[torch.tensor([k for _, k in placed], dtype=torch.long)]
        mask[positions] = 1.0
    return frames, mask


def audio_segment(audio: dict[str, Any], segment_length: int, segment_index: int) -> dict[str, Any]:
    """The audio of segment ``segment_index``: ``segment_length`` frames at :data:`DANCE_FPS`
    from its start, cut short at the end of the audio (empty past it)."""
    waveform, rate = audio["waveform"], int(audio["sample_rate"])
    duration = waveform.shape[-1] / rate
    start = segment_index * segment_length / DANCE_FPS
    end = min(start + segment_length / DANCE_FPS, duration)
    return {"waveform": waveform[..., int(start * rate):max(int(end * rate), int(start * rate))],
            "sample_rate": rate}
