"""VOIDSampler: the α-space DDIM walk (checked step by step against the update written out),
its raw-noise start (no σ scaling, the latent and its mask left out, as ComfyUI's VOID sampler does)
through SamplerCustomAdvanced on the tiny SD model, and its declaration."""

from __future__ import annotations

import torch

from nodeloom.diffusion.samplers import void_ddim
from nodeloom.nodes.diffusion import NODE_CLASS_MAPPINGS as NODES
from nodeloom.nodes.diffusion.custom_sampling import CFGGuider, RandomNoise, SamplerCustomAdvanced


def test_walk_is_ddim_in_alpha_space():
    sigmas = torch.tensor([9.0, 2.0, 0.5, 0.0])
    seen: list[torch.Tensor] = []

    def denoise(x, sigma):
        seen.append(x.clone())
        return 0.3 * x + sigma * 0.01  # any deterministic estimate

    x0 = torch.randn(1, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    out = void_ddim(denoise, x0.clone(), sigmas, lambda *a: None, lambda *a: None)
    x = x0.clone()
    for i in range(3):
        s, n = sigmas[i], sigmas[i + 1]
        den = 0.3 * x + s * 0.01
        assert torch.allclose(seen[i], x)
        if n == 0:
            x = den
        else:
            a, b = 1 / (1 + s * s), 1 / (1 + n * n)
            x = torch.sqrt(b) * den + torch.sqrt(1 - b) * (x - torch.sqrt(a) * den) / torch.sqrt(1 - a)
    assert torch.allclose(out, x, atol=1e-6)
    assert getattr(void_ddim, "raw_start", False)


def test_samples_from_the_raw_noise_and_ignores_the_latent_and_mask(chain):
    model, pos, neg, latent = chain
    guider = CFGGuider.execute(model, pos, neg, 3.0)[0]
    (sampler,) = NODES["VOIDSampler"]().execute()
    sigmas = torch.tensor([6.0, 1.5, 0.0])

    def run(lat):
        return SamplerCustomAdvanced.execute(RandomNoise.execute(3)[0], guider, sampler, sigmas, lat)[0]["samples"]

    out = run(latent)
    assert out.shape == latent["samples"].shape and torch.isfinite(out).all()
    # the latent's content and a noise mask make no difference: the walk starts from the noise alone
    busy = {"samples": torch.randn_like(latent["samples"]), "noise_mask": torch.zeros(1, 64, 64)}
    assert torch.equal(run(busy), out)
    # a plain sampler does scale the noise by σ and keep the masked area
    plain = SamplerCustomAdvanced.execute(RandomNoise.execute(3)[0], guider,
                                          NODES["KSamplerSelect"]().execute("ddim")[0], sigmas, latent)[0]["samples"]
    assert not torch.allclose(plain, out)


def test_declaration(image_engine):
    info = image_engine.object_info()["VOIDSampler"]
    assert info["category"] == "sampling/samplers" and info["output"] == ["SAMPLER"]
    assert info["input"] == {"required": {}} or not info["input"].get("required")
