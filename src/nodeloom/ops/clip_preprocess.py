"""Turn IMAGE tensors into the pixel values a CLIP-style vision encoder takes.

ComfyUI's conventions, so embeddings match what its packs expect: alpha dropped; an image not
already ``size`` x ``size`` is resized with antialiased bicubic interpolation, either so its
shorter side is ``size`` and then centre-cropped (``crop=True``), or straight to a square
(``crop=False``); values are quantised to 8-bit steps, then normalised with the model's
per-channel mean and std. Pure torch; no model code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["clip_preprocess"]


def clip_preprocess(image: torch.Tensor, size: int, mean: Sequence[float], std: Sequence[float],
                    crop: bool = True) -> torch.Tensor:
    """IMAGE ``[B,H,W,C]`` (0..1) -> normalised pixel values ``[B,3,size,size]``.

    Raises:
        ValueError: ``image`` is not ``[B,H,W,C]`` with at least 3 channels.
    """
    if image.ndim != 4 or image.shape[-1] < 3:
        raise ValueError(f"`image` must be [B,H,W,C] with at least 3 channels, got shape {tuple(image.shape)}")
    pixels = image[..., :3].movedim(-1, 1)
    h, w = pixels.shape[2], pixels.shape[3]
    if (h, w) != (size, size):
        if crop:
            scale = size / min(h, w)
            target = (round(scale * h), round(scale * w))
        else:
            target = (size, size)
        pixels = torch.nn.functional.interpolate(pixels, size=target, mode="bicubic", antialias=True)
        top = (pixels.shape[2] - size) // 2
        left = (pixels.shape[3] - size) // 2
        pixels = pixels[:, :, top:top + size, left:left + size]
    pixels = torch.clip(pixels * 255.0, 0, 255).round() / 255.0
    mean_t = torch.tensor(mean, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
    return (pixels - mean_t) / std_t
