"""SamplerLCM, ModelNoiseScale, Ideogram4Scheduler, DualModelGuider, TemporalScoreRescaling,
VideoLinearCFGGuidance, MiniMaxH3SigmaShift and ModelAttentionBackend: each checked against a hand
computation on a toy flow model whose estimates are known in closed form."""

from __future__ import annotations

import logging
import math
from statistics import NormalDist

import pytest
import torch

from nodeloom.diffusion.flow import FlowSampling
from nodeloom.diffusion.models import DiffusionModel
from nodeloom.diffusion.sampling import prepare_noise, sample_sigmas
from nodeloom.diffusion.score_patches import tsr_factor
from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion.cfg_nodes import CFGOverride
from nodeloom.nodes.diffusion.custom_sampling import KSamplerSelect, RandomNoise, SamplerCustomAdvanced
from nodeloom.nodes.diffusion.guided_sampling import DualModelGuider, Ideogram4Scheduler, SamplerLCM
from nodeloom.nodes.diffusion.model_tweaks import (
    MiniMaxH3SigmaShift,
    ModelAttentionBackend,
    ModelNoiseScale,
    TemporalScoreRescaling,
    VideoLinearCFGGuidance,
)

POS, NEG = [[torch.full((1, 2, 4), 1.0), {}]], [[torch.full((1, 2, 4), -0.5), {}]]
SEED = 2


def toy_model(gain: float = 0.8) -> DiffusionModel:
    """A flow MODEL whose denoised estimate is ``(1 − σ)·gain·c·x`` for a prompt of value c."""

    def adapter(module, x, sigma, group):
        ctx = group.context[:, :1, :1, None]
        return (x - (1 - sigma) * gain * ctx * x) / sigma

    return DiffusionModel(torch.nn.Linear(1, 1), "test_flow", FlowSampling(shift=1.0, multiplier=1.0), 1.0,
                          adapter=adapter)


def _latent(batch: int = 1) -> dict:
    return {"samples": torch.zeros(batch, 4, 8, 8)}


def _noise(batch: int = 1) -> torch.Tensor:
    return prepare_noise(torch.zeros(batch, 4, 8, 8), SEED)


def _sample(model, sigmas, sampler="euler", options=None, negative=None, cfg=1.0, batch=1):
    out, _ = sample_sigmas(model, _latent(batch), torch.tensor(sigmas), seed=SEED, cfg=cfg, sampler_name=sampler,
                           positive=POS, negative=negative, sampler_options=options)
    return out["samples"]


# ---------------------------------------------------------------- SamplerLCM and ModelNoiseScale

def test_sampler_lcm_noise_ramp_follows_the_hand_computation():
    (choice,) = SamplerLCM.execute(1.5, 0.5, 0.0)
    assert choice.name == "lcm"
    sigmas = [0.6, 0.4, 0.2, 0.0]
    n = _noise()  # the step noise repeats the initial noise on the CPU: one generator, same seed
    gen = torch.Generator().manual_seed(SEED)
    draws = [torch.randn(1, 4, 8, 8, generator=gen) for _ in range(3)]
    assert torch.equal(draws[0], n)
    x = 0.6 * n
    for i, (s, s_next, scale) in enumerate(zip(sigmas, sigmas[1:], [1.5, 1.0, 0.5])):
        den = (1 - s) * 0.8 * x
        x = s_next * draws[i] * scale + (1 - s_next) * den if s_next > 0 else den
    got = _sample(toy_model(), sigmas, "lcm", dict(choice.options))
    assert torch.allclose(got, x, atol=1e-5)


def test_sampler_lcm_defaults_equal_plain_lcm_and_clip_bounds_the_noise():
    (plain,) = SamplerLCM.execute(1.0, 1.0, 0.0)
    sigmas = [0.6, 0.3, 0.0]
    assert torch.allclose(_sample(toy_model(), sigmas, "lcm", dict(plain.options)),
                          _sample(toy_model(), sigmas, "lcm"), atol=1e-6)
    (clipped,) = SamplerLCM.execute(1.0, 1.0, 0.5)
    n = _noise()
    fresh = n  # the first step's noise repeats the initial draw
    limit = 0.5 * float(fresh.std())
    den0 = 0.4 * 0.8 * (0.6 * n)
    x1 = 0.3 * fresh.clamp(-limit, limit) + 0.7 * den0
    got = _sample(toy_model(), sigmas, "lcm", dict(clipped.options))
    assert torch.allclose(got, 0.7 * 0.8 * x1, atol=1e-5)
    with pytest.raises(ValidationError, match="s_noise"):
        SamplerLCM.execute(-1.0, 1.0, 0.0)


def test_model_noise_scale_scales_initial_and_step_noise_like_the_hidream_template():
    model = toy_model()
    (scaled,) = ModelNoiseScale.execute(model, 7.6)
    assert not hasattr(model.sampling, "noise_scale") and scaled.sampling.noise_scale == 7.6
    n = _noise()
    # euler, one step to 0: the estimate of the scaled initial noise
    assert torch.allclose(_sample(scaled, [0.6, 0.0]), 0.4 * 0.8 * 0.6 * 7.6 * n, atol=1e-4)
    # the dev template's SamplerLCM (1, 1, 2.5): fresh noise at 7.6 too, clipped first
    (lcm,) = SamplerLCM.execute(1.0, 1.0, 2.5)
    fresh = n * 7.6
    limit = 2.5 * float(fresh.std())
    x1 = 0.3 * fresh.clamp(-limit, limit) + 0.7 * (0.4 * 0.8 * 0.6 * 7.6 * n)
    got = _sample(scaled, [0.6, 0.3, 0.0], "lcm", dict(lcm.options))
    assert torch.allclose(got, 0.7 * 0.8 * x1, atol=1e-4)
    assert torch.allclose(_sample(ModelNoiseScale.execute(model, 1.0)[0], [0.6, 0.0]), _sample(model, [0.6, 0.0]))


# ---------------------------------------------------------------- Ideogram4Scheduler

def _reference_sigmas(steps, width, height, mu, std):
    mean = mu + 0.5 * math.log(width * height / (512 * 512))
    t_min, t_max = 1 / (1 + math.exp(9.0)), 1 / (1 + math.exp(-7.5))
    out = []
    for i in range(steps, -1, -1):  # u from 1 down to 0
        u = i / steps
        if u == 0:
            t = t_max
        elif u == 1:
            t = t_min
        else:
            t = 1 - 1 / (1 + math.exp(-(mean + std * NormalDist().inv_cdf(u))))
            t = min(max(t, t_min), t_max)
        out.append(1 - t)
    out[-1] = 0.0
    return out


@pytest.mark.parametrize("args", [(20, 1024, 1024, 0.5, 1.75), (12, 1024, 1024, 0.5, 1.75), (48, 1664, 928, 0.0, 1.5)])
def test_ideogram4_scheduler_matches_the_logit_normal_formula(args):
    (sigmas,) = Ideogram4Scheduler.execute(*args)
    assert sigmas.dtype == torch.float32 and len(sigmas) == args[0] + 1
    assert torch.allclose(sigmas, torch.tensor(_reference_sigmas(*args)), atol=1e-6)
    assert sigmas[-1] == 0 and bool((sigmas[:-1] > sigmas[1:]).all())
    assert abs(float(sigmas[0]) - (1 - 1 / (1 + math.exp(9.0)))) < 1e-6


def test_ideogram4_resolution_term_is_a_shift_of_mu():
    (big,) = Ideogram4Scheduler.execute(20, 2048, 2048, 0.0, 1.75)
    (small,) = Ideogram4Scheduler.execute(20, 512, 512, 0.5 * math.log(16), 1.75)
    assert torch.allclose(big, small, atol=1e-6)
    with pytest.raises(ValidationError, match="steps"):
        Ideogram4Scheduler.execute(0, 1024, 1024, 0.0, 1.75)


# ---------------------------------------------------------------- DualModelGuider

def _advanced(guider, sigmas, batch=1):
    (noise,) = RandomNoise.execute(SEED)
    (sampler,) = KSamplerSelect.execute("euler")
    out, _ = SamplerCustomAdvanced.execute(noise, guider, sampler, torch.tensor(sigmas), _latent(batch))
    return out["samples"]


def test_dual_model_guider_combines_two_models_like_cfg():
    x = 0.6 * _noise()
    cond, uncond = 0.4 * 0.8 * 1.0 * x, 0.4 * 0.3 * -0.5 * x
    (guider,) = DualModelGuider.execute(toy_model(0.8), POS, 7.0, model_negative=toy_model(0.3), negative=NEG)
    assert torch.allclose(_advanced(guider, [0.6, 0.0]), uncond + 7.0 * (cond - uncond), atol=1e-5)
    # one model: the same as CFGGuider
    (same,) = DualModelGuider.execute(toy_model(0.8), POS, 3.0, negative=NEG)
    assert torch.allclose(_advanced(same, [0.6, 0.3, 0.0]), _sample(toy_model(0.8), [0.6, 0.3, 0.0], negative=NEG,
                                                                    cfg=3.0), atol=1e-5)
    # no negative: the positive conditioning with its text zeroed (the toy predicts 0 for it)
    (free,) = DualModelGuider.execute(toy_model(0.8), POS, 7.0, model_negative=toy_model(0.3))
    assert torch.allclose(_advanced(free, [0.6, 0.0]), 7.0 * cond, atol=1e-5)


def test_dual_model_guider_honours_the_models_cfg_patches_as_the_ideogram_template_does():
    # CFGOverride cfg 3 from 0.7 to 1.0 on the positive model (σ = 1 − percent on this toy schedule)
    (overridden,) = CFGOverride.execute(toy_model(0.8), 3.0, 0.7, 1.0)
    (guider,) = DualModelGuider.execute(overridden, POS, 7.0, model_negative=toy_model(0.3), negative=NEG)
    x = 0.2 * _noise()
    cond, uncond = 0.8 * 0.8 * x, 0.8 * 0.3 * -0.5 * x
    assert torch.allclose(_advanced(guider, [0.2, 0.0]), uncond + 3.0 * (cond - uncond), atol=1e-5)
    with pytest.raises(ValidationError, match="positive"):
        DualModelGuider.execute(toy_model(), [], 7.0)


# ---------------------------------------------------------------- TSR and VideoLinearCFGGuidance

def test_temporal_score_rescaling_matches_the_papers_ratio():
    model = toy_model()
    (patched,) = TemporalScoreRescaling.execute(model, 0.95, 1.0)
    assert "sampler_post_cfg_function" not in model.model_options
    x = 0.6 * _noise()
    den = 0.4 * 0.8 * x
    snr = (0.4 / 0.6) ** 2
    r = (snr + 1) / (snr / 0.95 + 1)
    assert abs(tsr_factor(snr, 0.95, 1.0) - r) < 1e-12 and tsr_factor(math.inf, 0.95, 1.0) == 0.95
    expected = x / 0.4 + r * (den - x / 0.4)
    assert torch.allclose(_sample(patched, [0.6, 0.0]), expected, atol=1e-5)
    (off,) = TemporalScoreRescaling.execute(model, 1.0, 1.0)
    assert torch.allclose(_sample(off, [0.6, 0.3, 0.0]), _sample(model, [0.6, 0.3, 0.0]), atol=1e-6)


def test_temporal_score_rescaling_on_an_sd_schedule_uses_alpha_one():
    from nodeloom.diffusion.score_patches import temporal_score_rescaling

    fn = temporal_score_rescaling(0.5, 2.0, flow=False)
    x, den = torch.full((1, 1, 2, 2), 3.0), torch.full((1, 1, 2, 2), 1.0)
    sigma = 2.0
    snr = 1 / sigma ** 2
    r = (snr * 4 + 1) / (snr * 4 / 0.5 + 1)
    got = fn({"denoised": den, "input": x, "sigma": torch.tensor(sigma)})
    assert torch.allclose(got, x + r * (den - x))
    assert fn({"denoised": den, "input": x, "sigma": torch.tensor(0.0)}) is den


def test_video_linear_cfg_rises_from_min_cfg_over_the_frames():
    model = toy_model()
    (patched,) = VideoLinearCFGGuidance.execute(model, 1.0)
    x = 0.6 * _noise(3)
    cond, uncond = 0.4 * 0.8 * x, 0.4 * 0.8 * -0.5 * x
    scales = torch.tensor([1.0, 2.0, 3.0]).reshape(3, 1, 1, 1)
    got = _sample(patched, [0.6, 0.0], negative=NEG, cfg=3.0, batch=3)
    assert torch.allclose(got, uncond + scales * (cond - uncond), atol=1e-5)
    assert "sampler_cfg_function" not in model.model_options


# ---------------------------------------------------------------- MiniMaxH3SigmaShift, ModelAttentionBackend

def test_minimax_h3_sigma_shift_sets_the_video_schedule_and_carries_the_audio_shift():
    model = toy_model()
    (patched,) = MiniMaxH3SigmaShift.execute(model, 12.0, 3.0)
    t = 0.5
    assert abs(patched.sampling.percent_to_sigma(1 - t) - 12 * t / (1 + 11 * t)) < 1e-6
    assert patched.extra["audio_shift"] == 3.0 and "audio_shift" not in model.extra
    assert patched.sampling.multiplier == model.sampling.multiplier
    unet = DiffusionModel(torch.nn.Linear(1, 1), "sd15", model.sampling, 0.18215)
    with pytest.raises(ValidationError, match="flow-matching"):
        MiniMaxH3SigmaShift.execute(unet, 12.0, 3.0)


def test_model_attention_backend_clones_and_falls_back_to_pytorch(caplog):
    model = toy_model()
    (plain,) = ModelAttentionBackend.execute(model, "pytorch attention")
    assert plain is not model and plain.extra["attention_backend"] == "pytorch attention"
    with caplog.at_level(logging.WARNING):
        (kitchen,) = ModelAttentionBackend.execute(model, "comfy kitchen attention")
    assert "PyTorch attention" in caplog.text
    assert kitchen.extra["attention_backend"] == "pytorch attention"
    assert kitchen.extra["attention_backend_requested"] == "comfy kitchen attention"
    assert "attention_backend" not in model.extra
    assert torch.equal(_sample(kitchen, [0.6, 0.0]), _sample(model, [0.6, 0.0]))
    with pytest.raises(ValidationError, match="attention"):
        ModelAttentionBackend.execute(model, "flash")
