"""Output-block patches on a tiny diffusers UNet: one call per decoder resnet with ComfyUI's
(h, skip) split, an identity patch changes nothing, hooks go away after the run; FreeU's filter."""

import pytest
import torch

from nodeloom.diffusion.block_patches import fourier_filter, output_blocks_patched
from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion.freeu import freeu_patch

diffusers = pytest.importorskip("diffusers")


def _unet():
    torch.manual_seed(0)
    return diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=4, norm_num_groups=8).eval()


def _run(unet):
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    ctx = torch.randn(1, 3, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        return unet(x, torch.tensor([10.0]), encoder_hidden_states=ctx).sample


def test_patches_see_each_output_block_and_an_identity_changes_nothing():
    unet = _unet()
    plain = _run(unet)
    seen = []

    def record(h, hsp, options):
        seen.append((options["block"], h.shape[1], hsp.shape[1]))
        return h, hsp

    with output_blocks_patched(unet, [record], {"extra": 1}):
        patched = _run(unet)
    assert torch.equal(patched, plain)
    # two up blocks of two resnets each (layers_per_block + 1), taking the encoder's skips last first:
    # the 32-channel resnet, then the 16-channel downsample, resnet and input conv
    assert seen == [(("output", 0), 32, 32), (("output", 1), 32, 16), (("output", 2), 32, 16), (("output", 3), 16, 16)]
    assert all(not r._forward_pre_hooks for b in unet.up_blocks for r in b.resnets)
    assert torch.equal(_run(unet), plain)


def test_patches_change_the_join_and_need_a_unet():
    unet = _unet()
    plain = _run(unet)
    with output_blocks_patched(unet, [lambda h, hsp, o: (h * 2, hsp)]):
        assert (_run(unet) - plain).abs().max() > 1e-3
    with pytest.raises(ValidationError, match="need a UNet model"):
        with output_blocks_patched(torch.nn.Linear(2, 2), [lambda h, hsp, o: (h, hsp)]):
            pass


def test_fourier_filter_scales_only_the_lowest_frequencies():
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(fourier_filter(x, 1, 1.0), x, atol=1e-6)
    mean_gone = fourier_filter(x, 1, 0.0)
    # a 2×2 block around DC after the shift: DC and the three neighbours at index −1 go; the mean is 0
    assert torch.allclose(mean_gone.mean(dim=(-2, -1)), torch.zeros(2, 3), atol=1e-6)
    assert (mean_gone - x).abs().max() > 1e-3


def test_freeu_patch_follows_the_channel_stages():
    h = torch.randn(1, 64, 4, 4, generator=torch.Generator().manual_seed(4))
    hsp = torch.randn(1, 64, 4, 4, generator=torch.Generator().manual_seed(5))
    patch = freeu_patch(16, b1=1.5, b2=1.2, s1=1.0, s2=0.2, v2=False)
    out_h, out_hsp = patch(h, hsp, {})
    assert torch.allclose(out_h[:, :32], h[:, :32] * 1.5) and torch.equal(out_h[:, 32:], h[:, 32:])
    assert torch.allclose(out_hsp, hsp, atol=1e-6)  # s1 = 1 keeps the skip connection
    same_h, same_hsp = patch(h[:, :48], hsp, {})  # 48 channels: no stage of a 16-channel model
    assert torch.equal(same_h, h[:, :48]) and torch.equal(same_hsp, hsp)
    v2 = freeu_patch(16, b1=1.5, b2=1.2, s1=0.9, s2=0.2, v2=True)(h, hsp, {})[0]
    mean = h.mean(1, keepdim=True)
    weight = (mean - mean.min()) / (mean.max() - mean.min())
    assert torch.allclose(v2[:, :32], h[:, :32] * (0.5 * weight + 1), atol=1e-6)
