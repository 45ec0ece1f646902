"""Skipped DiT blocks (SkipLayerGuidanceDiT's extra pass): on diffusers' SD3 transformer the same as
its ``skip_layers``; on Flux the same as the transformer with those blocks removed."""

from __future__ import annotations

import copy

import torch

from nodeloom.diffusion.block_skip import block_counts, blocks_skipped


def test_skipped_blocks_equal_diffusers_skip_layers_on_sd3():
    from diffusers import SD3Transformer2DModel

    torch.manual_seed(0)
    module = SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=4, num_layers=3, attention_head_dim=8,
                                   num_attention_heads=2, joint_attention_dim=16, caption_projection_dim=16,
                                   pooled_projection_dim=8, out_channels=4, pos_embed_max_size=8).eval()
    gen = torch.Generator().manual_seed(1)
    args = dict(hidden_states=torch.randn(1, 4, 8, 8, generator=gen), encoder_hidden_states=torch.randn(1, 5, 16, generator=gen),
                pooled_projections=torch.randn(1, 8, generator=gen), timestep=torch.tensor([500.0]), return_dict=False)
    with torch.no_grad():
        reference = module(**args, skip_layers=[1])[0]
        with blocks_skipped(module, [1], []):
            ours = module(**args)[0]
        plain = module(**args)[0]
    assert (ours - reference).abs().max() < 1e-6
    assert (plain - reference).abs().max() > 1e-4


def test_skipped_blocks_on_flux_equal_the_transformer_without_them():
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    module = FluxTransformer2DModel(patch_size=1, in_channels=4, num_layers=2, num_single_layers=2,
                                    attention_head_dim=8, num_attention_heads=2, joint_attention_dim=16,
                                    pooled_projection_dim=8, axes_dims_rope=(2, 2, 4)).eval()
    gen = torch.Generator().manual_seed(1)
    ids = torch.stack(torch.meshgrid(torch.zeros(1), torch.arange(4.0), torch.arange(4.0), indexing="ij"), -1).reshape(-1, 3)
    args = dict(hidden_states=torch.randn(1, 16, 4, generator=gen), encoder_hidden_states=torch.randn(1, 3, 16, generator=gen),
                pooled_projections=torch.randn(1, 8, generator=gen), timestep=torch.tensor([0.5]), img_ids=ids,
                txt_ids=torch.zeros(3, 3), return_dict=False)
    shorter = copy.deepcopy(module)
    del shorter.transformer_blocks[0]
    del shorter.single_transformer_blocks[1]
    with torch.no_grad():
        with blocks_skipped(module, [0], [1]):
            ours = module(**args)[0]
        reference = shorter(**args)[0]
        plain = module(**args)[0]
    assert (ours - reference).abs().max() < 1e-6
    assert (plain - reference).abs().max() > 1e-4


def test_hooks_are_removed_after_the_pass():
    module = torch.nn.Module()
    module.transformer_blocks = torch.nn.ModuleList([torch.nn.Identity(), torch.nn.Identity()])
    with blocks_skipped(module, [0, 5], []):
        assert len(module.transformer_blocks[0]._forward_hooks) == 1
    assert block_counts(module) == (2, 0) and not module.transformer_blocks[0]._forward_hooks


def test_skipped_blocks_on_hunyuan_video_keep_its_stream_order():
    from diffusers import HunyuanVideoTransformer3DModel

    torch.manual_seed(0)
    module = HunyuanVideoTransformer3DModel(in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=8,
                                            num_layers=2, num_single_layers=2, num_refiner_layers=1, mlp_ratio=2.0,
                                            patch_size=1, patch_size_t=1, guidance_embeds=False, text_embed_dim=16,
                                            pooled_projection_dim=8, rope_axes_dim=(2, 2, 4)).eval()
    gen = torch.Generator().manual_seed(1)
    args = dict(hidden_states=torch.randn(1, 4, 2, 4, 4, generator=gen), timestep=torch.tensor([500]),
                encoder_hidden_states=torch.randn(1, 3, 16, generator=gen),
                encoder_attention_mask=torch.ones(1, 3, dtype=torch.bool), pooled_projections=torch.randn(1, 8, generator=gen),
                return_dict=False)
    shorter = copy.deepcopy(module)
    del shorter.transformer_blocks[1]
    del shorter.single_transformer_blocks[0]
    with torch.no_grad():
        with blocks_skipped(module, [1], [0]):
            ours = module(**args)[0]
        reference = shorter(**args)[0]
        plain = module(**args)[0]
    assert (ours - reference).abs().max() < 1e-6
    assert (plain - reference).abs().max() > 1e-4


def test_a_single_stream_block_handed_the_text_apart_passes_both_through_joined():
    from diffusers.models.transformers.transformer_flux2 import Flux2SingleTransformerBlock

    torch.manual_seed(0)
    block = Flux2SingleTransformerBlock(dim=16, num_attention_heads=2, attention_head_dim=8).eval()
    module = torch.nn.Module()
    module.single_transformer_blocks = torch.nn.ModuleList([block])
    hidden, text = torch.randn(1, 6, 16), torch.randn(1, 3, 16)
    temb = torch.randn(1, 3 * 16)
    with torch.no_grad(), blocks_skipped(module, [], [0]):
        joined = block(hidden_states=hidden, encoder_hidden_states=text, temb_mod=temb, image_rotary_emb=None)
        alone = block(hidden_states=hidden, encoder_hidden_states=None, temb_mod=temb, image_rotary_emb=None)
    assert torch.equal(joined, torch.cat([text, hidden], dim=1)) and torch.equal(alone, hidden)
