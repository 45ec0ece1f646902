"""CFGZeroStar, RescaleCFG and CFGOverride: their math on known tensors and their effect through
nodeloom's sampler on a toy flow model whose estimates are known in closed form."""

from __future__ import annotations

import pytest
import torch

from nodeloom.diffusion.cfg_patches import CFG_OVERRIDES, cfg_zero_star, optimized_scale, rescale_cfg
from nodeloom.diffusion.flow import FlowSampling
from nodeloom.diffusion.models import DiffusionModel
from nodeloom.diffusion.sampling import sample_sigmas
from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion.cfg_nodes import CFGOverride, CFGZeroStar, RescaleCFG

POS, NEG = [[torch.full((1, 2, 4), 1.0), {}]], [[torch.full((1, 2, 4), -0.5), {}]]
LATENT = {"samples": torch.zeros(1, 4, 8, 8)}


def _toy_model() -> DiffusionModel:
    """A flow MODEL whose denoised estimate is ``(1 − σ)·0.8·c·x`` for a prompt of value c (σ = 1 − percent)."""

    def adapter(module, x, sigma, group):
        ctx = group.context[:, :1, :1, None]
        return (x - (1 - sigma) * 0.8 * ctx * x) / sigma

    return DiffusionModel(torch.nn.Linear(1, 1), "test_flow", FlowSampling(shift=1.0, multiplier=1.0), 1.0,
                          adapter=adapter)


def _run(model, sigmas, cfg=3.0, latent=LATENT, add_noise=True):
    out, _ = sample_sigmas(model, latent, torch.tensor(sigmas), seed=2, cfg=cfg, sampler_name="euler",
                           positive=POS, negative=NEG, add_noise=add_noise)
    return out


def _one_step_estimates():
    """x at σ 0.6 and the two estimates; one euler step to 0 returns the guided estimate itself."""
    x = 0.6 * torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    return x, 0.4 * 0.8 * 1.0 * x, 0.4 * 0.8 * -0.5 * x


def test_optimized_scale_on_known_tensors():
    pos = torch.tensor([[2.0, 4.0], [1.0, 0.0]]).reshape(2, 1, 2)
    neg = torch.tensor([[1.0, 2.0], [0.0, 3.0]]).reshape(2, 1, 2)
    scale = optimized_scale(pos, neg)
    assert scale.shape == (2, 1, 1)
    assert torch.allclose(scale.flatten(), torch.tensor([2.0, 0.0]), atol=1e-6)


def test_cfg_zero_star_formula_and_without_a_negative():
    x, cond, uncond = torch.ones(1, 1, 2), torch.tensor([[[0.0, 1.0]]]), torch.tensor([[[0.5, 0.5]]])
    out = uncond + 4.0 * (cond - uncond)
    alpha = float(((x - cond) * (x - uncond)).sum() / ((x - uncond) ** 2).sum())
    args = {"denoised": out, "cond_denoised": cond, "uncond_denoised": uncond, "cond_scale": 4.0, "input": x}
    expected = out + uncond * (alpha - 1.0) + 4.0 * uncond * (1.0 - alpha)
    assert torch.allclose(cfg_zero_star(args), expected)
    assert cfg_zero_star({**args, "uncond_denoised": None}) is out


def test_cfg_zero_star_through_the_sampler_and_clone():
    model = _toy_model()
    (patched,) = CFGZeroStar.execute(model)
    assert model.post_cfg == () and len(patched.post_cfg) == 1
    x, cond, uncond = _one_step_estimates()
    alpha = optimized_scale(x - cond, x - uncond)
    guided = uncond + (cond - uncond) * 3.0
    expected = guided + uncond * (alpha - 1.0) + 3.0 * uncond * (1.0 - alpha)
    assert not torch.allclose(alpha, torch.ones_like(alpha))
    assert torch.allclose(_run(patched, [0.6, 0.0])["samples"], expected, atol=1e-5)
    assert torch.allclose(_run(model, [0.6, 0.0])["samples"], guided, atol=1e-5)


def test_rescale_cfg_multiplier_zero_is_plain_cfg_and_one_matches_the_positive_spread():
    model = _toy_model()
    (plain,) = RescaleCFG.execute(model, 0.0)
    assert "sampler_cfg_function" not in model.model_options
    assert torch.allclose(_run(plain, [0.6, 0.3, 0.0])["samples"], _run(model, [0.6, 0.3, 0.0])["samples"], atol=1e-5)
    (full,) = RescaleCFG.execute(model, 1.0)
    assert not torch.allclose(_run(full, [0.6, 0.0])["samples"], _run(model, [0.6, 0.0])["samples"], atol=1e-3)
    x, cond, uncond = _one_step_estimates()
    sigma = torch.tensor([0.6])
    eps = rescale_cfg(1.0)({"cond": x - cond, "uncond": x - uncond, "cond_scale": 3.0, "input": x, "sigma": sigma})
    root = (0.36 + 1.0) ** 0.5
    v = lambda d: ((x / 1.36 - d) * root) / 0.6  # noqa: E731 - ComfyUI's v-prediction of an estimate
    v_out = ((x / 1.36 - (x - eps)) * root) / 0.6
    assert torch.allclose(v_out.std(), v(cond).std(), atol=1e-5)
    assert torch.allclose(v_out / v_out.std(), (v(uncond) + 3.0 * (v(cond) - v(uncond))).div(
        (v(uncond) + 3.0 * (v(cond) - v(uncond))).std()), atol=1e-5)


def test_cfg_override_over_the_whole_run_and_at_sampler_cfg_one():
    model = _toy_model()
    (one,) = CFGOverride.execute(model, 1.0, 0.0, 1.0)
    assert CFG_OVERRIDES not in model.extra and CFG_OVERRIDES in one.extra
    assert torch.allclose(_run(one, [0.6, 0.3, 0.0])["samples"], _run(model, [0.6, 0.3, 0.0], cfg=1.0)["samples"],
                          atol=1e-5)
    (three,) = CFGOverride.execute(model, 3.0, 0.0, 1.0)  # the negative is still run when the sampler's cfg is 1
    assert torch.allclose(_run(three, [0.6, 0.3, 0.0], cfg=1.0)["samples"], _run(model, [0.6, 0.3, 0.0])["samples"],
                          atol=1e-5)


def test_cfg_override_acts_only_inside_its_range_and_the_nearest_wins():
    """σ = 1 − percent here: [0, 0.5] covers the step at σ 0.6, not the one at σ 0.3."""
    model = _toy_model()
    (early,) = CFGOverride.execute(model, 1.0, 0.0, 0.5)
    first = _run(model, [0.6, 0.3], cfg=1.0)
    expected = _run(model, [0.3, 0.0], latent=first, add_noise=False)
    assert torch.allclose(_run(early, [0.6, 0.3, 0.0])["samples"], expected["samples"], atol=1e-5)
    (outer,) = CFGOverride.execute(model, 7.0, 0.0, 1.0)
    (nearest,) = CFGOverride.execute(outer, 1.0, 0.0, 0.5)
    first = _run(model, [0.6, 0.3], cfg=1.0)
    expected = _run(model, [0.3, 0.0], cfg=7.0, latent=first, add_noise=False)
    assert torch.allclose(_run(nearest, [0.6, 0.3, 0.0])["samples"], expected["samples"], atol=1e-5)


def test_cfg_override_rejects_a_reversed_range():
    with pytest.raises(ValidationError, match="start_percent"):
        CFGOverride.execute(_toy_model(), 2.0, 0.8, 0.2)


def test_mahiro_blends_toward_the_scaled_positive_estimate():
    from nodeloom.nodes.diffusion.cfg_nodes import Mahiro

    model = _toy_model()
    (patched,) = Mahiro.execute(model)
    x, cond, uncond = _one_step_estimates()
    guided = uncond + (cond - uncond) * 3.0
    leap, u_leap = cond * 3.0, uncond * 3.0
    merge = (leap + guided) / 2
    sim = torch.nn.functional.cosine_similarity(u_leap.abs().sqrt() * u_leap.sign(), merge.abs().sqrt() * merge.sign())
    weight = 2 * (sim.mean() + 1)
    assert float(weight) < 1.0  # the negative leaps opposite to the merge, so the positive leap dominates
    expected = (weight * guided + (4 - weight) * leap) / 4
    assert torch.allclose(_run(patched, [0.6, 0.0])["samples"], expected, atol=1e-5)


def test_tangential_damping_keeps_the_shared_direction_only():
    from nodeloom.diffusion.cfg_patches import tangential_damping

    cond, uncond = torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[1.0, 1.0]]])
    stacked = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    _, vecs = torch.linalg.eigh(stacked.T @ stacked)
    top = vecs[:, -1]  # the first right-singular vector (its sign does not matter)
    assert torch.allclose(tangential_damping(cond, uncond).flatten(), (uncond.flatten() @ top) * top, atol=1e-6)
    parallel = torch.tensor([[[2.0, -4.0]]])
    assert torch.allclose(tangential_damping(parallel / 2, parallel), parallel, atol=1e-5)


def test_tcfg_leaves_parallel_predictions_alone_and_damps_others():
    from nodeloom.diffusion.cfg_patches import tcfg
    from nodeloom.nodes.diffusion.cfg_nodes import TCFG

    model = _toy_model()
    (patched,) = TCFG.execute(model)
    assert "sampler_pre_cfg_function" not in model.model_options
    # the toy's two noise predictions are both multiples of x: nothing to damp
    assert torch.allclose(_run(patched, [0.6, 0.3, 0.0])["samples"], _run(model, [0.6, 0.3, 0.0])["samples"], atol=1e-5)
    x = torch.ones(1, 1, 2)
    cond, uncond = torch.tensor([[[0.0, 1.0]]]), torch.tensor([[[0.0, 0.0]]])
    new_cond, new_uncond = tcfg({"conds_out": [cond, uncond], "input": x})
    assert new_cond is cond and not torch.allclose(new_uncond, uncond)


def test_apg_at_eta_one_without_cap_or_momentum_is_cfg_one_higher():
    """ComfyUI's APG rewrites the positive estimate so that guidance becomes (cfg + 1)·(c − u) at eta 1."""
    from nodeloom.nodes.diffusion.cfg_nodes import APG

    model = _toy_model()
    (patched,) = APG.execute(model, 1.0, 0.0, 0.0)
    assert torch.allclose(_run(patched, [0.6, 0.3, 0.0])["samples"], _run(model, [0.6, 0.3, 0.0], cfg=4.0)["samples"],
                          atol=1e-5)


def test_apg_projection_cap_and_momentum_on_known_tensors():
    from nodeloom.diffusion.cfg_patches import adaptive_projected

    cond = torch.tensor([1.0, 0.0]).reshape(1, 1, 1, 2)
    uncond = torch.tensor([0.0, -3.0]).reshape(1, 1, 1, 2)  # guidance (1, 3): parallel part (1, 0)
    args = {"conds_out": [cond, uncond], "sigma": torch.tensor([0.5]), "cond_scale": 2.0}
    new_cond = adaptive_projected(0.0, 0.0, 0.0)(args)[0]
    assert torch.allclose(new_cond, uncond + torch.tensor([0.0, 3.0]).reshape(1, 1, 1, 2) + (cond - uncond) / 2)
    capped = adaptive_projected(1.0, 1.0, 0.0)(args)[0]
    unit = torch.tensor([1.0, 3.0]).reshape(1, 1, 1, 2) / 10 ** 0.5
    assert torch.allclose(capped, uncond + unit + (cond - uncond) / 2)
    fn = adaptive_projected(1.0, 0.0, 0.5)
    fn(args)
    second = fn({**args, "sigma": torch.tensor([0.4])})[0]  # running average: 0.5·g + g
    assert torch.allclose(second, uncond + 1.5 * (cond - uncond) + (cond - uncond) / 2)
    restarted = fn({**args, "sigma": torch.tensor([0.9])})[0]  # σ rose: a new run, the average starts over
    assert torch.allclose(restarted, uncond + (cond - uncond) + (cond - uncond) / 2)


def test_renorm_cfg_caps_the_norm_and_truncates():
    from nodeloom.diffusion.cfg_patches import renorm_cfg
    from nodeloom.nodes.diffusion.cfg_nodes import RenormCFG

    model = _toy_model()
    (off,) = RenormCFG.execute(model, 100.0, 0.0)  # no cap, never truncated: plain CFG
    assert torch.allclose(_run(off, [0.6, 0.3, 0.0])["samples"], _run(model, [0.6, 0.3, 0.0])["samples"], atol=1e-5)
    (capped,) = RenormCFG.execute(model, 100.0, 1.0)
    x, cond, uncond = _one_step_estimates()
    guided = uncond + (cond - uncond) * 3.0  # 2.5× the positive estimate's norm, so the cap bites
    assert torch.allclose(_run(capped, [0.6, 0.0])["samples"], guided * cond.norm() / guided.norm(), atol=1e-5)
    (late,) = RenormCFG.execute(model, 0.5, 1.0)  # σ 0.6 is past cfg_trunc: the positive estimate alone
    assert torch.allclose(_run(late, [0.6, 0.0])["samples"], cond, atol=1e-5)
    below = renorm_cfg(100.0, 10.0)({"cond_denoised": cond, "uncond_denoised": uncond, "cond_scale": 3.0, "input": x,
                                     "timestep": torch.tensor([0.6])})
    assert torch.allclose(x - below, guided)  # under the cap: untouched
