"""The UNet attention-multiply nodes on a tiny SD 1.x model in the KSampler: the patched run equals
a run with the same weights scaled by hand, neutral factors change nothing, the weights are put
back afterwards, temporal factors leave a spatial UNet alone, families ComfyUI's names do not reach
pass through unchanged, and HiDream/LTX-2 are refused."""

import pytest
import torch

from nodeloom.diffusion.attention_multiply import AttentionMultiply
from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion.attention_multiply_nodes import (
    UNetCrossAttentionMultiply,
    UNetSelfAttentionMultiply,
    UNetTemporalAttentionMultiply,
)
from nodeloom.nodes.diffusion.sampling import KSampler


def _sample(chain, model):
    _, pos, neg, latent = chain
    return KSampler.execute(model, 3, 3, 5.0, "euler", "karras", pos, neg, latent, 1.0)[0]["samples"]


def _by_hand(chain, scales: dict[str, float]):
    """Sample with the named weights scaled directly (suffix -> factor), then restore them."""
    unet = chain[0].unet
    saved = {}
    with torch.no_grad():
        for name, param in unet.named_parameters():
            for suffix, factor in scales.items():
                if name.endswith(suffix):
                    saved[name] = param.detach().clone()
                    param.mul_(factor)
    try:
        return _sample(chain, chain[0])
    finally:
        with torch.no_grad():
            for name, param in unet.named_parameters():
                if name in saved:
                    param.copy_(saved[name])


def test_self_and_cross_attention_multiply_equal_scaling_the_weights(chain):
    model = chain[0]
    before = {k: v.detach().clone() for k, v in model.unet.state_dict().items()}
    plain = _sample(chain, model)
    assert torch.equal(_sample(chain, UNetSelfAttentionMultiply.execute(model, 1.0, 1.0, 1.0, 1.0)[0]), plain)
    patched = _sample(chain, UNetSelfAttentionMultiply.execute(model, 1.3, 0.8, 0.7, 1.1)[0])
    expected = _by_hand(chain, {"attn1.to_q.weight": 1.3, "attn1.to_k.weight": 0.8, "attn1.to_v.weight": 0.7,
                                "attn1.to_out.0.weight": 1.1, "attn1.to_out.0.bias": 1.1})
    assert (patched - plain).abs().max() > 1e-4
    assert torch.allclose(patched, expected, atol=1e-6)
    cross = _sample(chain, UNetCrossAttentionMultiply.execute(model, 1.0, 1.2, 1.0, 0.9)[0])
    assert torch.allclose(cross, _by_hand(chain, {"attn2.to_k.weight": 1.2, "attn2.to_out.0.weight": 0.9,
                                                  "attn2.to_out.0.bias": 0.9}), atol=1e-6)
    after = model.unet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # every weight put back
    assert torch.equal(_sample(chain, model), plain)  # the source MODEL carries no patch


def test_temporal_multiply_scales_output_projections_by_layer_kind(chain):
    model = chain[0]
    plain = _sample(chain, model)
    # a spatial UNet has no temporal layers: the temporal factors change nothing
    assert torch.equal(_sample(chain, UNetTemporalAttentionMultiply.execute(model, 1.0, 3.0, 1.0, 3.0)[0]), plain)
    patched = _sample(chain, UNetTemporalAttentionMultiply.execute(model, 1.2, 1.0, 1.3, 1.0)[0])
    expected = _by_hand(chain, {"attn1.to_out.0.weight": 1.2, "attn1.to_out.0.bias": 1.2,
                                "attn2.to_out.0.weight": 1.3, "attn2.to_out.0.bias": 1.3})
    assert torch.allclose(patched, expected, atol=1e-6)


def test_rules_tell_temporal_layers_and_projections_apart():
    patch = AttentionMultiply((("attn1", "to_out.0", False, 2.0), ("attn1", "to_out.0", True, 3.0),
                               ("attn2", "to_q", None, 4.0)))
    assert patch.factor_for("input_blocks.1.1.transformer_blocks.0.attn1.to_out.0.weight") == 2.0
    assert patch.factor_for("input_blocks.1.1.time_stack.0.attn1.to_out.0.bias") == 3.0
    assert patch.factor_for("down_blocks.0.attentions.0.temporal_transformer_blocks.0.attn1.to_out.0.weight") == 3.0
    assert patch.factor_for("x.attn2.to_q.weight") == 4.0
    assert patch.factor_for("x.attn1.to_q.weight") is None
    assert patch.factor_for("x.attn2.to_qkv.weight") is None


def test_families_without_comfyui_attention_names_pass_and_others_are_refused():
    class DiT:
        adapter = object()
        unet = torch.nn.Linear(2, 2)

        def __init__(self, family):
            self.family = family

    wan = DiT("wan")
    assert UNetTemporalAttentionMultiply.execute(wan, 1.0, 1.0, 1.2, 1.3)[0] is wan  # as ComfyUI: no weight matches
    with pytest.raises(ValidationError, match="UNetSelfAttentionMultiply: `model` is a hidream model"):
        UNetSelfAttentionMultiply.execute(DiT("hidream"), 1.1, 1.0, 1.0, 1.0)
    assert UNetSelfAttentionMultiply.SCHEMA.category == "_for_testing/attention_experiments"
