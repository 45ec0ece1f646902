"""The model-free sampling nodes of the newer templates: ManualSigmas, Flux2Scheduler (against
diffusers' Flux.2 schedule), EmptyFlux2LatentImage, DualCFGGuider (its two forms, against the
plain CFG guider where they must agree) and InstructPixToPixConditioning."""

import numpy as np
import pytest
import torch

from nodeloom.diffusion.dual_cfg import DualCfg
from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion.conditioning import CLIPTextEncode
from nodeloom.nodes.diffusion.custom_sampling import CFGGuider, KSamplerSelect, RandomNoise, SamplerCustomAdvanced
from nodeloom.nodes.diffusion.latent import EmptyLatentImage
from nodeloom.nodes.diffusion.loaders import CheckpointLoaderSimple
from nodeloom.nodes.diffusion.template_sampling import (
    DualCFGGuider,
    EmptyFlux2LatentImage,
    Flux2Scheduler,
    InstructPixToPixConditioning,
    ManualSigmas,
)


def test_manual_sigmas_reads_every_number_in_order():
    (sigmas,) = ManualSigmas.execute("1.0, 0.978453 0.5,-0.25; 1e-3 .5 0")
    assert sigmas.dtype == torch.float32
    assert sigmas.tolist() == pytest.approx([1.0, 0.978453, 0.5, -0.25, 1e-3, 0.5, 0.0])
    with pytest.raises(ValidationError, match="`sigmas` holds no numbers"):
        ManualSigmas.execute("high, low")


@pytest.mark.parametrize(("steps", "width", "height"), [(20, 1024, 1024), (4, 64, 64), (8, 1248, 832), (30, 2048, 2048)])
def test_flux2_scheduler_equals_the_diffusers_flux2_schedule(steps, width, height):
    """diffusers' Flux2Pipeline: linear sigmas 1 … 1/steps shifted at its empirical μ of the token count."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    from diffusers.pipelines.flux2.pipeline_flux2 import compute_empirical_mu

    (ours,) = Flux2Scheduler.execute(steps, width, height)
    tokens = round(width * height / 256)
    sched = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, time_shift_type="exponential")
    sched.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), mu=compute_empirical_mu(tokens, steps))
    assert ours.shape == (steps + 1,) and float(ours[-1]) == 0.0
    assert (ours - sched.sigmas.float()).abs().max() < 1e-6


def test_empty_flux2_latent_is_128_channels_at_a_sixteenth():
    (latent,) = EmptyFlux2LatentImage.execute(1248, 832, 2)
    assert latent["samples"].shape == (2, 128, 52, 78) and not latent["samples"].any()


def test_dual_cfg_forms_combine_as_comfyui_does():
    pos, mid, neg = torch.tensor([3.0]), torch.tensor([2.0]), torch.tensor([1.0])
    keep = lambda c, u, s: u + (c - u) * s  # noqa: E731 - plain CFG, no CFG functions on the model
    regular, nested = DualCfg([], 2.0), DualCfg([], 2.0, nested=True)
    assert float(regular.combine(pos, mid, neg, 5.0, keep)) == 1 + (2 - 1) * 5 + (3 - 2) * 2
    assert float(nested.combine(pos, mid, neg, 5.0, keep)) == 1 + 5 * ((2 + (3 - 2) * 2) - 1)
    assert regular.needs(1.0) == (False, True) and DualCfg([], 1.0).needs(1.0) == (False, False)
    assert regular.needs(4.0) == (True, True) and nested.needs(1.0) == (True, True)


@pytest.fixture
def chain(diffusion_services):
    model, clip, vae = CheckpointLoaderSimple.execute("tiny_sd1.safetensors")
    conds = [CLIPTextEncode.execute(t, clip)[0] for t in ("a red lighthouse at dusk", "a lighthouse", "blurry")]
    return model, vae, conds, EmptyLatentImage.execute(64, 64, 1)[0]


def _sample(guider, latent):
    sigmas = torch.linspace(1.0, 0.0, 5) * 14.6
    return SamplerCustomAdvanced.execute(RandomNoise.execute(5)[0], guider, KSamplerSelect.execute("euler")[0],
                                         sigmas, latent)[0]["samples"]


def test_dual_cfg_guider_reduces_to_cfg_where_it_must(chain):
    """regular at cfg2 = 1 is CFG from cond2 toward cond1 at cfg1 (the negative is not evaluated);
    nested at cfg1 = 1 is CFG from the negative toward cond1 at cfg2."""
    model, _, (c1, c2, neg), latent = chain
    regular = _sample(DualCFGGuider.execute(model, c1, c2, neg, 4.0, 1.0, "regular")[0], latent)
    assert (regular - _sample(CFGGuider.execute(model, c1, c2, 4.0)[0], latent)).abs().max() < 1e-5
    nested = _sample(DualCFGGuider.execute(model, c1, c2, neg, 1.0, 6.0, "nested")[0], latent)
    assert (nested - _sample(CFGGuider.execute(model, c1, neg, 6.0)[0], latent)).abs().max() < 1e-5
    both = _sample(DualCFGGuider.execute(model, c1, c2, neg, 3.0, 6.0, "regular")[0], latent)
    other = _sample(DualCFGGuider.execute(model, c1, c2, neg, 3.0, 6.0, "nested")[0], latent)
    assert (both - regular).abs().max() > 1e-3 and (both - other).abs().max() > 1e-3
    with pytest.raises(ValidationError, match="`cond2`"):
        DualCFGGuider.execute(model, c1, [], neg, 3.0, 6.0, "regular")


def test_instruct_pix2pix_conditioning_carries_the_centred_image_latent(chain):
    _, vae, (pos, _, neg), _ = chain
    gen = torch.Generator().manual_seed(0)
    pixels = torch.rand(1, 69, 75, 3, generator=gen)  # 69×75 → 64×72, offsets 2 and 1
    p, n, latent = InstructPixToPixConditioning.execute(pos, neg, vae, pixels)
    expected = vae.encode(pixels[:, 2:66, 1:73, :])
    for cond in (p, n):
        assert (cond[0][1]["concat_latent_image"] - expected).abs().max() < 1e-6
    assert p[0][0] is pos[0][0] and "concat_latent_image" not in pos[0][1]  # inputs untouched
    assert latent["samples"].shape == expected.shape == (1, 4, 8, 9) and not latent["samples"].any()
