"""Flow schedules (ComfyUI's shift formulas) and split-file reading (headers, truncation, fp8)."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import save_file

from nodeloom.diffusion.flow import FlowSampling, FluxSampling, flux_resolution_shift, noise_scaling
from nodeloom.diffusion.schedules import calculate_sigmas
from nodeloom.diffusion.single_file import load_weights, read_header
from nodeloom.errors import ModelNotFoundError, ValidationError


def test_sd3_shift_and_multiplier():
    ms = FlowSampling(shift=3.0, multiplier=1000.0)
    t = 0.25
    assert float(ms.sigma(t * 1000)) == pytest.approx(3 * t / (1 + 2 * t))
    assert float(ms.timestep(0.5)) == pytest.approx(500.0)
    assert ms.sigma_max == pytest.approx(1.0) and ms.sigma_min == pytest.approx(3e-3 / (1 + 2e-3), rel=1e-5)
    assert ms.percent_to_sigma(0.0) == 1.0 and ms.percent_to_sigma(1.0) == 0.0
    assert ms.percent_to_sigma(0.5) == pytest.approx(1.5 / 2.0)
    aura = FlowSampling(shift=1.0, multiplier=1.0)
    assert float(aura.timestep(0.3)) == pytest.approx(0.3) and float(aura.sigma(0.3)) == pytest.approx(0.3)


def test_flux_shift_is_linear_in_patches_and_exponential_in_time():
    assert flux_resolution_shift(256, 256) == pytest.approx(0.5)
    assert flux_resolution_shift(1024, 1024) == pytest.approx(1.15)
    ms = FluxSampling(shift=1.15)
    assert float(ms.sigma(0.5)) == pytest.approx(math.exp(1.15) / (math.exp(1.15) + 1.0))
    assert len(ms.sigmas) == 10000 and ms.sigma_max == pytest.approx(1.0)


@pytest.mark.parametrize("scheduler", ["simple", "normal", "sgm_uniform", "karras", "exponential", "ddim_uniform",
                                       "beta", "linear_quadratic", "kl_optimal"])
def test_every_scheduler_gives_a_descending_flow_schedule(scheduler):
    sig = calculate_sigmas(FlowSampling(shift=3.0, multiplier=1.0), scheduler, 8)
    assert sig[0] <= 1.0 + 1e-6 and sig[-1] == 0.0
    assert bool((sig[:-1] >= sig[1:]).all())


def test_simple_schedule_matches_comfyui_indexing():
    ms = FlowSampling(shift=3.0, multiplier=1.0)
    sig = calculate_sigmas(ms, "simple", 4)
    expected = [float(ms.sigmas[-(1 + int(i * 250))]) for i in range(4)] + [0.0]
    assert sig.tolist() == pytest.approx(expected)


def test_noise_scaling_flow_and_eps():
    latent, noise = torch.full((1, 2), 2.0), torch.ones(1, 2)
    flow = FlowSampling()
    assert torch.allclose(noise_scaling(flow, torch.tensor(0.25), noise, latent), torch.full((1, 2), 0.25 + 1.5))
    assert torch.allclose(noise_scaling(object(), 0.5, noise, latent), torch.full((1, 2), 2.5))
    assert torch.allclose(noise_scaling(object(), 2.0, noise, latent, max_denoise=True),
                          torch.full((1, 2), 2.0 + math.sqrt(5.0)))


def test_header_metadata_and_truncation(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file({"a.weight": torch.ones(3, 2)}, str(path), metadata={"modelspec.title": "tiny"})
    header = read_header(path)
    assert header.shapes == {"a.weight": (3, 2)} and header.dtypes == {"a.weight": "F32"}
    assert header.metadata == {"modelspec.title": "tiny"}
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(ValidationError, match="`cut.safetensors` is truncated"):
        read_header(cut)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\xff" * 64)
    with pytest.raises(ValidationError, match="junk.safetensors"):
        read_header(junk)
    with pytest.raises(ModelNotFoundError, match="missing.safetensors"):
        read_header(tmp_path / "missing.safetensors")
    with pytest.raises(ValidationError, match=".ckpt"):
        (tmp_path / "x.ckpt").write_bytes(b"0" * 16)
        read_header(tmp_path / "x.ckpt")


def test_scaled_fp8_is_dequantised_and_prefix_stripped(tmp_path):
    w = torch.tensor([[1.0, -2.0], [0.5, 4.0]])
    scale = torch.tensor(4.0 / 448.0)
    sd = {"model.diffusion_model.scaled_fp8": torch.empty(0, dtype=torch.float8_e4m3fn),
          "model.diffusion_model.l.weight": (w / scale).to(torch.float8_e4m3fn),
          "model.diffusion_model.l.scale_weight": scale,
          "model.diffusion_model.l.bias": torch.tensor([1.0, 2.0], dtype=torch.bfloat16),
          "model.diffusion_model.p.weight": w.to(torch.float8_e5m2)}
    path = tmp_path / "fp8.safetensors"
    save_file(sd, str(path))
    assert read_header(path).scaled_fp8
    out = load_weights(path, dtype=torch.float32)
    assert set(out) == {"l.weight", "l.bias", "p.weight"}
    assert torch.allclose(out["l.weight"], w, rtol=1 / 16)
    assert out["l.bias"].dtype == torch.float32 and torch.equal(out["p.weight"], w)


def _gaussian_flow_model():
    """A flow MODEL whose 'transformer' is the exact velocity for unit-Gaussian data."""
    from nodeloom.diffusion.models import DiffusionModel

    def adapter(module, x, sigma, group):
        a = 1 - sigma
        den = a * x / (a ** 2 + sigma ** 2)
        return (x - den) / sigma

    return DiffusionModel(torch.nn.Linear(1, 1), "test_flow", FlowSampling(shift=3.0, multiplier=1.0), 1.0,
                          adapter=adapter)


@pytest.mark.parametrize("name", ["euler", "euler_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m_sde",
                                  "dpmpp_3m_sde", "lcm", "res_multistep", "euler_ancestral_cfg_pp", "uni_pc", "ddim"])
def test_every_sampler_runs_on_a_flow_model(name):
    from nodeloom.diffusion.sampling import sample

    cond = [[torch.zeros(1, 2, 4), {}]]
    out = sample(_gaussian_flow_model(), {"samples": torch.zeros(1, 4, 8, 8)}, seed=3, steps=6, cfg=1.5,
                 sampler_name=name, scheduler="simple", positive=cond, negative=cond)["samples"]
    assert torch.isfinite(out).all()
    assert 0.3 < float(out.std()) < 1.5  # a draw from the unit Gaussian the model describes


def test_flow_forms_differ_from_the_sd_forms_and_unported_samplers_are_refused():
    from nodeloom.diffusion.sampling import sample

    cond = [[torch.zeros(1, 2, 4), {}]]
    kw = dict(seed=3, steps=4, cfg=1.0, scheduler="simple", positive=cond, negative=cond)
    model = _gaussian_flow_model()
    with pytest.raises(ValidationError, match="er_sde"):
        sample(model, {"samples": torch.zeros(1, 4, 8, 8)}, sampler_name="er_sde", **kw)
    rf = sample(model, {"samples": torch.zeros(1, 4, 8, 8)}, sampler_name="euler_ancestral", **kw)["samples"]
    plain = sample(model, {"samples": torch.zeros(1, 4, 8, 8)}, sampler_name="euler", **kw)["samples"]
    assert not torch.allclose(rf, plain)


def test_split_run_with_leftover_noise_equals_one_run_on_flow():
    from nodeloom.diffusion.sampling import sample

    cond = [[torch.zeros(1, 2, 4), {}]]
    kw = dict(seed=5, steps=6, cfg=1.0, sampler_name="euler", scheduler="simple", positive=cond, negative=cond)
    model, lat = _gaussian_flow_model(), {"samples": torch.zeros(1, 4, 8, 8)}
    whole = sample(model, lat, **kw)["samples"]
    first = sample(model, lat, last_step=3, **kw)
    second = sample(model, first, add_noise=False, start_step=3, **kw)["samples"]
    assert torch.allclose(whole, second, atol=1e-5)


def test_cfg_norm_caps_the_guided_estimate_at_the_positive_norm():
    """One euler step from σ = 0.6 to 0 returns the (post-CFG) estimate itself, so CFGNorm's effect is visible."""
    from nodeloom.diffusion.sampling import sample_sigmas
    from nodeloom.nodes.diffusion.guidance import CFGNorm

    def adapter(module, x, sigma, group):
        ctx = group.context[:, :1, :1, None]  # [n,1,1,1]: each prompt sets its own data scale
        den = (1 - sigma) * 0.8 * ctx * x
        return (x - den) / sigma

    model = _gaussian_flow_model().clone(adapter=adapter)
    pos, neg = [[torch.full((1, 2, 4), 1.0), {}]], [[torch.full((1, 2, 4), -0.5), {}]]
    lat, sigmas = {"samples": torch.zeros(1, 4, 8, 8)}, torch.tensor([0.6, 0.0])
    kw = dict(seed=2, cfg=3.0, sampler_name="euler", positive=pos, negative=neg)
    plain, _ = sample_sigmas(model, lat, sigmas, **kw)
    (patched,) = CFGNorm.execute(model, 0.9)
    normed, _ = sample_sigmas(patched, lat, sigmas, **kw)
    x = 0.6 * torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    cond, uncond = 0.4 * 0.8 * 1.0 * x, 0.4 * 0.8 * -0.5 * x
    guided = uncond + (cond - uncond) * 3.0
    scale = (cond.norm(dim=1, keepdim=True) / (guided.norm(dim=1, keepdim=True) + 1e-8)).clamp(0, 1)
    assert float(scale.max()) < 0.5  # guidance inflated the estimate, so the cap bites
    assert torch.allclose(plain["samples"], guided, atol=1e-5)
    assert torch.allclose(normed["samples"], guided * scale * 0.9, atol=1e-5)


def test_differential_diffusion_regenerates_a_pixel_only_while_its_mask_covers_the_remaining_run():
    """With a flow model, timesteps are σ; a pixel of mask m is regenerated at steps where σ ≤ m
    (between the schedule's ends) and kept on the original latent's path otherwise."""
    from nodeloom.diffusion.differential import differential_mask
    from nodeloom.diffusion.sampling import sample_sigmas
    from nodeloom.nodes.diffusion.guidance import DifferentialDiffusion

    fn = differential_mask(1.0)
    ms = FlowSampling(shift=1.0, multiplier=1.0)
    mask = torch.tensor([0.1, 0.5, 0.9]).reshape(1, 1, 1, 3)
    sigmas = torch.tensor([1.0, 0.6, 0.3, 0.0])
    assert fn(torch.tensor(0.6), mask, sigmas, ms).flatten().tolist() == [0.0, 0.0, 1.0]
    assert fn(torch.tensor(0.3), mask, sigmas, ms).flatten().tolist() == [0.0, 1.0, 1.0]
    half = differential_mask(0.5)(torch.tensor(0.3), mask, sigmas, ms).flatten()
    assert torch.allclose(half, torch.tensor([0.05, 0.75, 0.95]))
    cond = [[torch.zeros(1, 2, 4), {}]]
    latent = {"samples": torch.ones(1, 4, 2, 3), "noise_mask": torch.tensor([[[0.0, 0.5, 1.0]] * 2])}
    (patched,) = DifferentialDiffusion.execute(_gaussian_flow_model(), 1.0)
    out, _ = sample_sigmas(patched, latent, sigmas, seed=1, cfg=1.0, sampler_name="euler", positive=cond, negative=cond)
    plain, _ = sample_sigmas(_gaussian_flow_model(), latent, sigmas, seed=1, cfg=1.0, sampler_name="euler",
                             positive=cond, negative=cond)
    assert torch.allclose(out["samples"][..., 0], torch.ones(1, 4, 2))  # mask 0: untouched
    assert not torch.allclose(out["samples"][..., 1], plain["samples"][..., 1])  # mask 0.5: regenerated later
