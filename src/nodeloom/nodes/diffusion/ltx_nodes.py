"""LTX-Video's nodes with ComfyUI's names, inputs and categories: EmptyLTXVLatentVideo (the
128-channel video latent), LTXVImgToVideo (an image as the clip's first frames, kept by the noise
mask), LTXVConditioning (the frame rate the model's positions are scaled by),
LTXVScheduler and ModelSamplingLTXV (the flow shift that grows with the latent's token count),
LTXVPreprocess (a frame passed through H.264 at a chosen CRF, so a still looks like the video
frames the model was trained on). Model code is :mod:`nodeloom.diffusion.families.ltxv`."""

from __future__ import annotations

import io
import math
from typing import Any

import torch

from nodeloom.diffusion.flow import FluxSampling
from nodeloom.diffusion.models import DiffusionModel
from nodeloom.errors import ValidationError, require
from nodeloom.node_api import (
    IO,
    MAX_RESOLUTION,
    Boolean,
    Conditioning,
    Float,
    Image,
    Int,
    Latent,
    Model,
    Node,
    Output,
    Schema,
    Vae,
)
from nodeloom.nodes.diffusion._common import device_guard
from nodeloom.ops.resample import upscale

__all__ = ["EmptyLTXVLatentVideo", "cond_pair", "cond_pair_latent", "LTXVConditioning", "LTXVImgToVideo", "LTXVImgToVideoInplace", "LTXVPreprocess", "LTXVScheduler",
           "ModelSamplingLTXV", "ltxv_shift"]

#: token counts between which the shift moves from base_shift to max_shift (ComfyUI's and diffusers' values)
_TOKENS_LOW, _TOKENS_HIGH = 1024, 4096


def ltxv_shift(max_shift: float, base_shift: float, latent: dict[str, Any] | None) -> float:
    """The shift for a latent's token count (frames × height × width; 4096 without a latent),
    on the line through (1024, base_shift) and (4096, max_shift)."""
    tokens = 4096 if latent is None else math.prod(latent["samples"].shape[2:])
    slope = (max_shift - base_shift) / (_TOKENS_HIGH - _TOKENS_LOW)
    return tokens * slope + base_shift - slope * _TOKENS_LOW


def _shift_inputs() -> list[Any]:
    return [Float("max_shift", 2.05, min=0.0, max=100.0, step=0.01, tooltip="The shift at 4096 latent tokens."),
            Float("base_shift", 0.95, min=0.0, max=100.0, step=0.01, tooltip="The shift at 1024 latent tokens.")]


def _latent_input() -> Latent:
    return Latent("latent", optional=True, tooltip="The latent whose token count sets the shift; none counts 4096.")


def cond_pair() -> list[Any]:
    """The positive and negative CONDITIONING inputs the LTX conditioning nodes take."""
    return [Conditioning("positive", tooltip="The positive conditioning."),
            Conditioning("negative", tooltip="The negative conditioning.")]


def cond_pair_latent() -> list[Output]:
    """The positive, negative and latent outputs of the LTX nodes that start or guide a clip."""
    return [Output(IO.CONDITIONING, "positive"), Output(IO.CONDITIONING, "negative"), Output(IO.LATENT, "latent")]


def _video_size() -> list[Any]:
    return [Int("width", 768, min=64, max=MAX_RESOLUTION, step=32, tooltip="Video width in pixels."),
            Int("height", 512, min=64, max=MAX_RESOLUTION, step=32, tooltip="Video height in pixels.")]


def _empty_video(width: int, height: int, length: int, batch_size: int) -> torch.Tensor:
    return torch.zeros([batch_size, 128, (length - 1) // 8 + 1, height // 32, width // 32])


def _place_image(vae: Any, image: torch.Tensor, samples: torch.Tensor, strength: float, node: str) -> dict[str, Any]:
    """``samples`` with the image's latent in its first latent frames and the per-frame noise mask
    that keeps them (``1 − strength`` there, 1 elsewhere); the image is scaled to the latent's size."""
    if samples.ndim != 5:
        raise ValidationError(f"{node}: `latent` must be a video latent [B,C,F,H,W], got shape {tuple(samples.shape)}")
    scale = int(getattr(vae, "downscale_ratio", 32))
    height, width = samples.shape[3] * scale, samples.shape[4] * scale
    pixels = upscale(image[..., :3].movedim(-1, 1), width, height, "bilinear", "center").movedim(1, -1)
    with device_guard() as mgr:
        encoded = vae.encode(pixels, mgr)
    if encoded.ndim != 5:
        raise ValidationError(f"{node} needs LTX-Video's VAE (a video VAE); `vae` is an image VAE")
    latent = samples.clone()
    kept = min(encoded.shape[2], latent.shape[2])
    latent[:, :, :kept] = encoded[:, :, :kept].to(latent)
    mask = torch.ones((latent.shape[0], 1, latent.shape[2], 1, 1))
    mask[:, :, :kept] = 1.0 - strength
    return {"samples": latent, "noise_mask": mask}


class EmptyLTXVLatentVideo(Node):
    """An empty LTX-Video latent: 128 channels, 1/32 of the size, (length − 1)/8 + 1 latent frames."""

    SCHEMA = Schema(
        "EmptyLTXVLatentVideo", display_name="EmptyLTXVLatentVideo", category="latent/video/ltxv",
        inputs=[*_video_size(),
                Int("length", 97, min=1, max=MAX_RESOLUTION, step=8, tooltip="Frames; the model takes 1 + 8·k."),
                Int("batch_size", 1, min=1, max=4096, tooltip="How many videos.")],
        outputs=[Output(IO.LATENT, "LATENT")],
    )

    @classmethod
    def execute(cls, width: int, height: int, length: int, batch_size: int = 1) -> tuple[Any, ...]:
        return ({"samples": _empty_video(width, height, length, batch_size)},)


class LTXVImgToVideo(Node):
    """Starts an LTX-Video clip from an image: its latent fills the first latent frames and the
    noise mask keeps them (``1 − strength``: 0 holds them exactly, those tokens read as clean)."""

    SCHEMA = Schema(
        "LTXVImgToVideo", display_name="LTXVImgToVideo", category="conditioning/video_models",
        inputs=[*cond_pair(),
                Vae("vae", tooltip="LTX-Video's VAE, to encode the image."),
                Image("image", tooltip="The first frame (several images: the first frames, 1 + 8·k of them)."),
                *_video_size(),
                Int("length", 97, min=9, max=MAX_RESOLUTION, step=8, tooltip="Frames; the model takes 1 + 8·k."),
                Int("batch_size", 1, min=1, max=4096, tooltip="How many videos."),
                Float("strength", 1.0, min=0.0, max=1.0, tooltip="How firmly the image frames are kept (1: exactly).")],
        outputs=cond_pair_latent(),
    )

    @classmethod
    def execute(cls, positive: list[Any], negative: list[Any], vae: Any, image: torch.Tensor, width: int, height: int,
                length: int, batch_size: int, strength: float) -> tuple[Any, ...]:
        latent = _place_image(vae, image, _empty_video(width, height, length, batch_size), strength, cls.SCHEMA.node_id)
        return positive, negative, latent


class LTXVImgToVideoInplace(Node):
    """Puts an image's latent into the first frames of a given LTX-Video latent, held by the noise
    mask (``1 − strength``); with ``bypass`` the latent passes through unchanged."""

    SCHEMA = Schema(
        "LTXVImgToVideoInplace", display_name="LTXVImgToVideoInplace", category="conditioning/video_models",
        inputs=[Vae("vae", tooltip="LTX-Video's VAE, to encode the image."),
                Image("image", tooltip="The first frame (several images: the first frames, 1 + 8·k of them)."),
                Latent("latent", tooltip="The video latent to put the image into."),
                Float("strength", 1.0, min=0.0, max=1.0, tooltip="How firmly the image frames are kept (1: exactly)."),
                Boolean("bypass", False, tooltip="Bypass the conditioning: return the latent unchanged.")],
        outputs=[Output(IO.LATENT, "latent")],
    )

    @classmethod
    def execute(cls, vae: Any, image: torch.Tensor, latent: dict[str, Any], strength: float,
                bypass: bool = False) -> tuple[Any, ...]:
        if bypass:
            return (latent,)
        placed = _place_image(vae, image, latent["samples"], strength, "LTXVImgToVideoInplace")
        return ({k: v for k, v in latent.items() if k not in placed} | placed,)


class LTXVConditioning(Node):
    """Sets the frame rate LTX-Video scales its positions in time by, on both conditionings."""

    SCHEMA = Schema(
        "LTXVConditioning", display_name="LTXVConditioning", category="conditioning/video_models",
        inputs=[*cond_pair(),
                Float("frame_rate", 25.0, min=0.0, max=1000.0, step=0.01,
                      tooltip="Frames per second of the video to generate.")],
        outputs=[Output(IO.CONDITIONING, "positive"), Output(IO.CONDITIONING, "negative")],
    )

    @classmethod
    def execute(cls, positive: list[Any], negative: list[Any], frame_rate: float) -> tuple[Any, ...]:
        def setting(cond: list[Any]) -> list[Any]:
            return [[c, {**d, "frame_rate": frame_rate}] for c, d in cond]

        return (setting(positive), setting(negative))


class LTXVScheduler(Node):
    """LTX-Video's sigmas: linear steps bent by a shift that grows with the latent's token count,
    optionally stretched so the last non-zero sigma is ``terminal``."""

    SCHEMA = Schema(
        "LTXVScheduler", display_name="LTXVScheduler", category="sampling/custom_sampling/schedulers",
        inputs=[Int("steps", 20, min=1, max=10000, tooltip="Number of steps."),
                *_shift_inputs(),
                Boolean("stretch", True, tooltip="Rescale the noise levels so the schedule ends at `terminal` instead of 0."),
                Float("terminal", 0.1, min=0.0, max=0.99, step=0.01,
                      tooltip="The last noise level of the stretched schedule."),
                _latent_input()],
        outputs=[Output("SIGMAS", "SIGMAS")],
    )

    @classmethod
    def execute(cls, steps: int, max_shift: float, base_shift: float, stretch: bool, terminal: float,
                latent: dict[str, Any] | None = None) -> tuple[Any, ...]:
        shift = ltxv_shift(max_shift, base_shift, latent)
        t = torch.linspace(1.0, 0.0, steps + 1)
        inner = t[:-1]
        sigmas = torch.cat([math.exp(shift) / (math.exp(shift) + (1 / inner - 1)), torch.zeros(1)])
        if stretch and float(1.0 - sigmas[-2]) > 0:  # one step ends at σ = 1: nothing to stretch
            rest = 1.0 - sigmas[:-1]
            sigmas[:-1] = 1.0 - rest / (rest[-1] / (1.0 - terminal))
        return (sigmas,)


class ModelSamplingLTXV(Node):
    """Makes an LTX-Video model sample with the shift its latent's token count calls for."""

    SCHEMA = Schema(
        "ModelSamplingLTXV", display_name="ModelSamplingLTXV", category="advanced/model",
        inputs=[Model("model", tooltip="The LTX-Video model to patch."), *_shift_inputs(), _latent_input()],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, max_shift: float, base_shift: float,
                latent: dict[str, Any] | None = None) -> tuple[Any, ...]:
        if model.adapter is None:
            raise ValidationError(f"ModelSamplingLTXV needs a flow model (LTX-Video); `model` is a {model.family} UNet")
        return (model.clone(sampling=FluxSampling(shift=ltxv_shift(max_shift, base_shift, latent))),)


def _through_h264(frame: torch.Tensor, crf: int) -> torch.Tensor:
    """One ``[H,W,3]`` frame encoded as a one-frame H.264 clip at ``crf`` and decoded back (even size)."""
    av = require("av", "video")
    h, w = frame.shape[0] // 2 * 2, frame.shape[1] // 2 * 2
    pixels = (frame[:h, :w, :3] * 255.0).byte().cpu().numpy()
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=1, options={"crf": str(crf), "preset": "veryfast"})
        stream.height, stream.width = h, w
        out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuv420p")))
        out.mux(stream.encode())
    buffer.seek(0)
    with av.open(buffer) as clip:
        decoded = next(clip.decode(video=0)).to_ndarray(format="rgb24")
    return torch.from_numpy(decoded).to(frame.dtype) / 255.0


class LTXVPreprocess(Node):
    """Compresses each image as a video frame (H.264 at CRF ``img_compression``) before it conditions
    LTX-Video, which was trained on compressed video; 0 leaves the images unchanged."""

    SCHEMA = Schema(
        "LTXVPreprocess", display_name="LTXVPreprocess", category="image",
        inputs=[Image("image", tooltip="The images to compress."),
                Int("img_compression", 35, min=0, max=100, tooltip="How strongly the image is compressed (as a video codec would) before it guides the video; 0 leaves it as it is.")],
        outputs=[Output(IO.IMAGE, "output_image")],
    )

    @classmethod
    def execute(cls, image: torch.Tensor, img_compression: int) -> tuple[Any, ...]:
        if img_compression == 0:
            return (image,)
        if image.shape[1] < 2 or image.shape[2] < 2:
            raise ValidationError(f"`image` must be at least 2×2 pixels to compress, got {tuple(image.shape[1:3])}")
        return (torch.stack([_through_h264(frame, img_compression) for frame in image]),)
