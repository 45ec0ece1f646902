"""PerpNegGuider: the perpendicular negative on known tensors and through the sampler on a toy flow
model whose estimates are known per channel."""

from __future__ import annotations

import pytest
import torch

from nodeloom.diffusion.flow import FlowSampling
from nodeloom.diffusion.models import DiffusionModel
from nodeloom.diffusion.perp_neg import perp_neg
from nodeloom.diffusion.sampling import sample_sigmas
from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion.perp_neg import PerpNegGuider


def _cond(weights):
    return [[torch.tensor(weights, dtype=torch.float32).reshape(1, 1, 4).repeat(1, 2, 1), {}]]


POS, NEG, EMPTY = _cond([1.0, 1.0, 0.0, 0.0]), _cond([0.0, 1.0, 1.0, 0.0]), _cond([0.0, 0.0, 0.0, 0.5])


def _toy_model() -> DiffusionModel:
    """Denoised estimate ``(1 − σ)·0.8·w_c·x`` in channel c for a prompt of weights w."""

    def adapter(module, x, sigma, group):
        w = group.context[:, 0, :4].reshape(-1, 4, 1, 1)
        return (x - (1 - sigma) * 0.8 * w * x) / sigma

    return DiffusionModel(torch.nn.Linear(1, 1), "test_flow", FlowSampling(shift=1.0, multiplier=1.0), 1.0,
                          adapter=adapter)


def _sample(guider, negative=None):
    out, _ = sample_sigmas(guider.model, {"samples": torch.zeros(1, 4, 8, 8)}, torch.tensor([0.6, 0.0]), seed=4,
                           cfg=guider.cfg, sampler_name="euler", positive=guider.positive,
                           negative=negative or guider.negative, dual=guider.dual if negative is None else None)
    return out["samples"]


def test_perp_neg_removes_only_the_perpendicular_part():
    empty = torch.zeros(1, 2)
    pos, neg = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    assert torch.allclose(perp_neg(pos, neg, empty, 1.0, 2.0), torch.tensor([[2.0, -2.0]]))
    assert torch.allclose(perp_neg(pos, 3 * pos, empty, 1.0, 2.0), 2 * pos)  # a parallel negative does nothing


def test_perp_neg_guider_through_the_sampler():
    model = _toy_model()
    (guider,) = PerpNegGuider.execute(model, POS, NEG, EMPTY, 5.0, 0.7)
    x = 0.6 * torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    est = {name: 0.4 * 0.8 * torch.tensor(w).reshape(1, 4, 1, 1) * x
           for name, w in (("pos", [1.0, 1.0, 0.0, 0.0]), ("neg", [0.0, 1.0, 1.0, 0.0]), ("empty", [0.0, 0.0, 0.0, 0.5]))}
    p, n = est["pos"] - est["empty"], est["neg"] - est["empty"]
    perp = n - (n * p).sum() / (p * p).sum() * p
    assert abs(float((perp * p).sum())) < 1e-3 and float(perp.abs().max()) > 0.01
    expected = est["empty"] + 5.0 * (p - 0.7 * perp)
    assert torch.allclose(_sample(guider), expected, atol=1e-5)
    (no_neg,) = PerpNegGuider.execute(model, POS, NEG, EMPTY, 5.0, 0.0)  # plain CFG against the empty prompt
    assert torch.allclose(_sample(no_neg), _sample(no_neg, negative=EMPTY), atol=1e-5)


def test_perp_neg_guider_refusals():
    from nodeloom.nodes.diffusion.cfg_nodes import CFGZeroStar

    with pytest.raises(ValidationError, match="`empty_conditioning`"):
        PerpNegGuider.execute(_toy_model(), POS, NEG, [], 5.0, 1.0)
    (patched,) = CFGZeroStar.execute(_toy_model())
    with pytest.raises(ValidationError, match="post-CFG"):
        PerpNegGuider.execute(patched, POS, NEG, EMPTY, 5.0, 1.0)
