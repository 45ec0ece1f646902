"""LTX-Video's keyframe guides with ComfyUI's names and rules: LTXVAddGuide encodes an image (or a
short clip) and appends its first latent frames to the latent as guide tokens placed, through the
conditioning's ``keyframe_idxs`` (pixel coordinates), at the chosen frame of the video; frames of a
longer guide past the first two replace latent frames in place. LTXVCropGuides takes the appended
frames off again after sampling. GetICLoRAParameters reads an IC-LoRA's guide parameters (its
reference downscale factor) from the metadata of the last LoRA on a MODEL. The model reads ``keyframe_idxs`` in
:mod:`nodeloom.diffusion.families.ltxv`."""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.diffusion.families.ltxv import latent_pixel_coords
from nodeloom.errors import ValidationError
from nodeloom.node_api import Custom, Float, Image, Int, Latent, Model, Node, Output, Schema, Vae
from nodeloom.nodes.diffusion._common import device_guard
from nodeloom.nodes.diffusion.ltx_nodes import cond_pair, cond_pair_latent
from nodeloom.ops.resample import upscale

__all__ = ["GetICLoRAParameters", "LTXVAddGuide", "LTXVCropGuides", "keyframe_count", "reference_downscale_factor"]

#: the socket type of an IC-LoRA's guide parameters
IC_LORA_PARAMETERS = "IC_LORA_PARAMETERS"

#: guide latent frames appended as tokens; later ones replace latent frames in place
_PREFIX_FRAMES = 2


def keyframe_count(conditioning: list[Any]) -> tuple[torch.Tensor | None, int]:
    """The conditioning's ``keyframe_idxs`` and how many latent frames they stand for."""
    for _, extra in conditioning:
        if extra.get("keyframe_idxs") is not None:
            idxs = extra["keyframe_idxs"]
            return idxs, int(torch.unique(idxs[:, 0]).shape[0])
    return None, 0


def _noise_mask(latent: dict[str, Any]) -> torch.Tensor:
    samples = latent["samples"]
    if latent.get("noise_mask") is not None:
        return latent["noise_mask"].clone()
    return torch.ones((samples.shape[0], 1, samples.shape[2], 1, 1))


def _with_keyframes(conditioning: list[Any], idxs: torch.Tensor | None) -> list[Any]:
    return [[c, {**d, "keyframe_idxs": idxs}] for c, d in conditioning]


def _guide_index(positive: list[Any], latent_length: int, guide_frames: int, frame_idx: int, t: int) -> tuple[int, int]:
    """``(pixel frame, latent frame)`` a guide starts at: negative counts from the end; a guide of
    several frames starts at ``1 + t·k``."""
    _, keyframes = keyframe_count(positive)
    count = latent_length - keyframes
    frame = frame_idx if frame_idx >= 0 else max((count - 1) * t + 1 + frame_idx, 0)
    if guide_frames > 1 and frame != 0:
        frame = (frame - 1) // t * t + 1
    return frame, (frame + t - 1) // t


class LTXVAddGuide(Node):
    """Adds an image or clip as a guide at a frame of the video (appended guide tokens placed there)."""

    SCHEMA = Schema(
        "LTXVAddGuide", display_name="LTXVAddGuide", category="conditioning/video_models",
        inputs=[*cond_pair(),
                Vae("vae", tooltip="LTX-Video's VAE, to encode the guide."),
                Latent("latent", tooltip="The video latent to guide."),
                Image("image", tooltip="The image or clip the video is guided by; a clip is cut down to a length of 8·n + 1"
                                       " frames."),
                Int("frame_idx", 0, min=-9999, max=9999,
                    tooltip="The video frame the guide starts at (negative: counted from the end). A guide of 9 or"
                            " more frames starts on a multiple of 8, rounded down; a single image or a clip of up to 8"
                            " frames may start anywhere."),
                Float("strength", 1.0, min=0.0, max=1.0, step=0.01,
                      tooltip="How firmly the guide is kept (1: exactly)."),
                Custom(IC_LORA_PARAMETERS, "iclora_parameters", optional=True,
                       tooltip="An IC-LoRA's parameters (Get IC-LoRA Parameters); only a reference downscale factor"
                               " of 1 is supported so far.")],
        outputs=cond_pair_latent(),
    )

    @classmethod
    def execute(cls, positive: list[Any], negative: list[Any], vae: Any, latent: dict[str, Any], image: torch.Tensor,
                frame_idx: int, strength: float, iclora_parameters: Any = None) -> tuple[Any, ...]:
        samples = latent["samples"]
        if samples.ndim != 5 or not getattr(vae, "temporal_ratio", None):
            raise ValidationError("LTXVAddGuide needs LTX-Video's VAE and a video latent [B,128,F,H,W]")
        factor = reference_downscale_factor(iclora_parameters)
        if factor > 1:
            if samples.shape[3] % factor or samples.shape[4] % factor:
                raise ValidationError(f"`latent`: its spatial size {samples.shape[4]}x{samples.shape[3]} must be"
                                      f" divisible by the IC-LoRA's reference_downscale_factor {factor}")
            raise ValidationError(f"`iclora_parameters`: a reference_downscale_factor of {factor} (a guide encoded"
                                  " smaller and spread over the latent) is not supported yet; only 1 is")
        t, r = vae.temporal_ratio, vae.downscale_ratio
        _, _, length, height, width = samples.shape
        image = image[: (image.shape[0] - 1) // t * t + 1, :, :, :3]
        pixels = upscale(image.movedim(-1, 1), width * r, height * r, "bilinear", "disabled").movedim(1, -1)
        with device_guard() as mgr:
            guide = vae.encode(pixels, mgr)
        frame, index = _guide_index(positive, length, pixels.shape[0], frame_idx, t)
        if index + guide.shape[2] > length:
            raise ValidationError(f"the guide's {guide.shape[2]} latent frames from latent frame {index} run past the"
                                  f" latent's {length} frames; choose an earlier `frame_idx`")
        mask = _noise_mask(latent)
        prefix = guide[:, :, :_PREFIX_FRAMES]
        mask[:, :, index:index + prefix.shape[2]] = 1.0
        coords = latent_pixel_coords(prefix.shape[2], height, width, (t, r, r), causal_fix=frame == 0)
        coords[0] += frame
        idxs, _ = keyframe_count(positive)
        new = coords[None].expand(samples.shape[0], -1, -1)
        idxs = new if idxs is None else torch.cat([idxs, new], dim=2)
        positive, negative = _with_keyframes(positive, idxs), _with_keyframes(negative, idxs)
        samples = torch.cat([samples, prefix.expand(samples.shape[0], -1, -1, -1, -1)], dim=2)
        mask = torch.cat([mask, torch.full((mask.shape[0], 1, prefix.shape[2], *mask.shape[3:]), 1.0 - strength)], dim=2)
        rest = guide[:, :, _PREFIX_FRAMES:]
        if rest.shape[2]:
            start = index + prefix.shape[2]
            samples[:, :, start:start + rest.shape[2]] = rest
            mask[:, :, start:start + rest.shape[2]] = 1.0 - strength
        return positive, negative, {"samples": samples, "noise_mask": mask}


class LTXVCropGuides(Node):
    """Takes the appended guide frames off a sampled latent and the guides off the conditionings."""

    SCHEMA = Schema(
        "LTXVCropGuides", display_name="LTXVCropGuides", category="conditioning/video_models",
        inputs=[*cond_pair(),
                Latent("latent", tooltip="The sampled latent with its guide frames appended.")],
        outputs=cond_pair_latent(),
    )

    @classmethod
    def execute(cls, positive: list[Any], negative: list[Any], latent: dict[str, Any]) -> tuple[Any, ...]:
        samples, mask = latent["samples"].clone(), _noise_mask(latent)
        _, keyframes = keyframe_count(positive)
        if keyframes == 0:
            return positive, negative, {"samples": samples, "noise_mask": mask}
        return (_with_keyframes(positive, None), _with_keyframes(negative, None),
                {"samples": samples[:, :, :-keyframes], "noise_mask": mask[:, :, :-keyframes]})


def reference_downscale_factor(parameters: Any) -> int:
    """An IC-LoRA's reference downscale factor as a whole number ≥ 1 (1 when absent or unreadable)."""
    if not parameters:
        return 1
    try:
        return max(1, round(float(parameters.get("reference_downscale_factor", 1))))
    except (TypeError, ValueError, AttributeError, OverflowError):
        return 1


class GetICLoRAParameters(Node):
    """Read an IC-LoRA's guide parameters from the safetensors metadata of the LoRA last applied to a
    MODEL, for LTXVAddGuide: a metadata key ending in ``reference_downscale_factor`` gives the factor
    (rounded, at least 1); 1 when there is no such key."""

    SCHEMA = Schema(
        "GetICLoRAParameters", display_name="Get IC-LoRA Parameters", category="model/conditioning/ltxv",
        search_aliases=["ic-lora", "ic lora", "iclora", "downscale factor", "reference downscale"],
        inputs=[Model("iclora_model", tooltip="The MODEL straight out of the LoRA loader that applied the IC-LoRA;"
                                              " the last LoRA on it is read.")],
        outputs=[Output(IC_LORA_PARAMETERS, "iclora_parameters",
                        tooltip="The IC-LoRA's parameters (reference_downscale_factor), for LTXVAddGuide.")],
    )

    @classmethod
    def execute(cls, iclora_model: Any) -> tuple[Any, ...]:
        loras = getattr(iclora_model, "loras", None)
        if loras is None:
            raise ValidationError(f"`iclora_model` must be a MODEL (a LoRA loader's output); got "
                                  f"{type(iclora_model).__name__}")
        metadata = getattr(loras[-1].lora, "metadata", None) if loras else None
        factor = 1
        for key, value in (metadata or {}).items():
            if key.endswith("reference_downscale_factor"):
                factor = reference_downscale_factor({"reference_downscale_factor": value})
                break
        return ({"reference_downscale_factor": factor},)
