"""ComfyUI's Wan video nodes: EmptyHunyuanLatentVideo, WanImageToVideo, WanFirstLastFrameToVideo,
WanFunInpaintToVideo, WanVaceToVideo (TrimVideoLatent is in the utils pack) — exact ids, inputs, defaults and
categories. They build the 5-D video LATENT
``[B,16,1+(length−1)/4,H/8,W/8]`` and attach image-to-video conditioning (the start/end frames'
latent, which latent frames are known, and the CLIP-vision states) that the Wan family's model
adapter reads. Frame counts the Wan VAE cannot produce are an error naming the counts it can."""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.node_api import (
    IO,
    MAX_RESOLUTION,
    Conditioning,
    Custom,
    Float,
    Image,
    Int,
    Mask,
    Node,
    Output,
    Schema,
    ValidationError,
    Vae,
)
from nodeloom.nodes.diffusion._common import device_guard

__all__ = ["EmptyHunyuanLatentVideo", "WanFirstLastFrameToVideo", "WanFunInpaintToVideo", "WanImageToVideo", "WanVaceToVideo",
           "latent_frames", "with_values"]

_VIDEO_CATEGORY = "conditioning/video_models"


def latent_frames(length: int) -> int:
    """Latent frames of a ``length``-frame clip: ``(length − 1) // 4 + 1``.

    Raises:
        ValidationError: a length the Wan VAE does not produce (it decodes 1, 5, 9, ... = 4k + 1 frames).
    """
    if length < 1 or (length - 1) % 4:
        lower = max(1, (length - 1) // 4 * 4 + 1)
        raise ValidationError(f"`length` {length} is not a frame count the video model can take: it takes 4k + 1"
                              f" frames (1, 5, 9, ..., 81); the nearest are {lower} and {lower + 4}")
    return (length - 1) // 4 + 1


def _size_inputs(default_width: int = 832, default_length: int = 81) -> list[Any]:
    return [Int("width", default_width, min=16, max=MAX_RESOLUTION, step=16, tooltip="Video width in pixels."),
            Int("height", 480, min=16, max=MAX_RESOLUTION, step=16, tooltip="Video height in pixels."),
            Int("length", default_length, min=1, max=MAX_RESOLUTION, step=4,
                tooltip="Number of frames (4k + 1: 1, 5, 9, ..., 81)."),
            Int("batch_size", 1, min=1, max=4096, tooltip="How many videos to generate.")]


def _cond_inputs() -> list[Any]:
    return [Conditioning("positive", tooltip="Positive conditioning (the prompt)."),
            Conditioning("negative", tooltip="Negative conditioning."),
            Vae("vae", tooltip="The Wan VAE that encodes the given frames.")]


def _vision(name: str, which: str = "start") -> Any:
    return Custom("CLIP_VISION_OUTPUT", name, optional=True, tooltip=f"CLIPVisionEncode of the {which} image.")


def _frames(end: bool = False) -> Any:
    if end:
        return Image("end_image", optional=True, tooltip="The last frame(s) of the video.")
    return Image("start_image", optional=True, tooltip="The first frame(s) of the video.")


_OUTPUTS = [Output(IO.CONDITIONING, "positive"), Output(IO.CONDITIONING, "negative"), Output(IO.LATENT, "latent")]


def _empty(batch: int, channels: int, length: int, height: int, width: int, scale: int = 8) -> torch.Tensor:
    return torch.zeros(batch, channels, latent_frames(length), height // scale, width // scale)


def _fit_frames(frames: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """IMAGE frames resized (centre crop) to the video's size, as ComfyUI's common_upscale does."""
    from nodeloom.ops.resample import upscale

    return upscale(frames[..., :3].movedim(-1, 1), width, height, "bilinear", "center").movedim(1, -1)


def with_values(conds: list[Any], values: dict[str, Any]) -> list[Any]:
    """A copy of a CONDITIONING list with ``values`` set on every entry."""
    return [[c[0], {**(c[1] if len(c) > 1 else {}), **values}] for c in conds]


def _encode(vae: Any, frames: torch.Tensor) -> torch.Tensor:
    if not getattr(vae, "is_video", False):
        raise ValidationError("`vae` must be a video VAE (the Wan VAE, e.g. wan_2.1_vae.safetensors);"
                              " an image VAE cannot encode the frames a video model is conditioned on")
    with device_guard() as mgr:
        return vae.encode(frames, mgr)


class EmptyHunyuanLatentVideo(Node):
    """An empty video latent (16 channels, a latent frame per 4 video frames) for Wan and HunyuanVideo."""

    SCHEMA = Schema(
        "EmptyHunyuanLatentVideo", display_name="EmptyHunyuanLatentVideo", category="latent/video",
        inputs=[Int("width", 848, min=16, max=MAX_RESOLUTION, step=16, tooltip="Video width in pixels."),
                Int("height", 480, min=16, max=MAX_RESOLUTION, step=16, tooltip="Video height in pixels."),
                Int("length", 25, min=1, max=MAX_RESOLUTION, step=4, tooltip="Number of frames (4k + 1)."),
                Int("batch_size", 1, min=1, max=4096, tooltip="How many videos to generate.")],
        outputs=[Output(IO.LATENT, "LATENT")],
    )

    @classmethod
    def execute(cls, width: int, height: int, length: int, batch_size: int = 1) -> tuple[Any, ...]:
        return ({"samples": _empty(batch_size, 16, length, height, width)},)


class WanImageToVideo(Node):
    """Wan image-to-video: an empty video latent, and the start frames (rest grey) encoded into the
    conditioning with a mask of the known latent frames; CLIP-vision states for Wan 2.1 I2V."""

    SCHEMA = Schema(
        "WanImageToVideo", display_name="WanImageToVideo", category=_VIDEO_CATEGORY,
        inputs=[*_cond_inputs(), *_size_inputs(), _vision("clip_vision_output"), _frames()],
        outputs=_OUTPUTS,
    )

    @classmethod
    def execute(cls, positive: list[Any], negative: list[Any], vae: Any, width: int, height: int, length: int,
                batch_size: int, start_image: torch.Tensor | None = None,
                clip_vision_output: Any = None) -> tuple[Any, ...]:
        latent = _empty(batch_size, 16, length, height, width)
        values: dict[str, Any] = {}
        if start_image is not None:
            start = _fit_frames(start_image[:length], width, height)
            video = torch.full((length, height, width, 3), 0.5)
            video[: start.shape[0]] = start
            encoded = _encode(vae, video)
            mask = torch.ones(1, 1, latent.shape[2], encoded.shape[-2], encoded.shape[-1])
            mask[:, :, : (start.shape[0] - 1) // 4 + 1] = 0.0
            values.update(concat_latent_image=encoded, concat_mask=mask)
        if clip_vision_output is not None:
            values["clip_vision_output"] = clip_vision_output
        return (with_values(positive, values), with_values(negative, values), {"samples": latent})


def _joined_vision(first: Any, last: Any) -> Any:
    """The start and end images' CLIP-vision states side by side (first–last-frame models take both)."""
    if first is None or last is None:
        return first if last is None else last
    states = [o["penultimate_hidden_states"] if isinstance(o, dict) else o.penultimate_hidden_states for o in (first, last)]
    return {"penultimate_hidden_states": torch.cat(states, dim=-2)}


class WanFirstLastFrameToVideo(Node):
    """Wan first–last-frame-to-video: the start and end frames (rest grey) encoded into the
    conditioning, the mask marking their video frames as known."""

    SCHEMA = Schema(
        "WanFirstLastFrameToVideo", display_name="WanFirstLastFrameToVideo", category=_VIDEO_CATEGORY,
        inputs=[*_cond_inputs(), *_size_inputs(), _vision("clip_vision_start_image"),
                _vision("clip_vision_end_image", "end"), _frames(), _frames(end=True)],
        outputs=_OUTPUTS,
    )

    @classmethod
    def execute(cls, positive: list[Any], negative: list[Any], vae: Any, width: int, height: int, length: int,
                batch_size: int, start_image: torch.Tensor | None = None, end_image: torch.Tensor | None = None,
                clip_vision_start_image: Any = None, clip_vision_end_image: Any = None) -> tuple[Any, ...]:
        scale = vae.spacial_compression_encode() if hasattr(vae, "spacial_compression_encode") else 8
        latent = _empty(batch_size, getattr(vae, "latent_channels", 16), length, height, width, scale)
        video = torch.full((length, height, width, 3), 0.5)
        mask = torch.ones(1, 1, latent.shape[2] * 4, latent.shape[-2], latent.shape[-1])
        if start_image is not None:
            start = _fit_frames(start_image[:length], width, height)
            video[: start.shape[0]] = start
            mask[:, :, : start.shape[0] + 3] = 0.0
        if end_image is not None:
            end = _fit_frames(end_image[-length:], width, height)
            video[-end.shape[0]:] = end
            mask[:, :, -end.shape[0]:] = 0.0
        encoded = _encode(vae, video)
        mask = mask.view(1, mask.shape[2] // 4, 4, mask.shape[3], mask.shape[4]).transpose(1, 2)
        values: dict[str, Any] = {"concat_latent_image": encoded, "concat_mask": mask}
        vision = _joined_vision(clip_vision_start_image, clip_vision_end_image)
        if vision is not None:
            values["clip_vision_output"] = vision
        return (with_values(positive, values), with_values(negative, values), {"samples": latent})


class WanFunInpaintToVideo(Node):
    """Wan Fun inpainting (image-to-video between a start and an end frame): the first–last-frame
    conditioning, the CLIP-vision states of the start image."""

    SCHEMA = Schema(
        "WanFunInpaintToVideo", display_name="WanFunInpaintToVideo", category=_VIDEO_CATEGORY,
        inputs=[*_cond_inputs(), *_size_inputs(), _vision("clip_vision_output"), _frames(), _frames(end=True)],
        outputs=_OUTPUTS,
    )

    @classmethod
    def execute(cls, positive: list[Any], negative: list[Any], vae: Any, width: int, height: int, length: int,
                batch_size: int, start_image: torch.Tensor | None = None, end_image: torch.Tensor | None = None,
                clip_vision_output: Any = None) -> tuple[Any, ...]:
        return WanFirstLastFrameToVideo.execute(positive, negative, vae, width, height, length, batch_size,
                                                start_image=start_image, end_image=end_image,
                                                clip_vision_start_image=clip_vision_output)


def _vace_mask(mask: torch.Tensor, latent_length: int, height: int, width: int) -> torch.Tensor:
    """A per-pixel mask ``[T,H,W,1]`` folded to the VACE model's 64 channels (each 8×8 block's
    pixels) at the latent's frames and size: ``[64, t, H/8, W/8]``."""
    length, s = mask.shape[0], 8
    folded = mask.reshape(length, height // s, s, width // s, s).permute(2, 4, 0, 1, 3)
    folded = folded.reshape(s * s, length, height // s, width // s)
    return torch.nn.functional.interpolate(folded[None], size=(latent_length, height // s, width // s),
                                           mode="nearest-exact")[0]


def _control_video(control_video: torch.Tensor | None, length: int, width: int, height: int) -> torch.Tensor:
    if control_video is None:
        return torch.full((length, height, width, 3), 0.5)
    video = _fit_frames(control_video[:length], width, height)
    if video.shape[0] < length:
        video = torch.cat([video, torch.full((length - video.shape[0], height, width, 3), 0.5)])
    return video


def _control_masks(control_masks: torch.Tensor | None, length: int, width: int, height: int) -> torch.Tensor:
    if control_masks is None:
        return torch.ones(length, height, width, 1)
    from nodeloom.ops.resample import upscale

    mask = control_masks if control_masks.ndim == 4 else control_masks.unsqueeze(1)
    mask = upscale(mask[:length], width, height, "bilinear", "center").movedim(1, -1)
    if mask.shape[0] < length:
        mask = torch.cat([mask, torch.ones(length - mask.shape[0], height, width, mask.shape[-1])])
    return mask


class WanVaceToVideo(Node):
    """Wan VACE: a control video (its masked and unmasked parts encoded apart), a mask of what to
    regenerate and an optional reference image (prepended as an extra latent frame, trimmed after
    sampling with TrimVideoLatent and the `trim_latent` count)."""

    SCHEMA = Schema(
        "WanVaceToVideo", display_name="WanVaceToVideo", category=_VIDEO_CATEGORY,
        inputs=[*_cond_inputs(), *_size_inputs(),
                Float("strength", 1.0, min=0.0, max=1000.0, step=0.01, tooltip="How strongly the control steers."),
                Image("control_video", optional=True, tooltip="Frames to follow (depth, pose, a video to edit)."),
                Mask("control_masks", optional=True, tooltip="Where to regenerate (1) and where to keep the control (0)."),
                Image("reference_image", optional=True, tooltip="An image whose subject or style the video takes.")],
        outputs=[*_OUTPUTS, Output(IO.INT, "trim_latent")],
    )

    @classmethod
    def execute(cls, positive: list[Any], negative: list[Any], vae: Any, width: int, height: int, length: int,
                batch_size: int, strength: float, control_video: torch.Tensor | None = None,
                control_masks: torch.Tensor | None = None, reference_image: torch.Tensor | None = None) -> tuple[Any, ...]:
        latent_length = latent_frames(length)
        video = _control_video(control_video, length, width, height) - 0.5
        mask = _control_masks(control_masks, length, width, height)
        control = torch.cat([_encode(vae, video * (1 - mask) + 0.5), _encode(vae, video * mask + 0.5)], dim=1)
        vace_mask = _vace_mask(mask, latent_length, height, width)
        trim = 0
        if reference_image is not None:
            ref = _encode(vae, _fit_frames(reference_image[:1], width, height))
            from nodeloom.diffusion.families.wan import latent_stats

            mean, _ = latent_stats()  # the second half is the latent of a zero (normalised) frame
            control = torch.cat([torch.cat([ref, mean.expand_as(ref)], dim=1), control], dim=2)
            trim = ref.shape[2]
            vace_mask = torch.cat([torch.zeros_like(vace_mask[:, :trim]), vace_mask], dim=1)
        values = {"vace_frames": [control], "vace_mask": [vace_mask[None]], "vace_strength": [strength]}
        latent = torch.zeros(batch_size, 16, latent_length + trim, height // 8, width // 8)
        return (with_values(positive, values), with_values(negative, values), {"samples": latent}, trim)
