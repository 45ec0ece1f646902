"""VAE nodes: VAEDecode, VAEDecodeTiled, VAEEncode, VAEEncodeTiled, VAEEncodeForInpaint."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from nodeloom.diffusion.models import VaeModel
from nodeloom.node_api import IO, Boolean, Conditioning, Image, Int, Latent, Mask, Node, Output, Schema, Vae
from nodeloom.nodes.diffusion._common import device_guard

__all__ = ["InpaintModelConditioning", "VAEDecode", "VAEDecodeTiled", "VAEEncode", "VAEEncodeForInpaint", "VAEEncodeTiled",
           "inpaint_latent", "masked_pixels"]


def _tile_inputs(verb: str, tile_step: int) -> list[Any]:
    """The tile and (video-only) temporal inputs ComfyUI's tiled VAE nodes share."""
    return [Int("tile_size", 512, min=64, max=4096, step=tile_step, tooltip="Tile size in pixels."),
            Int("overlap", 64, min=0, max=4096, step=32, tooltip="Tile overlap in pixels."),
            Int("temporal_size", 64, min=8, max=4096, step=4,
                tooltip=f"Only used for video VAEs: Amount of frames to {verb} at a time."),
            Int("temporal_overlap", 8, min=4, max=4096, step=4, tooltip="Video VAEs only: how many frames neighbouring tiles share.")]


class VAEDecode(Node):
    """Turn latents back into images with the VAE."""

    SCHEMA = Schema(
        "VAEDecode", display_name="VAE Decode", category="latent",
        inputs=[Latent("samples", tooltip="The latent to be decoded."),
                Vae("vae", tooltip="The VAE that turns the latent into pixels.")],
        outputs=[Output(IO.IMAGE, "IMAGE", tooltip="The decoded image.")],
    )

    @classmethod
    def execute(cls, samples: dict[str, Any], vae: VaeModel) -> tuple[Any, ...]:
        with device_guard() as mgr:
            return (vae.decode(samples["samples"], mgr),)


class VAEDecodeTiled(Node):
    """Decodes latents in overlapping tiles, so large images fit in memory."""

    SCHEMA = Schema(
        "VAEDecodeTiled", display_name="VAE Decode (Tiled)", category="_for_testing",
        inputs=[Latent("samples", tooltip="The latent to be decoded."),
                Vae("vae", tooltip="The VAE model used for decoding."),
                *_tile_inputs("decode", 32)],
        outputs=[Output(IO.IMAGE, "IMAGE")],
    )

    @classmethod
    def execute(cls, samples: dict[str, Any], vae: VaeModel, tile_size: int, overlap: int = 64,
                temporal_size: int = 64, temporal_overlap: int = 8) -> tuple[Any, ...]:
        if tile_size < overlap * 4:
            overlap = tile_size // 4
        r = vae.downscale_ratio
        is_video = getattr(vae, "is_video", False) or getattr(vae, "temporal_ratio", None)
        video = {"temporal_size": temporal_size, "temporal_overlap": temporal_overlap} if is_video else {}
        with device_guard() as mgr:
            return (vae.decode_tiled(samples["samples"], tile=tile_size // r, overlap=overlap // r, manager=mgr, **video),)


class VAEEncode(Node):
    """Encodes images into latents."""

    SCHEMA = Schema(
        "VAEEncode", display_name="VAE Encode", category="latent",
        inputs=[Image("pixels", tooltip="The image to encode."), Vae("vae", tooltip="The VAE model used for encoding.")],
        outputs=[Output(IO.LATENT, "LATENT")],
    )

    @classmethod
    def execute(cls, pixels: torch.Tensor, vae: VaeModel) -> tuple[Any, ...]:
        with device_guard() as mgr:
            return ({"samples": vae.encode(pixels, mgr)},)


class VAEEncodeTiled(Node):
    """Encodes images into latents in overlapping tiles, so large images fit in memory."""

    SCHEMA = Schema(
        "VAEEncodeTiled", display_name="VAE Encode (Tiled)", category="_for_testing",
        inputs=[Image("pixels", tooltip="The image to encode."),
                Vae("vae", tooltip="The VAE model used for encoding."),
                *_tile_inputs("encode", 64)],
        outputs=[Output(IO.LATENT, "LATENT")],
    )

    @classmethod
    def execute(cls, pixels: torch.Tensor, vae: VaeModel, tile_size: int, overlap: int,
                temporal_size: int = 64, temporal_overlap: int = 8) -> tuple[Any, ...]:
        with device_guard() as mgr:
            return ({"samples": vae.encode_tiled(pixels[..., :3], tile_x=tile_size, tile_y=tile_size,
                                                 overlap=overlap, manager=mgr)},)


def masked_pixels(vae: VaeModel, pixels: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Crop to a multiple of the VAE's downscale ratio (centred) and grey out the masked pixels.

    Returns:
        ``(cropped pixels, greyed pixels, mask [B,1,H,W])`` at the cropped size.
    """
    r = vae.downscale_ratio
    h, w = (pixels.shape[1] // r) * r, (pixels.shape[2] // r) * r
    m = F.interpolate(mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]).float(), size=pixels.shape[1:3], mode="bilinear")
    px = pixels[..., :3]
    if (h, w) != tuple(pixels.shape[1:3]):
        oy, ox = (pixels.shape[1] % r) // 2, (pixels.shape[2] % r) // 2
        px, m = px[:, oy:oy + h, ox:ox + w], m[:, :, oy:oy + h, ox:ox + w]
    keep = (1.0 - m.round()).squeeze(1)[..., None]
    return px, (px - 0.5) * keep + 0.5, m


def inpaint_latent(vae: VaeModel, pixels: torch.Tensor, mask: torch.Tensor, grow_mask_by: int = 6) -> dict[str, Any]:
    """Grey out the masked pixels, encode, and attach the (grown) mask as the noise mask.

    Args:
        vae: the VAE.
        pixels: ``[B,H,W,C]``.
        mask: ``[B,H,W]`` or ``[H,W]``, 1 = inpaint.
        grow_mask_by: pixels to grow the noise mask by (seamless blending).
    """
    _, greyed, m = masked_pixels(vae, pixels, mask)
    if grow_mask_by == 0:
        grown = m
    else:
        kernel = torch.ones(1, 1, grow_mask_by, grow_mask_by)
        grown = torch.clamp(F.conv2d(m.round(), kernel, padding=math.ceil((grow_mask_by - 1) / 2)), 0, 1)
    with device_guard() as mgr:
        latent = vae.encode(greyed, mgr)
    return {"samples": latent, "noise_mask": grown[:, :, : m.shape[2], : m.shape[3]].round()}


class VAEEncodeForInpaint(Node):
    """Encodes an image for inpainting: masked pixels become grey and the mask becomes the noise mask."""

    SCHEMA = Schema(
        "VAEEncodeForInpaint", display_name="VAE Encode (for Inpainting)", category="latent/inpaint",
        inputs=[Image("pixels", tooltip="The image to inpaint."), Vae("vae", tooltip="The VAE model."),
                Mask("mask", tooltip="Area to inpaint (1 = regenerate)."),
                Int("grow_mask_by", 6, min=0, max=64, step=1, tooltip="Grow the mask by this many pixels.")],
        outputs=[Output(IO.LATENT, "LATENT")],
    )

    @classmethod
    def execute(cls, pixels: torch.Tensor, vae: VaeModel, mask: torch.Tensor, grow_mask_by: int = 6) -> tuple[Any, ...]:
        return (inpaint_latent(vae, pixels, mask, grow_mask_by),)


class InpaintModelConditioning(Node):
    """Prepares inpainting: the original image's latent to sample from, and the masked image plus mask
    attached to the conditioning for inpainting checkpoints (plain checkpoints use the noise mask)."""

    SCHEMA = Schema(
        "InpaintModelConditioning", display_name="InpaintModelConditioning", category="conditioning/inpaint",
        inputs=[Conditioning("positive", tooltip="Positive conditioning."),
                Conditioning("negative", tooltip="Negative conditioning."),
                Vae("vae", tooltip="The VAE model."), Image("pixels", tooltip="The image to inpaint."),
                Mask("mask", tooltip="Area to inpaint (1 = regenerate)."),
                Boolean("noise_mask", True, tooltip="Also set the mask as the latent's noise mask, so only the masked area is"
                        " sampled; helps some inpainting models and harms others.")],
        outputs=[Output(IO.CONDITIONING, "positive"), Output(IO.CONDITIONING, "negative"), Output(IO.LATENT, "latent")],
    )

    @classmethod
    def execute(cls, positive: list[Any], negative: list[Any], vae: VaeModel, pixels: torch.Tensor, mask: torch.Tensor,
                noise_mask: bool = True) -> tuple[Any, ...]:
        original, greyed, m = masked_pixels(vae, pixels, mask)
        with device_guard() as mgr:
            concat_latent, latent = vae.encode(greyed, mgr), vae.encode(original, mgr)
        extras = {"concat_latent_image": concat_latent, "concat_mask": m}
        conds = [[[item[0], {**item[1], **extras}] for item in cond] for cond in (positive, negative)]
        out: dict[str, Any] = {"samples": latent}
        if noise_mask:
            out["noise_mask"] = m
        return (conds[0], conds[1], out)
