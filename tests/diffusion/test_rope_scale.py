"""WanRopeScale against diffusers' own WanRotaryPosEmbed: identical at scale 1 / shift 0, and
scaled or shifted positions read the same tables at the moved positions."""

import pytest
import torch

from nodeloom.diffusion.rope_scale import WanRopeScale
from nodeloom.errors import ValidationError

diffusers_wan = pytest.importorskip("diffusers.models.transformers.transformer_wan")


class _Holder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rope = diffusers_wan.WanRotaryPosEmbed(attention_head_dim=24, patch_size=(1, 2, 2), max_seq_len=64)


def _grid(rope, frames, height, width):
    """The table rows of each axis, from the precomputed (integer-position) buffers."""
    return [part.split([rope.t_dim, rope.h_dim, rope.w_dim], dim=1) for part in (rope.freqs_cos, rope.freqs_sin)]


def test_identity_equals_diffusers_and_moved_positions_read_moved_rows():
    holder = _Holder()
    rope = holder.rope
    latent = torch.zeros(1, 4, 6, 8, 10)  # 6 frames, 4 x 5 patches
    plain_cos, plain_sin = rope(latent)
    with WanRopeScale().installed(holder):
        cos, sin = rope(latent)
    assert torch.equal(cos, plain_cos) and torch.equal(sin, plain_sin)
    assert "forward" not in rope.__dict__  # the class's forward is back
    (cos_t, cos_h, cos_w), _ = _grid(rope, 6, 4, 5)
    with WanRopeScale(scale_t=2.0, shift_x=3.0).installed(holder):
        cos, _ = rope(latent)
    cos = cos.reshape(6, 4, 5, -1)
    t_part, h_part, w_part = cos.split([rope.t_dim, rope.h_dim, rope.w_dim], dim=-1)
    assert torch.allclose(t_part[:, 0, 0], cos_t[0:12:2], atol=1e-12)  # positions 0, 2, 4, ...
    assert torch.allclose(h_part[0, :, 0], cos_h[:4], atol=1e-12)
    assert torch.allclose(w_part[0, 0, :], cos_w[3:8], atol=1e-12)  # positions 3..7
    half = WanRopeScale(scale_y=0.5).frequencies(rope, 1, 3, 1)[0].reshape(3, -1)
    assert not torch.allclose(half, plain_cos.reshape(6, 4, 5, -1)[0, :3, 0], atol=1e-6)  # fractional positions


def test_a_transformer_without_wan_rope_is_refused():
    with pytest.raises(ValidationError, match="ScaleROPE needs a Wan transformer"):
        with WanRopeScale().installed(torch.nn.Linear(2, 2)):
            pass
