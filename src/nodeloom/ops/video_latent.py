"""Frame-axis operations on video latents ``[B, C, T, H, W]``: replace a run of frames, match the
first frames' statistics to later ones, and split a latent into overlapping temporal chunks
and cross-fade them back together (a Hann fade).

Plain functions on tensors; the nodes that wrap them live in ``nodes.diffusion.video_latent_nodes``.
No engine, no nodes.
"""

from __future__ import annotations

import math

import torch

from nodeloom.errors import ValidationError

__all__ = ["MEAN_PULL", "STD_PULL", "check_video_latent", "chunk_bounds", "hann_ramp", "merge_temporal_chunks",
           "normalize_latent_start", "replace_latent_frames"]


def check_video_latent(samples: object, name: str) -> torch.Tensor:
    """``samples`` if it is a 5-D video latent tensor, else a clear error naming ``name``."""
    if not isinstance(samples, torch.Tensor) or samples.ndim != 5:
        got = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise ValidationError(f"`{name}` must be a video LATENT with samples [batch, channels, frames, height, "
                              f"width], got {got}")
    return samples


def replace_latent_frames(destination: torch.Tensor, source: torch.Tensor, index: int) -> torch.Tensor | None:
    """``destination`` with frames ``index .. index + source frames`` taken from ``source``.

    A negative ``index`` counts from the end. Returns None (nothing replaced) when ``index``
    lies outside the destination or the source does not fit from there, as ComfyUI does.

    Raises:
        ValidationError: batch, channel or spatial sizes differ.
    """
    dest = check_video_latent(destination, "destination")
    src = check_video_latent(source, "source")
    if src.shape[:2] != dest.shape[:2] or src.shape[3:] != dest.shape[3:]:
        raise ValidationError(f"`source` latent {tuple(src.shape)} must match `destination` {tuple(dest.shape)} in "
                              "every axis but frames")
    frames = dest.shape[2]
    start = index + frames if index < 0 else index
    if start < 0 or start >= frames or start + src.shape[2] > frames:
        return None
    out = dest.clone()
    out[:, :, start:start + src.shape[2]] = src.to(out.device, out.dtype)
    return out


#: how far the reference statistics may pull the start frames' own: (below, above) for the
#: mean and for the standard deviation (ComfyUI's Kandinsky 5 values)
MEAN_PULL = (0.3, 0.35)
STD_PULL = (0.35, 0.5)


def normalize_latent_start(samples: torch.Tensor, start_frames: int, reference_frames: int) -> torch.Tensor:
    """The first ``start_frames`` frames, each standardised over its channels and pixels and
    given the mean and standard deviation of the ``reference_frames`` frames after them (at
    most ``T - 1``; one number each over all of them), held within :data:`MEAN_PULL` /
    :data:`STD_PULL` of the frame's own statistics. A one-frame latent comes back unchanged.

    Raises:
        ValidationError: the start frames leave no reference frame.
    """
    samples = check_video_latent(samples, "latent")
    frames = samples.shape[2]
    if frames <= 1:
        return samples
    if start_frames >= frames:
        raise ValidationError(f"`start_frame_count` ({start_frames}) leaves no reference frame in a latent of "
                              f"{frames} frames; give at most {frames - 1}")
    count = min(reference_frames, frames - 1)
    reference = samples[:, :, start_frames:start_frames + count].float()
    first = samples[:, :, :start_frames].float()
    mean = first.mean(dim=(1, 3, 4), keepdim=True)  # per sample and frame
    std = first.std(dim=(1, 3, 4), keepdim=True)
    target_mean = torch.clamp(reference.mean(), mean - MEAN_PULL[0], mean + MEAN_PULL[1])
    target_std = torch.clamp(reference.std(), std - STD_PULL[0], std + STD_PULL[1])
    out = samples.clone()
    out[:, :, :start_frames] = ((first - mean) / (std + 1e-8) * target_std + target_mean).to(samples.dtype)
    return out


def chunk_bounds(frames: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    """``(start, end)`` of chunks of ``chunk`` frames overlapping by ``overlap``, covering
    ``frames``; every chunk is full length except possibly the last, which is longer than
    ``overlap``. One chunk when ``frames <= chunk``."""
    if chunk < 1 or not 0 <= overlap < chunk:
        raise ValidationError(f"chunks of {chunk} frames cannot overlap by {overlap} (need 0 ≤ overlap < chunk)")
    bounds, start = [], 0
    while True:
        bounds.append((start, min(start + chunk, frames)))
        if start + chunk >= frames:
            return bounds
        start += chunk - overlap


def hann_ramp(overlap: int) -> torch.Tensor:
    """The earlier chunk's weight at each of ``overlap`` shared frames (the later one gets
    ``1 - w``): 1 over the first third, a half Hann window down over the middle third, 0 over
    the last third (ComfyUI's SeedVR2 cross-fade)."""
    if overlap <= 0:
        return torch.zeros(0)
    ramp = torch.linspace(0.0, 1.0, overlap, dtype=torch.float64)
    ramp = ((ramp - 1.0 / 3.0) * 3.0).clamp(0.0, 1.0)
    return (0.5 + 0.5 * torch.cos(math.pi * ramp)).float()


def merge_temporal_chunks(chunks: list[torch.Tensor], overlap: int) -> torch.Tensor:
    """Chunks joined along frames; consecutive chunks share ``overlap`` frames (at most one
    less than the first chunk's length), cross-faded with :func:`hann_ramp` (plain
    concatenation at 0). Chunks made by :func:`chunk_bounds` merge back to the original.

    Raises:
        ValidationError: ``overlap`` is negative, a chunk is not 5-D, chunks differ in anything
            but frames, a chunk before the last differs in length from the first, or the last is
            shorter than the overlap.
    """
    if overlap < 0:
        raise ValidationError(f"`temporal_overlap` must be ≥ 0, got {overlap}")
    if not chunks:
        raise ValidationError("`latents`: no chunk to merge")
    first = check_video_latent(chunks[0], "latents[0]")
    for i, chunk in enumerate(chunks[1:], start=1):
        check_video_latent(chunk, f"latents[{i}]")
        if chunk.shape[:2] != first.shape[:2] or chunk.shape[3:] != first.shape[3:]:
            raise ValidationError(f"`latents[{i}]` {tuple(chunk.shape)} differs from `latents[0]` "
                                  f"{tuple(first.shape)} in more than frames")
        if i < len(chunks) - 1 and chunk.shape[2] != first.shape[2]:
            raise ValidationError(f"`latents[{i}]` has {chunk.shape[2]} frames; only the last chunk may differ from "
                                  f"the first's {first.shape[2]}")
    if len(chunks) == 1:
        return first
    if overlap == 0:
        return torch.cat([c.to(first.device, first.dtype) for c in chunks], dim=2)
    length = first.shape[2]
    shared = min(overlap, length - 1)
    if chunks[-1].shape[2] < shared:
        raise ValidationError(f"the last chunk has {chunks[-1].shape[2]} frames, fewer than the {shared} it shares "
                              "with the one before")
    step = length - shared
    total = step * (len(chunks) - 1) + chunks[-1].shape[2]
    merged = first.new_empty((*first.shape[:2], total, *first.shape[3:]))
    merged[:, :, :length] = first
    filled = length
    for i, chunk in enumerate(chunks[1:], start=1):
        chunk = chunk.to(first.device, first.dtype)
        start, end = i * step, i * step + chunk.shape[2]
        fade = min(filled - start, chunk.shape[2])
        if fade > 0:
            w = hann_ramp(fade).to(first.device, first.dtype).view(1, 1, -1, 1, 1)
            merged[:, :, start:start + fade] = merged[:, :, start:start + fade] * w + chunk[:, :, :fade] * (1 - w)
        merged[:, :, start + max(fade, 0):end] = chunk[:, :, max(fade, 0):]
        filled = end
    return merged
