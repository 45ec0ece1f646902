"""ConditioningSetTimestepRange: a conditioning acts only between two points of the run."""

import pytest
import torch

import nodeloom.diffusion.sampling as sampling
from nodeloom.nodes.diffusion.conditioning import ConditioningSetTimestepRange, CLIPTextEncode
from nodeloom.nodes.diffusion.latent import EmptyLatentImage
from nodeloom.nodes.diffusion.loaders import CheckpointLoaderSimple
from nodeloom.nodes.diffusion.sampling import KSampler


@pytest.fixture
def prompts(diffusion_services):
    model, clip, _ = CheckpointLoaderSimple.execute("tiny_sd1.safetensors")
    encode = lambda text: CLIPTextEncode.execute(text, clip)[0]  # noqa: E731
    return model, encode("a red house"), encode("a blue boat"), encode("blurry"), EmptyLatentImage.execute(64, 64, 1)[0]


def _run(model, pos, neg, latent, steps=6):
    return KSampler.execute(model, 3, steps, 5.0, "euler", "normal", pos, neg, latent, 1.0)[0]["samples"]


def test_full_range_changes_nothing_and_a_split_switches_prompts(prompts, monkeypatch):
    model, house, boat, neg, latent = prompts
    plain = _run(model, house, neg, latent)
    assert torch.equal(_run(model, ConditioningSetTimestepRange.execute(house, 0.0, 1.0)[0], neg, latent), plain)

    seen = []  # (sigma, contexts acting) per UNet call
    real_predict = sampling._predict

    def spy(model, unet, group, x, sigma, t, concat):
        seen.append((float(sigma), [round(float(e.context[0].abs().sum()), 2) for e in group.entries]))
        return real_predict(model, unet, group, x, sigma, t, concat)

    monkeypatch.setattr(sampling, "_predict", spy)
    switch = ConditioningSetTimestepRange.execute(house, 0.0, 0.5)[0] + ConditioningSetTimestepRange.execute(boat, 0.5, 1.0)[0]
    switched = _run(model, switch, neg, latent)
    middle = model.sampling.percent_to_sigma(0.5)
    key = {name: round(float(c[0][0][0].abs().sum()), 2) for name, c in (("house", house), ("boat", boat), ("neg", neg))}
    assert len(set(key.values())) == 3
    for sigma, contexts in seen:
        expected = key["house"] if sigma > middle else key["boat"]
        assert expected in contexts and (key["boat"] if sigma > middle else key["house"]) not in contexts
        assert key["neg"] in contexts
    assert {s > middle for s, _ in seen} == {True, False}  # both halves ran
    assert (switched - plain).abs().max() > 1e-3


def test_a_side_with_nothing_acting_predicts_zeros(prompts):
    model, house, _, neg, latent = prompts
    early_only = ConditioningSetTimestepRange.execute(house, 0.0, 0.3)[0]
    sigmas = sampling.sampler_sigmas(model, "normal", "euler", 6)
    fn = sampling._guided(model, model.unet, sampling._entries(early_only, 1, (64, 64)), sampling._entries(neg, 1, (64, 64)),
                          1.0, None, 1)
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        late = fn(x, sigmas[-2])  # past 30 %: the positive side has no entry acting
        early = fn(x, sigmas[0])
    assert torch.equal(late, torch.zeros_like(x)) and early.abs().max() > 0
