"""SkipLayerGuidanceDiT (the extra skipped-block pass, on a toy DiT whose blocks scale the image
tokens) and EasyCache (fewer model calls, a bounded difference, a fresh cache per run)."""

from __future__ import annotations

import pytest
import torch

from nodeloom.diffusion.flow import FlowSampling
from nodeloom.diffusion.models import DiffusionModel
from nodeloom.diffusion.sampling import prepare_noise, sample_sigmas
from nodeloom.diffusion.schedules import calculate_sigmas
from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion.model_tweaks import EasyCache
from nodeloom.nodes.diffusion.skip_layer import SkipLayerGuidanceDiT, SkipLayerGuidanceDiTSimple

POS, NEG = [[torch.full((1, 2, 4), 1.0), {}]], [[torch.full((1, 2, 4), -0.5), {}]]
SEED = 3
DOUBLE, SINGLE = [1.0, 0.5, 2.0], [0.8, 1.5]


class _Block(torch.nn.Module):
    """A two-stream block that scales the image tokens by ``gain`` (the text passes through)."""

    def __init__(self, gain: float) -> None:
        super().__init__()
        self.gain = gain

    def forward(self, hidden_states, encoder_hidden_states):
        return encoder_hidden_states, hidden_states * self.gain


class _ToyDiT(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.transformer_blocks = torch.nn.ModuleList(_Block(g) for g in DOUBLE)
        self.single_transformer_blocks = torch.nn.ModuleList(_Block(g) for g in SINGLE)
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # the sampler reads the device off a parameter

    def forward(self, hidden_states, encoder_hidden_states):
        h, e = hidden_states, encoder_hidden_states
        for block in list(self.transformer_blocks) + list(self.single_transformer_blocks):
            e, h = block(h, e)
        return h


def toy_dit() -> DiffusionModel:
    """A flow MODEL whose denoised estimate is ``(1 − σ)·c·G·x``, G the product of the gains of the blocks that ran."""

    def adapter(module, x, sigma, group):
        ctx = group.context[:, :1, :1, None]
        return (x - (1 - sigma) * ctx * module(x, group.context)) / sigma

    return DiffusionModel(_ToyDiT(), "test_dit", FlowSampling(shift=1.0, multiplier=1.0), 1.0, adapter=adapter)


def _one_step(model, cfg=2.0, sigma=0.6):
    out, _ = sample_sigmas(model, {"samples": torch.zeros(1, 4, 8, 8)}, torch.tensor([sigma, 0.0]), seed=SEED,
                           cfg=cfg, sampler_name="euler", positive=POS, negative=NEG)
    return out["samples"]


def test_skip_layer_guidance_dit_adds_the_skipped_pass_difference():
    model = toy_dit()
    x = 0.6 * prepare_noise(torch.zeros(1, 4, 8, 8), SEED)
    g = 1.0 * 0.5 * 2.0 * 0.8 * 1.5
    g_skip = g / 0.5 / 0.8  # double block 1 and single block 0 skipped
    cond, uncond, skipped = 0.4 * g * x, 0.4 * -0.5 * g * x, 0.4 * g_skip * x
    guided = uncond + 2.0 * (cond - uncond)
    (patched,) = SkipLayerGuidanceDiT.execute(model, 3.0, 0.0, 1.0, "1", "0", 0.0)
    assert model.post_cfg == () and len(patched.post_cfg) == 1
    expected = guided + (cond - skipped) * 3.0
    assert torch.allclose(_one_step(patched), expected, atol=1e-5)
    (rescaled,) = SkipLayerGuidanceDiT.execute(model, 3.0, 0.0, 1.0, "1", "0", 0.7)
    factor = 0.7 * float(cond.std() / expected.std()) + 0.3
    assert torch.allclose(_one_step(rescaled), expected * factor, atol=1e-5)
    # outside [start, end] (σ 0.6 lies before the 50 % point) the plain guided estimate
    (later,) = SkipLayerGuidanceDiT.execute(model, 3.0, 0.5, 1.0, "1", "0", 0.0)
    assert torch.allclose(_one_step(later), guided, atol=1e-5)
    assert torch.allclose(_one_step(model), guided, atol=1e-5)


def test_skip_layer_guidance_dit_simple_skips_blocks_of_the_negative_pass_on_any_dit():
    model = toy_dit()
    x = 0.6 * prepare_noise(torch.zeros(1, 4, 8, 8), SEED)
    g = 1.0 * 0.5 * 2.0 * 0.8 * 1.5
    cond, uncond = 0.4 * g * x, 0.4 * -0.5 * (g / 2.0 / 1.5) * x  # double block 2 and single block 1 skipped
    (patched,) = SkipLayerGuidanceDiTSimple.execute(model, 0.0, 1.0, "2", "1")
    assert torch.allclose(_one_step(patched), uncond + 2.0 * (cond - uncond), atol=1e-5)
    (later,) = SkipLayerGuidanceDiTSimple.execute(model, 0.5, 1.0, "2", "1")  # σ 0.6 is before the range
    assert torch.allclose(_one_step(later), _one_step(model), atol=1e-6)
    with pytest.raises(ValidationError, match="double_layers"):
        SkipLayerGuidanceDiTSimple.execute(model, 0.0, 1.0, "7, 8, 9", "")


def test_skip_layer_guidance_dit_refuses_what_it_cannot_patch():
    model = toy_dit()
    assert SkipLayerGuidanceDiT.execute(model, 3.0, 0.01, 0.15, "", "")[0] is model
    with pytest.raises(ValidationError, match="double_layers"):
        SkipLayerGuidanceDiT.execute(model, 3.0, 0.01, 0.15, "3", "")
    with pytest.raises(ValidationError, match="single_layers"):
        SkipLayerGuidanceDiT.execute(model, 3.0, 0.01, 0.15, "", "2")
    unet = DiffusionModel(torch.nn.Linear(1, 1), "sd15", model.sampling, 0.18215)
    with pytest.raises(ValidationError, match="UNet"):
        SkipLayerGuidanceDiT.execute(unet, 3.0, 0.01, 0.15, "7, 8, 9", "7, 8, 9")


# ---------------------------------------------------------------- EasyCache

def _counting_model():
    """A flow MODEL (denoised ``(1 − σ)·0.8·c·tanh(x)``, smooth in x) that counts its calls."""
    calls = []

    def adapter(module, x, sigma, group):
        calls.append(float(sigma))
        ctx = group.context[:, :1, :1, None]
        return (x - (1 - sigma) * 0.8 * ctx * torch.tanh(x)) / sigma

    model = DiffusionModel(torch.nn.Linear(1, 1), "test_flow", FlowSampling(shift=3.0, multiplier=1000.0), 1.0,
                           adapter=adapter)
    return model, calls


def _run(model, steps=20):
    sigmas = calculate_sigmas(model.sampling, "simple", steps)
    out, _ = sample_sigmas(model, {"samples": torch.zeros(1, 4, 16, 16)}, sigmas, seed=SEED, cfg=4.0,
                           sampler_name="euler", positive=POS, negative=NEG)
    return out["samples"]


def test_easycache_skips_model_calls_and_stays_close():
    model, calls = _counting_model()
    plain = _run(model)
    full = len(calls)
    assert full == 20  # the negative and the positive prompt share one call a step
    calls.clear()
    (cached,) = EasyCache.execute(model, 0.05, 0.15, 0.95, False)
    out = _run(cached)
    used = len(calls)
    cache = cached.adapter
    assert used < full and cache.state.skipped_steps > 0
    assert used == full - cache.state.skipped_steps
    assert cache.state.steps == 20
    relative = float((out - plain).norm() / plain.norm())
    assert cache.state.skipped_steps >= 4 and 0 < relative < 0.03  # 6 of 20 steps, 1.6 % here
    # a second run with the same MODEL starts a fresh cache and repeats the first
    calls.clear()
    again = _run(cached)
    assert len(calls) == used and torch.allclose(again, out, atol=1e-6)
    assert cache.last_run is not None and cache.last_run.skipped_steps == cache.state.skipped_steps
    # the template's threshold (0.2) skips more
    (looser,) = EasyCache.execute(model, 0.2, 0.15, 0.95, False)
    _run(looser)
    assert looser.adapter.state.skipped_steps > cache.state.skipped_steps


def test_easycache_starts_fresh_for_each_run_even_when_sigma_continues():
    model, _ = _counting_model()
    (cached,) = EasyCache.execute(model, 0.05, 0.15, 0.95, False)
    sigmas = calculate_sigmas(model.sampling, "simple", 20)
    latent = {"samples": torch.zeros(1, 4, 16, 16)}
    first, _ = sample_sigmas(cached, latent, sigmas[:11], seed=SEED, cfg=4.0, sampler_name="euler", positive=POS,
                             negative=NEG)
    sample_sigmas(cached, first, sigmas[10:], seed=SEED, cfg=4.0, sampler_name="euler", positive=POS, negative=NEG,
                  add_noise=False)
    assert cached.adapter.last_run.steps == 10 and cached.adapter.state.steps == 10


def test_easycache_reads_its_range_off_the_schedule_of_the_run_as_the_hunyuan_template_places_it():
    from nodeloom.nodes.diffusion.model_sampling import ModelSamplingSD3

    model, _ = _counting_model()
    (cached,) = EasyCache.execute(model, 0.2, 0.15, 0.95, False)  # UNETLoader → EasyCache → ModelSamplingSD3 (7)
    (shifted,) = ModelSamplingSD3.execute(cached, 7.0)
    assert shifted.adapter is cached.adapter
    _run(shifted)
    assert cached.adapter.sigma_start == pytest.approx(shifted.sampling.percent_to_sigma(0.15))
    assert cached.adapter.sigma_end == pytest.approx(shifted.sampling.percent_to_sigma(0.95))
    assert cached.adapter.sigma_start != pytest.approx(model.sampling.percent_to_sigma(0.15))


def test_easycache_threshold_zero_and_its_range_change_nothing():
    model, calls = _counting_model()
    plain = _run(model)
    full = len(calls)
    calls.clear()
    (never,) = EasyCache.execute(model, 0.0, 0.15, 0.95, False)
    assert torch.allclose(_run(never), plain, atol=1e-6) and len(calls) == full
    calls.clear()
    (empty,) = EasyCache.execute(model, 3.0, 0.95, 0.95, False)  # no σ lies in an empty range
    assert torch.allclose(_run(empty), plain, atol=1e-6) and len(calls) == full


def test_easycache_refuses_unet_models_and_reversed_ranges():
    model, _ = _counting_model()
    with pytest.raises(ValidationError, match="start_percent"):
        EasyCache.execute(model, 0.2, 0.9, 0.1, False)
    unet = DiffusionModel(torch.nn.Linear(1, 1), "sd15", model.sampling, 0.18215)
    with pytest.raises(ValidationError, match="UNet"):
        EasyCache.execute(unet, 0.2, 0.15, 0.95, False)
