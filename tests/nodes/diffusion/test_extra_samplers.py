"""SamplerER_SDE, SamplerSASolver, SamplerSEEDS2 and SamplerEulerCFGpp: at ComfyUI's defaults each
gives the KSampler's result for the sampler it configures; their options reach the algorithm."""

import pytest
import torch

from nodeloom.nodes.diffusion.conditioning import CLIPTextEncode
from nodeloom.nodes.diffusion.custom_sampling import BasicScheduler, SamplerCustom
from nodeloom.nodes.diffusion.extra_samplers import SamplerER_SDE, SamplerEulerCFGpp, SamplerSASolver, SamplerSEEDS2
from nodeloom.nodes.diffusion.latent import EmptyLatentImage
from nodeloom.nodes.diffusion.loaders import CheckpointLoaderSimple
from nodeloom.nodes.diffusion.sampling import KSampler

SEED, STEPS, CFG = 11, 4, 6.0


@pytest.fixture
def chain(diffusion_services):
    model, clip, _ = CheckpointLoaderSimple.execute("tiny_sd1.safetensors")
    pos = CLIPTextEncode.execute("a lighthouse at dusk", clip)[0]
    neg = CLIPTextEncode.execute("blurry", clip)[0]
    return model, pos, neg, EmptyLatentImage.execute(64, 64, 1)[0]


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
    ]
    for (sampler,), name in cases:
        assert torch.allclose(_custom(chain, sampler), _ksampler(chain, name), atol=1e-5), name


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
