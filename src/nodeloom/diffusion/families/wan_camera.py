"""The Wan Fun camera models' camera adapter, beside diffusers' Wan transformer.

diffusers has no Wan camera transformer, but a Fun camera model is diffusers' image-to-video
``WanTransformer3DModel`` plus one small module, ``control_adapter``: the camera's Plücker
embedding (``[B, 24, F, H, W]``, four frames' rays a latent frame) pixel-unshuffled by 8, patchified
like the video and refined by residual convolutions, then added to the video's patch embedding
before the first block. :class:`WanCameraAdapter` is that module (built from the file's shapes);
:func:`with_camera` runs a transformer call with its output added to the patch embedding.
Imports no node, engine or adapter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from nodeloom.errors import ValidationError

__all__ = ["WanCameraAdapter", "camera_adapter", "with_camera"]


class _Residual(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(dim, dim, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(torch.relu(self.conv1(x)))


class WanCameraAdapter(nn.Module):
    """Camera embedding ``[B, C, F, H, W]`` (pixels) → ``[B, dim, F, H/8/p, W/8/p]`` (the video's patch grid)."""

    def __init__(self, in_channels: int, dim: int, patch: tuple[int, int], blocks: int = 1) -> None:
        super().__init__()
        self.unshuffle = nn.PixelUnshuffle(8)
        self.conv = nn.Conv2d(in_channels * 64, dim, kernel_size=patch, stride=patch)
        self.residual_blocks = nn.Sequential(*[_Residual(dim) for _ in range(blocks)])

    def forward(self, camera: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = camera.shape
        x = self.residual_blocks(self.conv(self.unshuffle(camera.transpose(1, 2).reshape(b * f, c, h, w))))
        return x.reshape(b, f, *x.shape[1:]).transpose(1, 2)


def camera_adapter(shapes: dict[str, tuple[int, ...]], dim: int) -> WanCameraAdapter:
    """The adapter a Fun camera file's ``control_adapter.*`` shapes describe.

    Raises:
        ValidationError: shapes that are not a camera adapter for a transformer ``dim`` wide.
    """
    width, unshuffled, ph, pw = shapes["control_adapter.conv.weight"]
    if width != dim or unshuffled % 64:
        raise ValidationError(f"the Wan Fun camera adapter `control_adapter.conv` is shaped {(width, unshuffled, ph, pw)};"
                              f" a camera adapter for this {dim}-wide transformer takes 64·k input channels (8×8"
                              f" pixel-unshuffled rays) to {dim}", type="invalid_model_file")
    blocks = {int(m.group(1)) for k in shapes if (m := re.match(r"control_adapter\.residual_blocks\.(\d+)\.", k))}
    return WanCameraAdapter(unshuffled // 64, dim, (ph, pw), len(blocks))


def with_camera(module: Any, camera: torch.Tensor, call: Callable[[], Any]) -> Any:
    """``call()`` with the camera adapter's output added to the transformer's patch embedding."""
    added = module.control_adapter(camera)

    def add(_mod: Any, _inputs: Any, out: torch.Tensor) -> torch.Tensor:
        if out.shape[2:] != added.shape[2:]:
            raise ValidationError(f"the camera embedding covers {tuple(added.shape[2:])} latent frames × patches but the"
                                  f" video {tuple(out.shape[2:])}; give WanCameraEmbedding the video's width, height"
                                  " and length")
        return out + added.to(out.dtype)

    handle = module.patch_embedding.register_forward_hook(add)
    try:
        return call()
    finally:
        handle.remove()
