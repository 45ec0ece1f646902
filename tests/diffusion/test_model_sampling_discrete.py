"""ModelSamplingDiscrete: prediction types read through the sampler, the zero-terminal-SNR schedule
against diffusers' rescaling, and the refusals."""

from __future__ import annotations

import pytest
import torch

from nodeloom.diffusion.flow import FlowSampling
from nodeloom.diffusion.models import DiffusionModel
from nodeloom.diffusion.sampling import sample_sigmas
from nodeloom.diffusion.schedules import ModelSampling, zero_terminal_snr_sigmas
from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion.discrete_sampling import ModelSamplingDiscrete


class _HalfUNet(torch.nn.Module):
    """A stand-in UNet whose output is half its (scaled) input, whatever it is read as."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.5))

    def forward(self, x, t, encoder_hidden_states=None, return_dict=False, **kw):
        return (self.w * x,)


def _sd_model() -> DiffusionModel:
    return DiffusionModel(_HalfUNet(), "sd15", ModelSampling(), 1.0)


def _one_step(model, sigma):
    cond = [[torch.zeros(1, 2, 8), {}]]
    out, _ = sample_sigmas(model, {"samples": torch.zeros(1, 4, 4, 4)}, torch.tensor([sigma, 0.0]), seed=5, cfg=1.0,
                           sampler_name="euler", positive=cond, negative=cond)
    return out["samples"]


@pytest.mark.parametrize("name", ["eps", "v_prediction", "x0", "img_to_img"])
def test_each_prediction_type_is_read_as_comfyui_reads_it(name):
    sigma = 2.0
    x = sigma * torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(5))
    out = 0.5 * x / (sigma ** 2 + 1) ** 0.5  # the UNet's output on its scaled input
    expected = {"eps": x - out * sigma,
                "v_prediction": x / (sigma ** 2 + 1) - out * sigma / (sigma ** 2 + 1) ** 0.5,
                "x0": out,
                "img_to_img": 0.5 * x}[name]  # IMG_TO_IMG: the UNet sees the latent unscaled, gives x0
    base = _sd_model()
    (patched,) = ModelSamplingDiscrete.execute(base, name, False)
    assert base.sampling.prediction_type == "epsilon"  # the given MODEL is untouched
    assert torch.allclose(_one_step(patched, sigma), expected, atol=1e-5)


def test_zsnr_schedule_matches_diffusers_rescaling():
    from diffusers.schedulers.scheduling_ddim import rescale_zero_terminal_snr

    plain = ModelSampling()
    (patched,) = ModelSamplingDiscrete.execute(_sd_model(), "v_prediction", True)
    sigmas = patched.sampling.sigmas
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float32) ** 2
    alphas = torch.cumprod(1.0 - rescale_zero_terminal_snr(betas), dim=0)
    reference = ((1 - alphas) / alphas).sqrt()
    assert torch.allclose(sigmas[:-1], reference[:-1], rtol=1e-3)  # diffusers' last σ is infinite
    assert sigmas[0] == pytest.approx(float(plain.sigmas[0]), rel=1e-4)
    assert patched.sampling.sigma_max == pytest.approx(((1 - 4.8973451890853435e-08) / 4.8973451890853435e-08) ** 0.5)
    assert torch.equal(zero_terminal_snr_sigmas(plain.sigmas), sigmas)


def test_refusals_name_the_input():
    with pytest.raises(ValidationError, match="`sampling` 'lcm' is not supported"):
        ModelSamplingDiscrete.execute(_sd_model(), "lcm", False)
    with pytest.raises(ValidationError, match="`sampling`"):
        ModelSamplingDiscrete.execute(_sd_model(), "cosine", False)
    flow = DiffusionModel(torch.nn.Linear(1, 1), "flux", FlowSampling(shift=1.0, multiplier=1.0), 1.0,
                          adapter=lambda *a, **k: None)
    with pytest.raises(ValidationError, match="flow model"):
        ModelSamplingDiscrete.execute(flow, "eps", False)
