"""Model-free video-latent nodes with ComfyUI's ids: ReplaceVideoLatentFrames,
NormalizeVideoLatentStart (Kandinsky 5 image-to-video) and SeedVR2TemporalChunk /
SeedVR2TemporalMerge (a SeedVR2 latent cut into overlapping temporal chunks that are sampled one
by one and cross-faded back). The tensor work is :mod:`nodeloom.ops.video_latent`."""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

from nodeloom.errors import ValidationError
from nodeloom.node_api import MAX_RESOLUTION, Custom, Int, Latent, Node, Output, Schema, services
from nodeloom.ops.video_latent import (
    check_video_latent,
    chunk_bounds,
    merge_temporal_chunks,
    normalize_latent_start,
    replace_latent_frames,
)

__all__ = ["SEEDVR2_LATENT_CHANNELS", "NormalizeVideoLatentStart", "ReplaceVideoLatentFrames",
           "SeedVR2TemporalChunk", "SeedVR2TemporalMerge", "auto_frames_per_chunk"]

log = logging.getLogger(__name__)

#: channels of the SeedVR2 video VAE's latent (16, temporal factor 4, spatial factor 8)
SEEDVR2_LATENT_CHANNELS = 16
#: auto chunk sizing, ComfyUI's measured SeedVR2 figures: latent frames that fit =
#: (free GiB - reserved - K * sigma) / (GiB per megapixel-frame * megapixels per frame)
_GIB = 1024**3
_GIB_PER_MPX_FRAME = 0.55
_RESERVED_GIB = 8.5
_SIGMA_GIB = 0.55
_SIGMA_K = 4


class ReplaceVideoLatentFrames(Node):
    """Put the source latent's frames into the destination from `index` on (negative counts from
    the end); the result carries the source's other entries, as in ComfyUI. When they do not
    fit, the destination comes back unchanged with a warning."""

    SCHEMA = Schema(
        "ReplaceVideoLatentFrames", display_name="ReplaceVideoLatentFrames", category="latent/batch",
        search_aliases=["replace frames", "insert latent frames", "splice video latent"],
        inputs=[
            Latent("destination", tooltip="The latent whose frames are replaced."),
            Latent("source", optional=True, tooltip="The latent whose frames go in (default: nothing replaced)."),
            Int("index", 0, min=-MAX_RESOLUTION, max=MAX_RESOLUTION, step=1,
                tooltip="First latent frame of the destination to replace; negative counts from the end."),
        ],
        outputs=[Output("LATENT", "LATENT", tooltip="Destination latent with replaced frames.")],
    )

    @classmethod
    def execute(cls, destination: dict[str, Any], index: int, source: dict[str, Any] | None = None) -> tuple[Any]:
        dest = check_video_latent(destination.get("samples"), "destination")
        if source is None:
            return (destination,)
        samples = replace_latent_frames(dest, source.get("samples"), index)
        if samples is None:
            log.warning("ReplaceVideoLatentFrames: %d source frames do not fit a destination of %d frames at index "
                        "%d; the destination is returned unchanged", source["samples"].shape[2], dest.shape[2], index)
            return (destination,)
        return ({**source, "samples": samples},)


class NormalizeVideoLatentStart(Node):
    """Normalize the first frames of a video latent towards the mean and standard deviation of the
    frames after them (within limits of their own), so the start does not stand out from the rest."""

    SCHEMA = Schema(
        "NormalizeVideoLatentStart", display_name="NormalizeVideoLatentStart", category="conditioning/video_models",
        inputs=[
            Latent("latent", tooltip="The video latent."),
            Int("start_frame_count", 4, min=1, max=MAX_RESOLUTION, step=1,
                tooltip="Number of latent frames to normalize, counted from the start."),
            Int("reference_frame_count", 5, min=1, max=MAX_RESOLUTION, step=1,
                tooltip="Number of latent frames after the start frames whose statistics they take."),
        ],
        outputs=[Output("LATENT", "latent", tooltip="The latent with its first frames normalized.")],
    )

    @classmethod
    def execute(cls, latent: dict[str, Any], start_frame_count: int, reference_frame_count: int) -> tuple[Any]:
        samples = check_video_latent(latent.get("samples"), "latent")
        out = normalize_latent_start(samples, start_frame_count, reference_frame_count)
        return (latent if out is samples else {**latent, "samples": out},)


def _free_bytes() -> int:
    """Free memory where the sampler will run: the model manager's CUDA device, else host RAM."""
    svc = services(required=False)
    device = svc.models.device if svc is not None else None
    if device is None and torch.cuda.is_available():
        device = torch.device("cuda")
    if device is not None and getattr(device, "type", "") == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def auto_frames_per_chunk(batch: int, height: int, width: int, frames: int, free_bytes: int) -> int:
    """Pixel frames per chunk (4n+1) for a ``batch`` x ``height`` x ``width`` latent of
    ``frames`` latent frames that fit ``free_bytes`` by ComfyUI's measured SeedVR2 memory model
    (at least one latent frame, at most the whole clip)."""
    megapixels = batch * height * width * 64 / 1e6  # the VAE's 8x8 spatial factor
    budget = free_bytes / _GIB - _RESERVED_GIB - _SIGMA_K * _SIGMA_GIB
    latent_frames = max(1, int(budget / (_GIB_PER_MPX_FRAME * megapixels)))
    return min(4 * (latent_frames - 1) + 1, 4 * (frames - 1) + 1)


def _slice(latent: dict[str, Any], start: int, end: int, frames: int) -> dict[str, Any]:
    out = {k: v for k, v in latent.items() if k not in ("samples", "noise_mask")}
    out["samples"] = latent["samples"][:, :, start:end]
    mask = latent.get("noise_mask")
    if isinstance(mask, torch.Tensor) and mask.ndim == 5 and mask.shape[2] == frames:
        out["noise_mask"] = mask[:, :, start:end]
    return out


class SeedVR2TemporalChunk(Node):
    """Split a SeedVR2 video latent into temporal chunks sampled one at a time, sized by hand
    (manual) or to fit the free memory (auto), overlapping by `temporal_overlap` latent frames."""

    SCHEMA = Schema(
        "SeedVR2TemporalChunk", display_name="Split SeedVR2 Latent", category="model/latent/batch",
        search_aliases=["seedvr2", "split", "chunk", "temporal", "video upscale", "rebatch"],
        inputs=[
            Latent("latent", tooltip="The VAE-encoded SeedVR2 latent [B, 16, T, H, W] to split."),
            Int("temporal_overlap", 0, min=0, max=MAX_RESOLUTION,
                tooltip="Latent frames shared between adjacent chunks and crossfaded at merge; 0 = no overlap. "
                        "At most one less than a chunk's latent frames."),
            Custom("COMFY_DYNAMICCOMBO_V3", "chunking_mode",
                   tooltip="manual uses frames_per_chunk exactly; auto predicts the largest chunk that fits free "
                           "memory.",
                   options=[{"key": "auto", "inputs": {"required": {}}},
                            {"key": "manual", "inputs": {"required": {"frames_per_chunk": ["INT", {
                                "default": 21, "min": 1, "max": MAX_RESOLUTION, "step": 4,
                                "tooltip": "Pixel frames per temporal chunk (4n+1: 1, 5, 9, 13, 17, 21, ...)."}]}}}]),
        ],
        outputs=[Output("LATENT", "latents", is_list=True, tooltip="The temporal chunks in sequence order."),
                 Output("INT", "temporal_overlap", tooltip="The effective latent-frame overlap, for Merge SeedVR2 "
                                                           "Latents.")],
    )

    @classmethod
    def execute(cls, latent: dict[str, Any], temporal_overlap: int, chunking_mode: Any,
                **options: Any) -> tuple[Any, ...]:
        samples = check_video_latent(latent.get("samples"), "latent")
        if samples.shape[1] != SEEDVR2_LATENT_CHANNELS:
            raise ValidationError(f"`latent` must be a SeedVR2 latent with {SEEDVR2_LATENT_CHANNELS} channels "
                                  f"[B, C, T, H, W], got shape {tuple(samples.shape)}")
        if temporal_overlap < 0:
            raise ValidationError(f"`temporal_overlap` must be ≥ 0, got {temporal_overlap}")
        mode, given = _mode(chunking_mode, options)
        if mode == "manual":
            per_chunk = int(given.get("frames_per_chunk", 21))
            if per_chunk < 1 or (per_chunk - 1) % 4:
                raise ValidationError(f"`frames_per_chunk` must be 4n+1 (1, 5, 9, 13, 17, 21, ...), got {per_chunk}")
        elif mode == "auto":
            per_chunk = auto_frames_per_chunk(int(samples.shape[0]), int(samples.shape[3]), int(samples.shape[4]),
                                              int(samples.shape[2]), _free_bytes())
            log.info("SeedVR2TemporalChunk auto: %d pixel frames per chunk", per_chunk)
        else:
            raise ValidationError(f"`chunking_mode` must be 'auto' or 'manual', got {mode!r}")
        frames = int(samples.shape[2])
        if (frames - 1) * 4 + 1 <= per_chunk:
            return [latent], 0
        chunk = (per_chunk - 1) // 4 + 1
        overlap = min(int(temporal_overlap), chunk - 1)
        chunks = [_slice(latent, s, e, frames) for s, e in chunk_bounds(frames, chunk, overlap)]
        return chunks, overlap


def _mode(chunking_mode: Any, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The chosen mode and its inputs, whether they came nested or as dotted names."""
    if isinstance(chunking_mode, dict):
        return str(chunking_mode.get("chunking_mode")), chunking_mode
    given = {k.split(".", 1)[1]: v for k, v in options.items() if k.startswith("chunking_mode.")}
    return str(chunking_mode), given


class SeedVR2TemporalMerge(Node):
    """Join sampled SeedVR2 temporal chunks into one latent, cross-fading each overlap (flat, then
    a Hann fade over its middle third, then flat); plain concatenation when the overlap is 0."""

    SCHEMA = Schema(
        "SeedVR2TemporalMerge", display_name="Merge SeedVR2 Latents", category="model/latent/batch",
        input_is_list=True, search_aliases=["seedvr2", "merge", "temporal", "hann", "crossfade"],
        inputs=[
            Latent("latents", tooltip="The sampled time chunks, in the order they play."),
            Int("temporal_overlap", 0, min=0, max=MAX_RESOLUTION, force_input=True,
                tooltip="Connect Split SeedVR2 Latent's temporal_overlap output here; with 0 the chunks are "
                        "simply joined end to end."),
        ],
        outputs=[Output("LATENT", "latent", tooltip="The recombined full-length latent.")],
    )

    @classmethod
    def execute(cls, latents: list[dict[str, Any]], temporal_overlap: list[int]) -> tuple[Any]:
        overlap = int(temporal_overlap[0] if isinstance(temporal_overlap, list) else temporal_overlap)
        samples = merge_temporal_chunks([chunk.get("samples") for chunk in latents], overlap)
        out = {k: v for k, v in latents[0].items() if k not in ("samples", "noise_mask")}
        out["samples"] = samples
        return (out,)
