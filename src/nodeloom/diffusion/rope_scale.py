"""ScaleROPE's patch: the rotary position embedding of a Wan transformer evaluated at scaled and
shifted positions (ComfyUI's ``rope_options``: position i on an axis becomes shift + i·scale).

Owns :class:`WanRopeScale`, a MODEL patch (``extra["attn_patches"]``) that, while installed for
a run, replaces the transformer's ``rope`` forward with one computing the same frequency tables
at those positions. Model code: no nodes, no engine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from nodeloom.errors import ValidationError

__all__ = ["WanRopeScale"]

#: the θ diffusers' WanRotaryPosEmbed is built with (Wan's configs never change it)
_THETA = 10000.0


@dataclass(frozen=True)
class WanRopeScale:
    """Positions ``shift + i·scale`` on the time (t), height (y) and width (x) axes."""

    scale_x: float = 1.0
    shift_x: float = 0.0
    scale_y: float = 1.0
    shift_y: float = 0.0
    scale_t: float = 1.0
    shift_t: float = 0.0

    def positions(self, count: int, axis: str, dtype: torch.dtype) -> torch.Tensor:
        scale, shift = getattr(self, f"scale_{axis}"), getattr(self, f"shift_{axis}")
        return torch.arange(count, dtype=dtype) * scale + shift

    def frequencies(self, rope: Any, frames: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin ``[1, frames·height·width, 1, head_dim]`` for a patch grid, in the layout of
        ``WanRotaryPosEmbed.forward``."""
        from diffusers.models.embeddings import get_1d_rotary_pos_embed

        # float64 as diffusers builds its tables (float32 on Apple's MPS, which has no float64)
        dtype = torch.float32 if rope.freqs_cos.device.type == "mps" else torch.float64
        tables = []
        for dim, count, axis in ((rope.t_dim, frames, "t"), (rope.h_dim, height, "y"), (rope.w_dim, width, "x")):
            cos, sin = get_1d_rotary_pos_embed(dim, self.positions(count, axis, dtype), _THETA, use_real=True,
                                               repeat_interleave_real=True, freqs_dtype=dtype)
            tables.append((cos.to(rope.freqs_cos.device), sin.to(rope.freqs_cos.device)))
        shape = [(frames, 1, 1), (1, height, 1), (1, 1, width)]
        out = []
        for part in (0, 1):
            grids = [t[part].view(*s, -1).expand(frames, height, width, -1) for t, s in zip(tables, shape)]
            out.append(torch.cat(grids, dim=-1).reshape(1, frames * height * width, 1, -1))
        return out[0], out[1]

    @contextlib.contextmanager
    def installed(self, unet: Any) -> Iterator[None]:
        """The transformer's ``rope`` computes scaled positions until the block ends.

        Raises:
            ValidationError: the transformer has no Wan rotary embedding.
        """
        rope = getattr(unet, "rope", None)
        if rope is None or not all(hasattr(rope, a) for a in ("t_dim", "h_dim", "w_dim", "patch_size", "freqs_cos")):
            raise ValidationError(f"ScaleROPE needs a Wan transformer; this model's is a {type(unet).__name__}")

        def forward(hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            _, _, frames, height, width = hidden_states.shape
            p_t, p_h, p_w = rope.patch_size
            return self.frequencies(rope, frames // p_t, height // p_h, width // p_w)

        rope.forward = forward
        try:
            yield
        finally:
            del rope.forward  # the class's own forward shows through again
