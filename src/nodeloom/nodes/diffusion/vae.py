"""VAE nodes: VAEDecode, VAEDecodeTiled, VAEEncode, VAEEncodeForInpaint."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from nodeloom.diffusion.models import VaeModel
from nodeloom.node_api import IO, Image, Int, Latent, Mask, Node, Output, Schema, Vae
from nodeloom.nodes.diffusion._common import device_guard

__all__ = ["VAEDecode", "VAEDecodeTiled", "VAEEncode", "VAEEncodeForInpaint", "inpaint_latent"]


class VAEDecode(Node):
    """Decodes latent images back into pixel space images."""

    SCHEMA = Schema(
        "VAEDecode", display_name="VAE Decode", category="latent",
        inputs=[Latent("samples", tooltip="The latent to be decoded."),
                Vae("vae", tooltip="The VAE model used for decoding the latent.")],
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
                Int("tile_size", 512, min=64, max=4096, step=32, tooltip="Tile size in pixels."),
                Int("overlap", 64, min=0, max=4096, step=32, tooltip="Tile overlap in pixels."),
                Int("temporal_size", 64, min=8, max=4096, step=4, tooltip="Only used for video VAEs: Amount of frames to decode at a time."),
                Int("temporal_overlap", 8, min=4, max=4096, step=4, tooltip="Only used for video VAEs: Amount of frames to overlap.")],
        outputs=[Output(IO.IMAGE, "IMAGE")],
    )

    @classmethod
    def execute(cls, samples: dict[str, Any], vae: VaeModel, tile_size: int, overlap: int = 64,
                temporal_size: int = 64, temporal_overlap: int = 8) -> tuple[Any, ...]:
        if tile_size < overlap * 4:
            overlap = tile_size // 4
        r = vae.downscale_ratio
        with device_guard() as mgr:
            return (vae.decode_tiled(samples["samples"], tile=tile_size // r, overlap=overlap // r, manager=mgr),)


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


def inpaint_latent(vae: VaeModel, pixels: torch.Tensor, mask: torch.Tensor, grow_mask_by: int = 6) -> dict[str, Any]:
    """Grey out the masked pixels, encode, and attach the (grown) mask as the noise mask.

    Args:
        vae: the VAE.
        pixels: ``[B,H,W,C]``.
        mask: ``[B,H,W]`` or ``[H,W]``, 1 = inpaint.
        grow_mask_by: pixels to grow the noise mask by (seamless blending).
    """
    r = vae.downscale_ratio
    h, w = (pixels.shape[1] // r) * r, (pixels.shape[2] // r) * r
    m = F.interpolate(mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]).float(), size=pixels.shape[1:3], mode="bilinear")
    px = pixels.clone()
    if (h, w) != tuple(pixels.shape[1:3]):
        oy, ox = (pixels.shape[1] % r) // 2, (pixels.shape[2] % r) // 2
        px, m = px[:, oy:oy + h, ox:ox + w], m[:, :, oy:oy + h, ox:ox + w]
    if grow_mask_by == 0:
        grown = m
    else:
        kernel = torch.ones(1, 1, grow_mask_by, grow_mask_by)
        grown = torch.clamp(F.conv2d(m.round(), kernel, padding=math.ceil((grow_mask_by - 1) / 2)), 0, 1)
    keep = (1.0 - m.round()).squeeze(1)[..., None]
    px = (px[..., :3] - 0.5) * keep + 0.5
    with device_guard() as mgr:
        latent = vae.encode(px, mgr)
    return {"samples": latent, "noise_mask": grown[:, :, :h, :w].round()}


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
