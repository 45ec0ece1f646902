"""SamplerER_SDE, SamplerSASolver, SamplerSEEDS2, SamplerEulerCFGpp and SamplerDPMAdaptative: at
ComfyUI's defaults each gives the KSampler's result for the sampler it configures; their options
reach the algorithm. SamplerLCMUpscale grows the latent as ComfyUI's schedule of factors says."""

import pytest
import torch

from nodeloom.nodes.diffusion.custom_sampling import BasicScheduler, SamplerCustom
from nodeloom.diffusion.samplers import SAMPLERS
from nodeloom.node_api import ValidationError
from nodeloom.nodes.diffusion.extra_samplers import (
    SamplerDPMAdaptative,
    SamplerER_SDE,
    SamplerEulerCFGpp,
    SamplerLCMUpscale,
    SamplerSASolver,
    SamplerSEEDS2,
    lcm_upscale,
)
from nodeloom.nodes.diffusion.sampling import KSampler

SEED, STEPS, CFG = 11, 4, 6.0


def _custom(chain, sampler):
    model, pos, neg, latent = chain
    sigmas = BasicScheduler.execute(model, "karras", STEPS, 1.0)[0]
    return SamplerCustom.execute(model, True, SEED, CFG, pos, neg, sampler, sigmas, latent)[0]["samples"]


def _ksampler(chain, name):
    model, pos, neg, latent = chain
    return KSampler.execute(model, SEED, STEPS, CFG, name, "karras", pos, neg, latent, 1.0)[0]["samples"]


def test_defaults_equal_the_named_samplers(chain):
    model = chain[0]
    cases = [
        (SamplerER_SDE.execute("ER-SDE", 3, 1.0, 1.0), "er_sde"),
        (SamplerSEEDS2.execute("phi_1", 1.0, 1.0, 0.5), "seeds_2"),
        (SamplerSASolver.execute(model, 1.0, 0.2, 0.8, 1.0, 3, 4, False, False), "sa_solver"),
        (SamplerSASolver.execute(model, 1.0, 0.2, 0.8, 1.0, 3, 4, True, False), "sa_solver_pece"),
        (SamplerEulerCFGpp.execute("regular"), "euler_cfg_pp"),
        (SamplerDPMAdaptative.execute(3, 0.05, 0.0078, 0.05, 0.0, 1.0, 0.0, 0.81, 0.0, 1.0), "dpm_adaptive"),
        (SamplerLCMUpscale.execute(1.0, -1, "bislerp"), "lcm"),
    ]
    for (sampler,), name in cases:
        a, b = _custom(chain, sampler), _ksampler(chain, name)
        # bislerp at factor 1 (LCM-upscale resizes even then, as ComfyUI does) rounds in float32
        assert (a - b).abs().max() <= 1e-6 * b.abs().max() + 1e-5, name


def test_options_reach_the_algorithm(chain):
    model = chain[0]
    er = _custom(chain, SamplerER_SDE.execute("ER-SDE", 3, 1.0, 1.0)[0])
    assert (_custom(chain, SamplerER_SDE.execute("ODE", 3, 1.0, 1.0)[0]) - er).abs().max() > 1e-4
    seeds = _custom(chain, SamplerSEEDS2.execute("phi_1", 1.0, 1.0, 0.5)[0])
    assert (_custom(chain, SamplerSEEDS2.execute("phi_2", 0.0, 1.0, 1.0)[0]) - seeds).abs().max() > 1e-4
    sa = _custom(chain, SamplerSASolver.execute(model, 1.0, 0.2, 0.8, 1.0, 3, 4, False, False)[0])
    assert (_custom(chain, SamplerSASolver.execute(model, 1.0, 0.2, 0.8, 0.0, 3, 4, False, False)[0]) - sa).abs().max() > 1e-4
    regular = _custom(chain, SamplerEulerCFGpp.execute("regular")[0])
    assert (_custom(chain, SamplerEulerCFGpp.execute("alternative")[0]) - regular).abs().max() > 1e-4


def test_declarations_follow_comfyui():
    assert SamplerER_SDE.SCHEMA.category == "sampling/custom_sampling/samplers"
    assert [i.name for i in SamplerSASolver.SCHEMA.inputs] == [
        "model", "eta", "sde_start_percent", "sde_end_percent", "s_noise", "predictor_order", "corrector_order",
        "use_pece", "simple_order_2"]
    assert SamplerEulerCFGpp.SCHEMA.display_name == "SamplerEulerCFG++" and SamplerEulerCFGpp.SCHEMA.experimental


def _gauss(x, s):
    """Exact posterior mean of unit-Gaussian data under x = x0 + σ·n."""
    return x / (1 + s ** 2)


def _walk(walk, steps=6, **options):
    sigmas = torch.cat([torch.logspace(1.0, -1.0, steps), torch.zeros(1)])
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * sigmas[0]
    gen = torch.Generator().manual_seed(1)
    calls = []

    def den(x, s):
        calls.append(float(s))
        return _gauss(x, s)

    out = walk(den, x, sigmas, lambda like, *_: torch.randn(like.shape, generator=gen), lambda *_: None, **options)
    return out, calls, x, sigmas


def test_dpm_adaptive_orders_and_controller():
    exact = lambda x, s0, s1: x * ((1 + s1 ** 2) / (1 + s0 ** 2)) ** 0.5  # noqa: E731 - the ODE's solution
    third, calls3, x, sigmas = _walk(SAMPLERS["dpm_adaptive"])
    second, calls2, _, _ = _walk(SAMPLERS["dpm_adaptive"], order=2)
    target = exact(x, sigmas[0], sigmas[-2])  # it stops at the smallest non-zero sigma
    scale = target.abs().max()
    # within rtol (0.05) of the exact solution, at either order
    assert (third - target).abs().max() < 0.05 * scale and (second - target).abs().max() < 0.06 * scale
    assert (third - second).abs().max() > 1e-5
    tight, calls_tight, _, _ = _walk(SAMPLERS["dpm_adaptive"], rtol=0.005, atol=0.0005)
    assert len(calls_tight) > len(calls3) and (tight - target).abs().max() < 0.01 * scale
    pid, _, _, _ = _walk(SAMPLERS["dpm_adaptive"], pcoeff=0.3, dcoeff=0.2)
    assert (pid - target).abs().max() < 0.05 * scale and (pid - third).abs().max() > 1e-6
    ancestral, _, _, _ = _walk(SAMPLERS["dpm_adaptive"], eta=1.0)
    assert (ancestral - third).abs().max() > 1e-3 and torch.isfinite(ancestral).all()
    quiet, _, _, _ = _walk(SAMPLERS["dpm_adaptive"], eta=1.0, s_noise=0.0)
    assert (quiet - ancestral).abs().max() > 1e-3
    with pytest.raises(ValueError, match="order"):
        _walk(SAMPLERS["dpm_adaptive"], order=4)
    with pytest.raises(ValidationError, match="order"):
        SamplerDPMAdaptative.execute(1, 0.05, 0.0078, 0.05, 0.0, 1.0, 0.0, 0.81, 0.0, 1.0)


def test_lcm_upscale_grows_the_latent_step_by_step():
    sizes = []

    def den(x, s):
        sizes.append(tuple(x.shape[-2:]))
        return _gauss(x, s)

    sigmas = torch.tensor([8.0, 4.0, 2.0, 1.0, 0.5, 0.0])
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 8
    out = lcm_upscale(den, x, sigmas, lambda like, *_: torch.zeros_like(like), lambda *_: None,
                      total_upscale=2.0, upscale_method="nearest-exact", upscale_steps=None)
    # ComfyUI's default: len(sigmas)//2 + 1 = 4 factors from linspace(1, 2), the first dropped
    assert sizes == [(8, 8), (11, 11), (13, 13), (16, 16), (16, 16)] and out.shape[-2:] == (16, 16)
    sizes.clear()
    out = lcm_upscale(den, x, sigmas, lambda like, *_: torch.zeros_like(like), lambda *_: None,
                      total_upscale=1.5, upscale_method="bilinear", upscale_steps=1)
    assert sizes == [(8, 8)] + [(12, 12)] * 4 and out.shape[-2:] == (12, 12)
    # no upscaling: plain LCM (jump to the estimate, re-noise to the next sigma)
    gen_a, gen_b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = lcm_upscale(_gauss, x, sigmas, lambda like, *_: torch.randn(like.shape, generator=gen_a), lambda *_: None,
                    total_upscale=1.0)
    b = SAMPLERS["lcm"](_gauss, x, sigmas, lambda like, *_: torch.randn(like.shape, generator=gen_b), lambda *_: None)
    assert torch.allclose(a, b, atol=1e-6)


def test_lcm_upscale_node_through_sampler_custom(chain):
    sampler = SamplerLCMUpscale.execute(2.0, 2, "bislerp")[0]
    assert dict(sampler.options) == {"total_upscale": 2.0, "upscale_steps": 2, "upscale_method": "bislerp"}
    out = _custom(chain, sampler)
    assert out.shape[-2:] == (16, 16) and torch.isfinite(out).all()
    with pytest.raises(ValidationError, match="upscale_method"):
        SamplerLCMUpscale.execute(2.0, 2, "lanczos")


def test_new_declarations_follow_comfyui():
    assert [(i.name, i.default) for i in SamplerDPMAdaptative.SCHEMA.inputs] == [
        ("order", 3), ("rtol", 0.05), ("atol", 0.0078), ("h_init", 0.05), ("pcoeff", 0.0), ("icoeff", 1.0),
        ("dcoeff", 0.0), ("accept_safety", 0.81), ("eta", 0.0), ("s_noise", 1.0)]
    assert [(i.name, i.default) for i in SamplerLCMUpscale.SCHEMA.inputs] == [
        ("scale_ratio", 1.0), ("scale_steps", -1), ("upscale_method", None)]
    assert SamplerLCMUpscale.SCHEMA.inputs[2].choices() == ["bislerp", "nearest-exact", "bilinear", "area", "bicubic"]


def test_bislerp_follows_the_great_circle():
    from nodeloom.nodes.diffusion.latent import upscale_latent

    # two pixels with orthogonal unit channel vectors, widened 2 -> 4: sample positions 0, 1/4, 3/4, 1
    pair = torch.zeros(1, 4, 1, 2)
    pair[0, 0, 0, 0] = pair[0, 1, 0, 1] = 1.0
    up = upscale_latent(pair, 4, 1, "bislerp", "disabled")[0, :, 0]
    angles = torch.tensor([0.0, 0.25, 0.75, 1.0]) * torch.pi / 2
    assert torch.allclose(up[0], angles.cos(), atol=1e-6) and torch.allclose(up[1], angles.sin(), atol=1e-6)
    # parallel neighbours are copied (not blended), as ComfyUI treats them
    parallel = torch.tensor([0.6, 0.0, 0.8, 0.0]).view(1, 4, 1, 1) * torch.tensor([[1.0, 2.0, 3.0]]).view(1, 1, 1, 3)
    wide = upscale_latent(parallel, 6, 1, "bislerp", "disabled")
    assert set(wide[0, 2, 0].tolist()) <= set(parallel[0, 2, 0].tolist())
    mixed = torch.randn(1, 4, 5, 7, generator=torch.Generator().manual_seed(3))
    up = upscale_latent(mixed, 14, 10, "bislerp", "disabled")
    norms, src = up.norm(dim=1), mixed.norm(dim=1)
    assert up.shape == (1, 4, 10, 14) and torch.isfinite(up).all()
    assert norms.max() <= src.max() + 1e-5 and norms.min() >= src.min() - 1e-5
    assert upscale_latent(mixed.double(), 7, 5, "bislerp", "disabled").dtype == torch.float64
