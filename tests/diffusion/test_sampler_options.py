"""The solver options of ER-SDE, SEEDS-2, SA-Solver and Euler CFG++ (what SamplerER_SDE,
SamplerSEEDS2, SamplerSASolver and SamplerEulerCFGpp set) on analytic denoisers."""

import functools

import pytest
import torch

from nodeloom.diffusion.samplers import SAMPLERS, _sa_solver, er_sde, euler_cfg_pp_alternative
from nodeloom.diffusion.schedules import ModelSampling, calculate_sigmas
from tests.diffusion.test_schedules_samplers import _Guided, _mixture_denoisers

MS = ModelSampling()


def _gaussian(fn, steps=40, noise=None):
    """Relative max error against the probability-flow ODE of N(0, 1) data (see the sampler tests)."""
    sigmas = calculate_sigmas(MS, "karras", steps)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2)) * sigmas[0]
    out = fn(lambda x, s: x / (1 + s ** 2), x, sigmas, noise, lambda *a: None)
    exact = x * (1 / (1 + sigmas[0] ** 2)).sqrt()
    return float((out - exact).abs().max() / exact.abs().max())


def _never(*_):
    raise AssertionError("a deterministic solver drew noise")


def _run(fn, denoise, seed=5):
    sigmas = calculate_sigmas(MS, "karras", 12)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(4)) * sigmas[0]
    return fn(denoise, x, sigmas, lambda like, *_: torch.randn(like.shape, generator=gen), lambda *a: None)


def test_er_sde_ode_forms_draw_no_noise_and_integrate_the_flow():
    ode = functools.partial(er_sde, solver_type="ODE")
    assert _gaussian(ode, noise=_never) < 5e-3
    # a reverse-time SDE without stochastic strength is that ODE, whatever s_noise says
    rt0 = functools.partial(er_sde, solver_type="Reverse-time SDE", eta=0.0, s_noise=3.0)
    plain = _mixture_denoisers()[0]
    assert torch.equal(_run(rt0, plain), _run(ode, plain))


def test_er_sde_options_change_the_path():
    plain = _mixture_denoisers()[0]
    default = _run(SAMPLERS["er_sde"], plain)
    assert torch.equal(_run(functools.partial(er_sde, solver_type="ER-SDE", eta=5.0), plain), default)  # eta: not ER-SDE's
    assert (_run(functools.partial(er_sde, s_noise=0.5), plain) - default).abs().max() > 1e-3
    assert (_run(functools.partial(er_sde, solver_type="Reverse-time SDE"), plain) - default).abs().max() > 1e-3
    assert (_run(functools.partial(er_sde, max_stage=1), plain) - default).abs().max() > 1e-3
    with pytest.raises(ValueError, match="`solver_type` must be one of"):
        _run(functools.partial(er_sde, solver_type="SDE"), plain)


def test_seeds_2_phi_2_at_r_1_without_noise_is_a_second_order_exponential_heun():
    heun = functools.partial(SAMPLERS["seeds_2"], solver_type="phi_2", r=1.0, eta=0.0)
    assert _gaussian(heun, noise=_never) < 5e-3
    assert _gaussian(heun, steps=20, noise=_never) / _gaussian(heun, steps=40, noise=_never) > 2.5


def test_seeds_2_options():
    plain = _mixture_denoisers()[0]
    default = _run(SAMPLERS["seeds_2"], plain)
    assert torch.equal(_run(functools.partial(SAMPLERS["seeds_2"], solver_type="phi_1", r=0.5, s_noise=1.0), plain),
                       default)
    for change in ({"solver_type": "phi_2"}, {"r": 0.7}, {"s_noise": 0.3}):
        assert (_run(functools.partial(SAMPLERS["seeds_2"], **change), plain) - default).abs().max() > 1e-3, change
    # no fresh noise at all when s_noise is 0, as when eta is 0
    assert torch.equal(_run(functools.partial(SAMPLERS["seeds_2"], s_noise=0.0), plain),
                       _run(functools.partial(SAMPLERS["seeds_2"], s_noise=0.0), plain, seed=9))
    with pytest.raises(ValueError, match="`solver_type` must be 'phi_1' or 'phi_2'"):
        _run(functools.partial(SAMPLERS["seeds_2"], solver_type="phi_3"), plain)


def test_sa_solver_interval_noise_scale_and_simple_order_2():
    plain = _mixture_denoisers()[0]
    default = _run(SAMPLERS["sa_solver"], plain)
    sigmas = (MS.percent_to_sigma(0.2), MS.percent_to_sigma(0.8))
    assert torch.equal(_run(functools.partial(SAMPLERS["sa_solver"], sde_sigmas=sigmas), plain), default)
    quiet = functools.partial(SAMPLERS["sa_solver"], s_noise=0.0)
    assert torch.equal(_run(quiet, plain), _run(quiet, plain, seed=9))  # no noise drawn into the path
    assert (_run(quiet, plain) - default).abs().max() > 1e-3
    # an empty interval (start below end) keeps τ at 0 everywhere: the deterministic solver
    empty = functools.partial(SAMPLERS["sa_solver"], sde_sigmas=(0.0, 1.0))
    assert torch.allclose(_run(empty, plain), _run(functools.partial(_sa_solver, pece=False, eta=0.0), plain))
    # the simplified two-point scheme is still second order, and a different one
    simple = functools.partial(_sa_solver, pece=False, eta=0.0, predictor_order=2, corrector_order=2,
                               simple_order_2=True)
    full = functools.partial(_sa_solver, pece=False, eta=0.0, predictor_order=2, corrector_order=2)
    assert _gaussian(simple) < 5e-3
    assert _gaussian(simple, steps=20) / _gaussian(simple, steps=40) > 2.5
    assert (_run(simple, plain) - _run(full, plain)).abs().max() > 1e-5


def test_euler_cfg_pp_alternative_is_euler_without_guidance_and_differs_with_it():
    plain = _mixture_denoisers()[0]
    assert torch.allclose(_run(euler_cfg_pp_alternative, plain), _run(SAMPLERS["euler"], plain), atol=1e-6)
    guided = _run(euler_cfg_pp_alternative, _Guided(3.0))
    assert (guided - _run(SAMPLERS["euler"], _Guided(3.0))).abs().max() > 1e-2
    assert (guided - _run(SAMPLERS["euler_cfg_pp"], _Guided(3.0))).abs().max() > 1e-2
