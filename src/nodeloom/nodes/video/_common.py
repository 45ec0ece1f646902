"""Shared helpers of the video pack: IMAGE tensors ↔ numpy frames, progress, socket types."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from nodeloom.node_api import ProgressBar, ValidationError

__all__ = ["AUDIO", "CAMERA_MOVE", "STORYBOARD", "frame_progress", "to_frames", "to_image"]

CAMERA_MOVE = "CAMERA_MOVE"
STORYBOARD = "STORYBOARD"
AUDIO = "AUDIO"


def to_frames(image: torch.Tensor, name: str = "images") -> np.ndarray:
    """An IMAGE batch ``[B,H,W,C]`` as float32 numpy frames (a copy never aliases the input)."""
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        shape = tuple(image.shape) if hasattr(image, "shape") else type(image).__name__
        raise ValidationError(f"`{name}` must be an IMAGE batch [B,H,W,C], got {shape}")
    return image.detach().to("cpu", torch.float32).numpy()


def to_image(frames: np.ndarray) -> torch.Tensor:
    """Float numpy frames ``[B,H,W,C]`` (or one ``[H,W,C]``) as an IMAGE tensor."""
    arr = np.asarray(frames, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[None]
    return torch.from_numpy(np.ascontiguousarray(arr))


def frame_progress(total: int, previews: int = 8) -> Callable[[int, np.ndarray], None]:
    """A per-frame callback that ticks a ProgressBar and sends a few previews."""
    pbar = ProgressBar(total)
    every = max(1, total // max(previews, 1))

    def tick(i: int, frame: np.ndarray) -> None:
        preview = to_image(frame[..., :3]) if i % every == 0 else None
        pbar.update_absolute(i + 1, total, preview=preview)

    return tick
