"""Joint audio–video latents (ComfyUI's NestedTensor in a LATENT's ``samples``): a video latent
``[B,C,F,H,W]`` and an audio latent ``[B,C,L,M]`` carried together through the samplers.

:class:`NestedLatent` holds the streams; the samplers see them packed into one flat tensor
``[B, 1, N]`` (each stream flattened per batch item, video first) and the model adapter unpacks
them again with the shapes :func:`pack` returns — the samplers' arithmetic is element-wise, so one
flat tensor steps both streams exactly as two would. Initial noise is drawn per stream, video
first, from one CPU generator seeded with the seed (ComfyUI's and LTX2Pipeline's order).
Imports no node, engine or adapter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from nodeloom.errors import ValidationError

__all__ = ["NestedLatent", "fit_audio", "is_nested", "nested_noise", "pack", "pack_mask", "unpack"]


@dataclass(frozen=True)
class NestedLatent:
    """Several latents stepped as one (LTX-2: ``(video, audio)``). Read-only, like every LATENT value."""

    tensors: tuple[torch.Tensor, ...]

    is_nested = True

    def unbind(self) -> tuple[torch.Tensor, ...]:
        """The streams, in order (ComfyUI's ``NestedTensor.unbind``)."""
        return self.tensors

    @property
    def shape(self) -> torch.Size:
        """The first stream's shape (the video's: what token counts and batch sizes are read from)."""
        return self.tensors[0].shape

    @property
    def dtype(self) -> torch.dtype:
        return self.tensors[0].dtype

    @property
    def device(self) -> torch.device:
        return self.tensors[0].device

    @property
    def nbytes(self) -> int:
        """Bytes the streams hold (what the engine's output cache counts)."""
        return sum(int(t.numel() * t.element_size()) for t in self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def to(self, *args: Any, **kwargs: Any) -> NestedLatent:
        return NestedLatent(tuple(t.to(*args, **kwargs) for t in self.tensors))


def is_nested(value: Any) -> bool:
    """True for a joint latent (ours or any value with ComfyUI's ``is_nested`` flag and ``unbind``)."""
    return isinstance(value, NestedLatent) or (getattr(value, "is_nested", False) is True and hasattr(value, "unbind"))


def pack(streams: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Size]]:
    """``[B, 1, N]`` — each stream flattened per batch item and laid end to end — and their shapes.

    Raises:
        ValidationError: the streams' batch sizes differ.
    """
    batches = {int(t.shape[0]) for t in streams}
    if len(batches) != 1:
        raise ValidationError(f"the streams of a joint latent must share one batch size, got {sorted(batches)}")
    flat = torch.cat([t.float().reshape(t.shape[0], 1, -1) for t in streams], dim=-1)
    return flat, [t.shape for t in streams]


def unpack(flat: torch.Tensor, shapes: Sequence[torch.Size]) -> list[torch.Tensor]:
    """The streams of a packed ``[B, 1, N]`` tensor (batch read from ``flat``; it may be a multiple
    of the shapes' batch, as in a CFG call)."""
    out, start = [], 0
    for shape in shapes:
        size = math.prod(shape[1:])
        out.append(flat[..., start:start + size].reshape(flat.shape[0], *shape[1:]))
        start += size
    return out


def pack_mask(masks: Sequence[torch.Tensor | None], shapes: Sequence[torch.Size]) -> torch.Tensor:
    """A joint noise mask packed like :func:`pack`: each stream's mask (None = regenerate all)
    broadcast to its stream's full shape first.

    Raises:
        ValidationError: a mask that does not broadcast to its stream.
    """
    full = []
    for mask, shape in zip(masks, shapes):
        if mask is None:
            full.append(torch.ones(shape))
            continue
        m = mask.float()
        while m.ndim < len(shape):
            m = m.unsqueeze(1)
        try:
            full.append(m.expand(shape))
        except RuntimeError as exc:
            raise ValidationError(f"a noise mask shaped {tuple(mask.shape)} does not fit its latent "
                                  f"{tuple(shape)}") from exc
    return pack(full)[0]


def nested_noise(streams: Sequence[torch.Tensor], seed: int) -> list[torch.Tensor]:
    """The initial noise of each stream: float32 ``torch.randn`` from one CPU generator seeded with
    ``seed``, the video's drawn first."""
    gen = torch.Generator().manual_seed(int(seed) & 0xFFFFFFFFFFFFFFFF)
    return [torch.randn(list(t.shape), generator=gen, dtype=torch.float32) for t in streams]


def fit_audio(audio: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, int]:
    """An audio latent trimmed or zero-padded along the one axis where it differs from ``like``
    (the length); returns it and how many positions were padded.

    Raises:
        ValidationError: the latents differ in more than one axis, or in batch or channels.
    """
    if audio.ndim != like.ndim:
        raise ValidationError(f"the audio latent has {audio.ndim} axes, the joint latent's audio {like.ndim}")
    differ = [i for i in range(audio.ndim) if audio.shape[i] != like.shape[i]]
    if not differ:
        return audio, 0
    if len(differ) > 1 or differ[0] < 2:
        raise ValidationError(f"the audio latent {tuple(audio.shape)} cannot be fitted to {tuple(like.shape)}: "
                              "they may differ in length only")
    axis, target = differ[0], like.shape[differ[0]]
    if audio.shape[axis] > target:
        return audio.narrow(axis, 0, target), 0
    pad = target - audio.shape[axis]
    shape = list(audio.shape)
    shape[axis] = pad
    return torch.cat([audio, audio.new_zeros(shape)], dim=axis), pad
