"""The custom sampling nodes against the KSampler and ComfyUI's rules for sigmas, noise and guiders."""

import json
import math

import pytest
import torch

from nodeloom.diffusion.schedules import calculate_sigmas
from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion.conditioning import CLIPTextEncode
from nodeloom.nodes.diffusion.custom_sampling import (
    AddNoise,
    BasicGuider,
    BasicScheduler,
    BetaSamplingScheduler,
    CFGGuider,
    DisableNoise,
    ExponentialScheduler,
    ExtendIntermediateSigmas,
    FlipSigmas,
    KarrasScheduler,
    KSamplerSelect,
    LaplaceScheduler,
    PolyexponentialScheduler,
    RandomNoise,
    SamplerCustom,
    SamplerCustomAdvanced,
    SamplerDPMPP_2M_SDE,
    SamplerDPMPP_2S_Ancestral,
    SamplerDPMPP_3M_SDE,
    SamplerDPMPP_SDE,
    SamplerEulerAncestral,
    SamplerEulerAncestralCFGPP,
    SamplerLMS,
    SamplingPercentToSigma,
    SDTurboScheduler,
    SetFirstSigma,
    SplitSigmas,
    SplitSigmasDenoise,
    VPScheduler,
)
from nodeloom.nodes.diffusion.latent import EmptyLatentImage
from nodeloom.nodes.diffusion.loaders import CheckpointLoaderSimple
from nodeloom.nodes.diffusion.template_sampling import ManualSigmas
from nodeloom.nodes.diffusion.sampling import KSampler

SEED, STEPS, CFG = 11, 5, 6.0


@pytest.mark.parametrize("sampler_name", ["euler", "dpmpp_2m", "euler_ancestral", "dpmpp_2m_sde"])
def test_sampler_custom_equals_the_ksampler(chain, sampler_name):
    model, pos, neg, latent = chain
    ref = KSampler.execute(model, SEED, STEPS, CFG, sampler_name, "karras", pos, neg, latent, 1.0)[0]["samples"]
    sampler = KSamplerSelect.execute(sampler_name)[0]
    sigmas = BasicScheduler.execute(model, "karras", STEPS, 1.0)[0]
    out, denoised = SamplerCustom.execute(model, True, SEED, CFG, pos, neg, sampler, sigmas, latent)
    assert torch.equal(out["samples"], ref)
    advanced = SamplerCustomAdvanced.execute(RandomNoise.execute(SEED)[0], CFGGuider.execute(model, pos, neg, CFG)[0],
                                             sampler, sigmas, latent)[0]
    assert torch.equal(advanced["samples"], ref)
    if sampler_name == "euler":  # Euler's last step to σ = 0 lands on the denoised estimate itself
        assert torch.allclose(denoised["samples"], out["samples"], atol=1e-5)


def test_a_split_schedule_run_in_two_parts_equals_one_run(chain):
    model, pos, neg, latent = chain
    sampler = KSamplerSelect.execute("euler")[0]
    guider = CFGGuider.execute(model, pos, neg, CFG)[0]
    sigmas = BasicScheduler.execute(model, "normal", 8, 1.0)[0]
    whole = SamplerCustomAdvanced.execute(RandomNoise.execute(SEED)[0], guider, sampler, sigmas, latent)[0]
    high, low = SplitSigmas.execute(sigmas, 3)
    assert torch.equal(high[-1], low[0]) and len(high) + len(low) == len(sigmas) + 1
    first, first_denoised = SamplerCustomAdvanced.execute(RandomNoise.execute(SEED)[0], guider, sampler, high, latent)
    assert (first_denoised["samples"] - first["samples"]).abs().max() > 1e-3  # still noisy at σ = high[-1]
    second = SamplerCustomAdvanced.execute(DisableNoise.execute()[0], guider, sampler, low, first)[0]
    assert torch.allclose(second["samples"], whole["samples"], atol=1e-4)


def test_basic_scheduler_denoise_keeps_the_tail_and_zero_does_nothing(chain):
    model, pos, neg, latent = chain
    half = BasicScheduler.execute(model, "normal", 4, 0.5)[0]
    assert torch.allclose(half, calculate_sigmas(model.sampling, "normal", 8)[-5:])
    empty = BasicScheduler.execute(model, "normal", 4, 0.0)[0]
    assert len(empty) == 0
    out, denoised = SamplerCustom.execute(model, True, SEED, CFG, pos, neg, KSamplerSelect.execute("euler")[0], empty, latent)
    assert out["samples"] is latent["samples"] and denoised is out


def test_basic_guider_samples_the_positive_prompt_alone(chain):
    model, pos, neg, latent = chain
    sampler, sigmas = KSamplerSelect.execute("euler")[0], BasicScheduler.execute(model, "normal", STEPS, 1.0)[0]
    basic = SamplerCustomAdvanced.execute(RandomNoise.execute(SEED)[0], BasicGuider.execute(model, pos)[0], sampler,
                                          sigmas, latent)[0]["samples"]
    cfg_1 = KSampler.execute(model, SEED, STEPS, 1.0, "euler", "normal", pos, neg, latent, 1.0)[0]["samples"]
    assert torch.equal(basic, cfg_1)  # at cfg 1 the KSampler skips the negative prompt too


def test_sigma_nodes_follow_comfyui():
    karras = KarrasScheduler.execute(10, 14.614642, 0.0291675, 7.0)[0]
    assert len(karras) == 11 and karras[0] == pytest.approx(14.614642) and karras[-2] == pytest.approx(0.0291675)
    assert karras[-1] == 0
    expo = ExponentialScheduler.execute(4, 10.0, 0.1)[0]
    assert torch.allclose(expo[:-1].log().diff(), torch.full((3,), (torch.tensor(0.1).log() - torch.tensor(10.0).log()) / 3))
    flipped = FlipSigmas.execute(torch.tensor([3.0, 1.0, 0.0]))[0]
    assert flipped.tolist() == pytest.approx([0.0001, 1.0, 3.0])
    high, low = SplitSigmasDenoise.execute(torch.tensor([4.0, 3.0, 2.0, 1.0, 0.0]), 0.5)
    assert high.tolist() == [4.0, 3.0, 2.0] and low.tolist() == [2.0, 1.0, 0.0]  # both hold the junction
    high, low = SplitSigmasDenoise.execute(torch.tensor([4.0, 3.0, 0.0]), 0.0)
    assert high.tolist() == [] and low.tolist() == [0.0]
    with pytest.raises(ValidationError, match="sigma_min"):
        KarrasScheduler.execute(10, 14.6, 0.0, 7.0)


def test_custom_sampling_workflow_runs_through_the_engine(tmp_path, tiny_models_dir):
    """ComfyUI's custom-sampling layout as API JSON: noise, guider, sampler and sigmas as separate nodes."""
    from nodeloom import Engine

    prompt = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sd1.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "10": {"class_type": "RandomNoise", "inputs": {"noise_seed": 3}},
        "11": {"class_type": "CFGGuider", "inputs": {"model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "cfg": 5.0}},
        "12": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "res_multistep"}},
        "13": {"class_type": "BasicScheduler", "inputs": {"model": ["4", 0], "scheduler": "simple", "steps": 4, "denoise": 1.0}},
        "14": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["10", 0], "guider": ["11", 0], "sampler": ["12", 0],
                                                                "sigmas": ["13", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["14", 1], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "custom"}},
    }
    with Engine(base_dir=tmp_path, models_dir=tiny_models_dir, load_custom_nodes=False) as engine:
        result = engine.run(prompt)
        assert result.status == "success", result.errors
        assert result.value("8").shape == (1, 64, 64, 3)
        prompt["12"]["inputs"]["sampler_name"] = "not_a_sampler"
        with pytest.raises(ValidationError) as info:
            engine.run(prompt)
    assert "not_a_sampler" in json.dumps(info.value.node_errors) and "12" in info.value.node_errors


def test_more_schedulers_follow_their_formulas(chain):
    model = chain[0]
    assert torch.allclose(PolyexponentialScheduler.execute(8, 14.6, 0.03, 1.0)[0], ExponentialScheduler.execute(8, 14.6, 0.03)[0])
    laplace = LaplaceScheduler.execute(9, 14.6, 0.03, 0.0, 0.5)[0]
    assert len(laplace) == 9 and laplace[-1] > 0  # no 0 appended, as in ComfyUI
    assert laplace[4] == pytest.approx(1.0, rel=1e-3) and laplace.min() >= 0.03 and laplace.max() <= 14.6  # centred on e^mu
    vp = VPScheduler.execute(5, 19.9, 0.1, 0.001)[0]
    assert vp[0] == pytest.approx(math.sqrt(math.expm1(19.9 / 2 + 0.1)), rel=1e-5) and vp[-1] == 0 and len(vp) == 6
    turbo = SDTurboScheduler.execute(model, 2, 0.5)[0]
    assert torch.allclose(turbo, torch.cat([model.sampling.sigma(torch.tensor([499.0, 399.0])), torch.zeros(1)]))
    assert torch.allclose(BetaSamplingScheduler.execute(model, 12, 0.6, 0.6)[0], BasicScheduler.execute(model, "beta", 12, 1.0)[0])


def test_add_noise_then_sampling_without_noise_equals_sampling_with_it(chain):
    """Below the maximum sigma, noising by hand and sampling noise-free is what SamplerCustom does itself."""
    model, pos, neg, _ = chain
    latent = {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))}
    sampler, guider = KSamplerSelect.execute("euler")[0], CFGGuider.execute(model, pos, neg, CFG)[0]
    sigmas = BasicScheduler.execute(model, "normal", 4, 0.6)[0]
    direct = SamplerCustomAdvanced.execute(RandomNoise.execute(SEED)[0], guider, sampler, sigmas, latent)[0]
    noised = AddNoise.execute(model, RandomNoise.execute(SEED)[0], sigmas, latent)[0]
    by_hand = SamplerCustomAdvanced.execute(DisableNoise.execute()[0], guider, sampler, sigmas, noised)[0]
    assert torch.allclose(by_hand["samples"], direct["samples"], atol=1e-4)
    empty = {"samples": torch.zeros(1, 4, 8, 8)}  # an empty latent is not scaled first
    noise = RandomNoise.execute(SEED)[0].generate(empty)
    assert torch.allclose(AddNoise.execute(model, RandomNoise.execute(SEED)[0], sigmas, empty)[0]["samples"],
                          noise * sigmas[0] / model.latent_scale)


@pytest.mark.parametrize(("node", "args", "ksampler_name"), [
    (SamplerEulerAncestral, (0.0, 1.0), "euler"),  # no fresh noise: plain Euler
    (SamplerEulerAncestral, (1.0, 1.0), "euler_ancestral"),
    (SamplerDPMPP_2M_SDE, ("heun", 1.0, 1.0, "cpu"), "dpmpp_2m_sde_heun"),
    (SamplerDPMPP_2M_SDE, ("midpoint", 1.0, 1.0, "gpu"), "dpmpp_2m_sde_gpu"),
    (SamplerDPMPP_SDE, (1.0, 1.0, 0.5, "cpu"), "dpmpp_sde"),
    (SamplerDPMPP_3M_SDE, (1.0, 1.0, "cpu"), "dpmpp_3m_sde"),
    (SamplerDPMPP_2S_Ancestral, (1.0, 1.0), "dpmpp_2s_ancestral"),
    (SamplerEulerAncestralCFGPP, (1.0, 1.0), "euler_ancestral_cfg_pp"),
    (SamplerLMS, (4,), "lms"),
])
def test_sampler_option_nodes_at_their_defaults_equal_the_named_sampler(chain, node, args, ksampler_name):
    model, pos, neg, latent = chain
    ref = KSampler.execute(model, SEED, STEPS, CFG, ksampler_name, "karras", pos, neg, latent, 1.0)[0]["samples"]
    sigmas = BasicScheduler.execute(model, "karras", STEPS, 1.0)[0]
    out = SamplerCustom.execute(model, True, SEED, CFG, pos, neg, node.execute(*args)[0], sigmas, latent)[0]
    assert torch.equal(out["samples"], ref)


def test_sampler_options_change_the_result(chain):
    model, pos, neg, latent = chain
    sigmas = BasicScheduler.execute(model, "karras", STEPS, 1.0)[0]

    def run(sampler):
        return SamplerCustom.execute(model, True, SEED, CFG, pos, neg, sampler, sigmas, latent)[0]["samples"]

    base = run(SamplerEulerAncestral.execute(1.0, 1.0)[0])
    assert (run(SamplerEulerAncestral.execute(1.0, 0.5)[0]) - base).abs().max() > 1e-4  # s_noise
    assert (run(SamplerEulerAncestral.execute(0.5, 1.0)[0]) - base).abs().max() > 1e-4  # eta
    assert (run(SamplerLMS.execute(1)[0]) - run(SamplerLMS.execute(4)[0])).abs().max() > 1e-4  # order


def test_sigma_utilities(chain):
    model = chain[0]
    sigmas = torch.tensor([10.0, 6.0, 2.0, 0.0])
    assert SetFirstSigma.execute(sigmas, 136.0)[0].tolist() == [136.0, 6.0, 2.0, 0.0] and sigmas[0] == 10.0
    linear = ExtendIntermediateSigmas.execute(sigmas, 2, -1.0, 5.0, "linear")[0]
    assert linear.tolist() == pytest.approx([10.0, 8.0, 6.0, 4.0, 2.0, 0.0])  # steps from 10 and 6 split in two
    upper = ExtendIntermediateSigmas.execute(sigmas, 4, 7.0, 0.0, "linear")[0]
    assert upper.tolist() == pytest.approx([10.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.5, 0.0])  # only steps at or below 7
    cosine = ExtendIntermediateSigmas.execute(sigmas, 2, -1.0, 5.0, "cosine")[0]
    assert cosine[1] == pytest.approx(10.0 - 4.0 * math.sin(math.pi / 4))
    assert SamplingPercentToSigma.execute(model, 0.5, False)[0] == pytest.approx(model.sampling.percent_to_sigma(0.5))
    assert SamplingPercentToSigma.execute(model, 0.0, False)[0] > 1e8  # "no upper bound" for interval checks
    assert SamplingPercentToSigma.execute(model, 0.0, True)[0] == pytest.approx(model.sampling.sigma_max)
    assert SamplingPercentToSigma.execute(model, 1.0, True)[0] == pytest.approx(model.sampling.sigma_min)


def test_manual_sigmas_reads_every_number_and_drives_the_sampler(chain):
    assert ManualSigmas.execute("1, 0.5")[0].tolist() == [1.0, 0.5]
    assert ManualSigmas.execute("14.6 7 .5e1 -0.0\n1e-2,0")[0].tolist() == pytest.approx([14.6, 7.0, 5.0, 0.0, 0.01, 0.0])
    with pytest.raises(ValidationError, match="sigmas"):
        ManualSigmas.execute("none, here")
    model, pos, neg, latent = chain
    sigmas = BasicScheduler.execute(model, "karras", STEPS, 1.0)[0]
    typed = ManualSigmas.execute(", ".join(repr(float(s)) for s in sigmas))[0]
    assert torch.equal(typed, sigmas.float())
    out = SamplerCustom.execute(model, True, SEED, CFG, pos, neg, KSamplerSelect.execute("euler")[0], typed, latent)[0]
    ref = SamplerCustom.execute(model, True, SEED, CFG, pos, neg, KSamplerSelect.execute("euler")[0], sigmas, latent)[0]
    assert torch.allclose(out["samples"], ref["samples"], atol=1e-5)
