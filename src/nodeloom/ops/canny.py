"""Canny edge maps for ControlNet hints (OpenCV), on ComfyUI IMAGE tensors.

Thresholds are given on the 0..1 intensity scale (ComfyUI's ``Canny`` node convention) and
scaled to OpenCV's 0..255 gradient thresholds. Imports OpenCV lazily.
"""

from __future__ import annotations

import numpy as np
import torch

from nodeloom.errors import ValidationError, require

__all__ = ["canny_edges"]


def canny_edges(image: torch.Tensor, low_threshold: float, high_threshold: float) -> torch.Tensor:
    """White-on-black Canny edges of each image.

    Args:
        image: ``[B,H,W,C]`` float 0..1.
        low_threshold / high_threshold: hysteresis thresholds in 0..1 (low ≤ high).

    Returns:
        ``[B,H,W,3]`` float32 with edges at 1.0.

    Raises:
        ValidationError: thresholds out of order or range.
    """
    if not 0.0 <= low_threshold <= high_threshold <= 1.0:
        raise ValidationError(
            f"`low_threshold` ({low_threshold}) must be ≤ `high_threshold` ({high_threshold}), both within 0..1")
    cv2 = require("cv2", "diffusion")
    out = []
    for img in image.detach().cpu().float().numpy():
        rgb = np.clip(img[..., :3] * 255.0 + 0.5, 0, 255).astype(np.uint8)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.shape[-1] == 3 else rgb[..., 0]
        edges = cv2.Canny(gray, low_threshold * 255.0, high_threshold * 255.0, L2gradient=True)
        out.append(np.repeat(edges[..., None], 3, axis=-1).astype(np.float32) / 255.0)
    return torch.from_numpy(np.stack(out))
