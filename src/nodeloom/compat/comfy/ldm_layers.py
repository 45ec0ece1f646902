"""``comfy.ldm.flux.math`` and ``comfy.ldm.lumina.model``: the layer maths packs import by those names.

``rope(pos, dim, theta)`` builds rotary-embedding rotation matrices ``[..., n, dim/2, 2, 2]``;
``apply_rope1(x, freqs_cis)`` / ``apply_rope(xq, xk, freqs_cis)`` rotate consecutive feature pairs
by them (Flux's RoPE). ``FeedForward`` is the SwiGLU feed-forward block (``w2(silu(w1·x) ⊙ w3·x)``,
hidden width rounded up to ``multiple_of``) with the ``operation_settings`` argument of ComfyUI's
model code. They are standalone layers for packs' own modules: nodeloom's models come from
diffusers, and ComfyUI's model classes themselves are not provided.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FeedForward", "apply_rope", "apply_rope1", "rope"]


def rope(pos: torch.Tensor, dim: int, theta: int) -> torch.Tensor:
    """Rotation matrices for positions ``pos`` ``[B, n]``: ``[B, n, dim/2, 2, 2]`` (float32)."""
    if dim % 2:
        raise ValueError(f"`rope`: dim must be even, got {dim}")
    scale = torch.arange(0, dim, 2, dtype=torch.float64, device=pos.device) / dim
    omega = 1.0 / (theta ** scale)
    angles = pos.to(torch.float64)[..., None] * omega
    cos, sin = torch.cos(angles), torch.sin(angles)
    matrix = torch.stack([cos, -sin, sin, cos], dim=-1).reshape(*angles.shape, 2, 2)
    return matrix.float()


def apply_rope1(x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    """``x`` with each consecutive feature pair rotated by its ``2×2`` matrix in ``freqs_cis``."""
    pairs = x.to(freqs_cis.dtype).reshape(*x.shape[:-1], -1, 1, 2)
    out = freqs_cis[..., 0] * pairs[..., 0] + freqs_cis[..., 1] * pairs[..., 1]
    return out.reshape(*x.shape).type_as(x)


def apply_rope(xq: torch.Tensor, xk: torch.Tensor, freqs_cis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Queries and keys rotated alike (:func:`apply_rope1`)."""
    return apply_rope1(xq, freqs_cis), apply_rope1(xk, freqs_cis)


class FeedForward(nn.Module):
    """SwiGLU feed-forward: ``w2(silu(w1(x)) * w3(x))``, no biases.

    Args:
        dim: input and output width.
        hidden_dim: hidden width before ``ffn_dim_multiplier`` and rounding up to ``multiple_of``.
        operation_settings: ``{"operations": <layer set with .Linear>, "device", "dtype"}``
            (default: ``torch.nn``).
    """

    def __init__(self, dim: int, hidden_dim: int, multiple_of: int, ffn_dim_multiplier: float | None,
                 operation_settings: dict[str, Any] | None = None) -> None:
        super().__init__()
        settings = operation_settings or {}
        if ffn_dim_multiplier is not None:
            hidden_dim = int(ffn_dim_multiplier * hidden_dim)
        hidden_dim = multiple_of * -(-hidden_dim // multiple_of)
        linear = getattr(settings.get("operations"), "Linear", nn.Linear)
        kw = {"bias": False, "device": settings.get("device"), "dtype": settings.get("dtype")}
        self.w1 = linear(dim, hidden_dim, **kw)
        self.w2 = linear(hidden_dim, dim, **kw)
        self.w3 = linear(dim, hidden_dim, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))
