import pytest
import torch

from nodeloom.diffusion.samplers import SAMPLERS
from nodeloom.diffusion.schedules import SCHEDULER_NAMES, ModelSampling, calculate_sigmas, denoise_sigmas
from nodeloom.errors import ValidationError

MS = ModelSampling()


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_every_scheduler_descends_to_zero(name):
    sig = calculate_sigmas(MS, name, 10)
    assert sig[-1] == 0 and len(sig) <= 11 and len(sig) >= 8
    assert torch.all(sig[:-1] > 0) and torch.all(sig[1:] <= sig[:-1])
    assert sig[0] <= MS.sigma_max * 1.0001


def test_normal_and_karras_endpoints():
    normal = calculate_sigmas(MS, "normal", 20)
    assert normal[0] == pytest.approx(MS.sigma_max) and normal[-2] == pytest.approx(MS.sigma_min, rel=1e-4)
    karras = calculate_sigmas(MS, "karras", 20)
    assert karras[0] == pytest.approx(MS.sigma_max) and karras[-2] == pytest.approx(MS.sigma_min, rel=1e-4)


def test_timestep_inverts_sigma():
    t = torch.tensor([0.0, 10.5, 500.25, 999.0])
    assert torch.allclose(torch.stack([MS.timestep(MS.sigma(x)) for x in t]), t, atol=1e-2)


def test_denoise_keeps_the_tail_of_a_longer_schedule():
    half = denoise_sigmas(MS, "normal", 10, 0.5)
    assert torch.allclose(half, calculate_sigmas(MS, "normal", 20)[-11:])
    assert len(denoise_sigmas(MS, "normal", 10, 0.0)) == 0
    assert len(denoise_sigmas(MS, "normal", 10, 1.0, discard_penultimate=True)) == 11


def test_unknown_scheduler_lists_supported():
    with pytest.raises(ValidationError, match="karras"):
        calculate_sigmas(MS, "linear_quadratic_x", 10)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_reaches_the_clean_image_of_an_exact_denoiser(name):
    """With a denoiser that always returns the data point, every sampler must end exactly there."""
    target = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    sigmas = calculate_sigmas(MS, "karras", 8)
    gen = torch.Generator().manual_seed(1)
    x = target + torch.randn(target.shape, generator=gen) * sigmas[0]
    steps = []
    out = SAMPLERS[name](lambda x, s: target.clone(), x, sigmas,
                         lambda like: torch.randn(like.shape, generator=gen), lambda i, x, d: steps.append(i))
    assert torch.allclose(out, target, atol=1e-3)
    assert steps == list(range(len(steps))) and len(steps) >= 1


@pytest.mark.parametrize(("name", "tol"), [("euler", 5e-2), ("heun", 5e-3), ("dpm_2", 5e-3), ("dpmpp_2m", 5e-3),
                                           ("lms", 2e-3), ("uni_pc", 2e-3), ("uni_pc_bh2", 2e-3)])
def test_deterministic_samplers_integrate_a_gaussian(name, tol):
    """Data ~ N(0, 1): the ideal denoiser is x / (1 + σ²); the probability-flow ODE maps x_T to x_T / √(1+σ_T²)."""
    sigmas = calculate_sigmas(MS, "karras", 40)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2)) * sigmas[0]
    out = SAMPLERS[name](lambda x, s: x / (1 + s ** 2), x, sigmas, None, lambda *a: None)
    exact = x / (1 + sigmas[0] ** 2).sqrt()
    assert (out - exact).abs().max() <= tol * exact.abs().max()  # first-order Euler is the loosest
