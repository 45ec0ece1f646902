"""``TripoSplatPreprocessImage``: the square, black-backed crop of a subject that the TripoSplat
image-to-splat model is conditioned on.

Per image: scale so the short side is ``size``, erode the alpha matte, take the matte's bounding
box, crop a square 1.2 times its longer side around its centre (black outside the image),
resize to ``size`` × ``size`` (Lanczos) and composite over black.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nodeloom.node_api import Image, Int, Mask, Node, Output, Schema, ValidationError
from nodeloom.ops import resample

__all__ = ["TripoSplatPreprocessImage", "triposplat_crop"]

_MARGIN = 1.2


def triposplat_crop(rgb: torch.Tensor, alpha: torch.Tensor, erode_radius: int, size: int) -> torch.Tensor:
    """One image ``[H,W,3]`` with its matte ``[H,W]`` → ``[size,size,3]`` subject over black.

    Raises:
        ValidationError: the matte has no foreground pixel (after erosion).
    """
    rgba = torch.cat([rgb.clamp(0, 1), alpha.clamp(0, 1)[..., None]], dim=-1).movedim(-1, 0)[None].float()
    h, w = rgba.shape[-2:]
    scale = size / min(w, h)
    rgba = resample.upscale(rgba, max(1, round(w * scale)), max(1, round(h * scale)), "lanczos").clamp(0, 1)
    a = rgba[:, 3:4]
    if erode_radius > 0:  # a min filter over a (2r+1)² window
        a = -F.max_pool2d(-a, 2 * erode_radius + 1, stride=1, padding=erode_radius)
        rgba = torch.cat([rgba[:, :3], a], dim=1)
    ys, xs = torch.nonzero(a[0, 0] > 0, as_tuple=True)
    if xs.numel() == 0:
        raise ValidationError("`mask` is empty (no foreground pixels) for TripoSplatPreprocessImage")
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = max(x1 - x0, y1 - y0) / 2 * _MARGIN
    left, top, right, bottom = int(cx - half), int(cy - half), int(cx + half), int(cy + half)
    H, W = rgba.shape[-2:]
    crop = rgba.new_zeros((1, 4, max(1, bottom - top), max(1, right - left)))
    sx0, sy0, sx1, sy1 = max(left, 0), max(top, 0), min(right, W), min(bottom, H)
    if sx1 > sx0 and sy1 > sy0:
        crop[:, :, sy0 - top:sy1 - top, sx0 - left:sx1 - left] = rgba[:, :, sy0:sy1, sx0:sx1]
    crop = resample.upscale(crop, size, size, "lanczos").clamp(0, 1)
    return (crop[0, :3] * crop[0, 3:4]).movedim(0, -1)


class TripoSplatPreprocessImage(Node):
    """Crop center each image to a square canvas on a black background and add padding."""

    SCHEMA = Schema(
        "TripoSplatPreprocessImage", display_name="TripoSplat Preprocess Image", category="model/conditioning/triposplat",
        inputs=[
            Image("image", tooltip="The image(s) to prepare."),
            Mask("mask", tooltip="The subject's alpha matte (1 = subject); one for all images or one per image."),
            Int("erode_radius", 1, min=0, max=16,
                tooltip="Shrink the matte by this many pixels before the crop so edge colours don't bleed in."),
            Int("size", 1024, min=256, max=4096, step=16,
                tooltip="Side of the square output in pixels. The model was trained on 1024; other sizes "
                        "work but lie outside what it saw in training."),
        ],
        outputs=[Output("IMAGE", "image", tooltip="The subject centred on a black square of size × size.")],
    )

    @classmethod
    def execute(cls, image: torch.Tensor, mask: torch.Tensor, erode_radius: int, size: int) -> tuple[torch.Tensor]:
        if image.ndim != 4:
            raise ValidationError(f"`image` must be an IMAGE [B,H,W,C], got shape {tuple(image.shape)}")
        if erode_radius < 0:
            raise ValidationError(f"`erode_radius` must be ≥ 0, got {erode_radius}")
        size = max(16, int(size) // 16 * 16)  # the DINOv3 patch and Flux2 VAE stride are 16
        m = mask.reshape(-1, *mask.shape[-2:]).float() if mask.ndim >= 2 else None
        if m is None:
            raise ValidationError(f"`mask` must be a MASK [B,H,W], got shape {tuple(mask.shape)}")
        if m.shape[0] != image.shape[0]:
            reps = -(-image.shape[0] // m.shape[0])
            m = m.repeat(reps, 1, 1)[: image.shape[0]]
        if tuple(m.shape[1:]) != tuple(image.shape[1:3]):
            m = F.interpolate(m[:, None], size=tuple(image.shape[1:3]), mode="bilinear", align_corners=False)[:, 0]
        out = [triposplat_crop(image[i, ..., :3].float(), m[i], int(erode_radius), size) for i in range(image.shape[0])]
        return (torch.stack(out),)
