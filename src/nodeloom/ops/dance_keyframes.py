"""Keyframe segments for two-pass dance video (Wan Dancer): a short "global" clip spread as
keyframes over several fixed-length segments, each padded with blank frames and a mask of
which frames are keyframes, and the audio cut into the same segments.

Owns :func:`keyframe_positions`, :func:`pad_keyframe_segments` and :func:`split_audio`. Plain
tensor functions: no nodes, no engine.
"""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.errors import ValidationError

__all__ = ["keyframe_positions", "pad_keyframe_segments", "split_audio"]


def keyframe_positions(count: int, segment_length: int, num_segments: int) -> list[list[tuple[int, int]]]:
    """Per segment, ``(keyframe index, frame in the segment)`` pairs.

    The ``count`` keyframes are spread evenly over the whole run of ``num_segments`` segments:
    keyframe ``k`` sits at ``u = k / (count - 1)`` of it. Segment ``i`` holds the keyframes with
    ``i / num_segments <= u <= (i + 1) / num_segments``, placed linearly from its first frame to
    its last, so a keyframe on a boundary ends one segment and starts the next. When two fall on
    the same frame, the later keyframe is used.
    """
    segments: list[list[tuple[int, int]]] = [[] for _ in range(num_segments)]
    for k in range(count):
        u = k / (count - 1) if count > 1 else 0.0
        for i in range(num_segments):
            local = u * num_segments - i
            if -1e-9 <= local <= 1 + 1e-9:
                segments[i].append((k, int(round(min(max(local, 0.0), 1.0) * (segment_length - 1)))))
    return segments


def pad_keyframe_segments(images: torch.Tensor, segment_length: int,
                          num_segments: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``num_segments`` pairs ``(frames [L,H,W,C], mask [L,H,W])``: keyframes of
    :func:`keyframe_positions` where they fall, black (0) frames elsewhere; the mask is 1 on
    keyframe frames and 0 on padding.

    Raises:
        ValidationError: ``images`` is not an IMAGE batch, or a count is below 1.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[0] < 1:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValidationError(f"`images` must be an IMAGE [frames, height, width, channels], got {got}")
    if segment_length < 1 or num_segments < 1:
        raise ValidationError(f"`segment_length` and `num_segments` must be ≥ 1, got {segment_length} and "
                              f"{num_segments}")
    _, height, width, channels = images.shape
    out = []
    for placed in keyframe_positions(int(images.shape[0]), segment_length, num_segments):
        frames = images.new_zeros((segment_length, height, width, channels))
        mask = images.new_zeros((segment_length, height, width))
        for k, position in placed:
            frames[position] = images[k]
            mask[position] = 1.0
        out.append((frames, mask))
    return out


def split_audio(audio: dict[str, Any], num_segments: int) -> list[dict[str, Any]]:
    """The waveform ``[B,C,S]`` cut into ``num_segments`` consecutive, near-equal pieces
    (sample boundaries ``round(i * S / num_segments)``), each with the same sample rate."""
    waveform = audio["waveform"]
    total = int(waveform.shape[-1])
    cuts = [round(i * total / num_segments) for i in range(num_segments + 1)]
    return [{**audio, "waveform": waveform[..., cuts[i]:cuts[i + 1]]} for i in range(num_segments)]
