"""``comfy.latent_formats`` as packs read it: ComfyUI's SD3/Flux/Wan21/Wan22/QwenImage classes with
their published values, and :func:`for_model` on models with per-channel latent statistics."""

from __future__ import annotations

import pytest
import torch

from nodeloom.compat.comfy import latent_formats as lf
from nodeloom.diffusion.flow import FlowSampling
from nodeloom.diffusion.models import DiffusionModel


def _model(family: str, scale, shift) -> DiffusionModel:
    return DiffusionModel(torch.nn.Identity(), family, FlowSampling(), scale, latent_shift=shift)


def test_published_values():
    assert (lf.SD3.scale_factor, lf.SD3.shift_factor, lf.SD3.latent_channels) == (1.5305, 0.0609, 16)
    assert (lf.Flux.scale_factor, lf.Flux.shift_factor, lf.Flux.latent_channels) == (0.3611, 0.1159, 16)
    wan21, wan22, qwen = lf.Wan21(), lf.Wan22(), lf.QwenImage()
    assert wan21.latents_mean.shape == wan21.latents_std.shape == (1, 16, 1, 1, 1)
    assert wan22.latents_mean.shape == wan22.latents_std.shape == (1, 48, 1, 1, 1)
    assert wan21.latent_dimensions == wan22.latent_dimensions == qwen.latent_dimensions == 3
    assert wan21.latents_mean[0, 0].item() == pytest.approx(-0.7571) and wan21.latents_std[0, -1].item() == pytest.approx(1.916)
    assert wan22.latents_mean[0, 19].item() == pytest.approx(0.5109) and wan22.latents_std[0, -1].item() == pytest.approx(0.7744)
    assert torch.equal(qwen.latents_mean, wan21.latents_mean) and torch.equal(qwen.latents_std, wan21.latents_std)


@pytest.mark.parametrize("fmt", [lf.SD3(), lf.Flux(), lf.Wan21(), lf.Wan22(), lf.QwenImage()])
def test_process_in_and_out_are_inverse(fmt):
    latent = torch.randn(1, fmt.latent_channels, 2, 4, 4) if isinstance(fmt, lf.Wan21) else torch.randn(1, 16, 4, 4)
    assert torch.allclose(fmt.process_out(fmt.process_in(latent)), latent, atol=1e-5)


def test_wan_statistics_normalise_each_channel():
    fmt = lf.Wan21()
    latent = fmt.latents_mean.expand(1, 16, 1, 2, 2) + fmt.latents_std.expand(1, 16, 1, 2, 2)
    assert torch.allclose(fmt.process_in(latent), torch.ones(1, 16, 1, 2, 2), atol=1e-6)
    image = latent[:, :, 0]  # a 4-D image latent takes the statistics on its channel axis too
    assert torch.allclose(fmt.process_in(image), torch.ones(1, 16, 2, 2), atol=1e-6)


@pytest.mark.parametrize("family,channels,cls", [("qwen_image", 16, lf.QwenImage), ("wan", 16, lf.Wan21),
                                                 ("wan", 48, lf.Wan22)])
def test_for_model_with_per_channel_statistics(family, channels, cls):
    mean = torch.linspace(-1, 1, channels).view(1, -1, 1, 1, 1)
    std = torch.linspace(0.5, 3, channels).view(1, -1, 1, 1, 1)
    model = _model(family, 1.0 / std, mean)
    fmt = lf.for_model(model)
    assert type(fmt) is cls and fmt.latent_channels == channels
    raw = torch.randn(1, channels, 1, 4, 4)
    assert torch.allclose(fmt.process_in(raw), model.to_model_space(raw), atol=1e-5)
    assert torch.allclose(fmt.process_out(fmt.process_in(raw)), raw, atol=1e-5)


@pytest.mark.parametrize("family,scale,shift,cls", [("flux", 0.3611, 0.1159, lf.Flux), ("sd3", 1.5305, 0.0609, lf.SD3),
                                                    ("z_image", 0.3611, 0.1159, lf.Flux), ("sd1", 0.18215, 0.0, lf.SD15),
                                                    ("sdxl", 0.13025, 0.0, lf.SDXL)])
def test_for_model_with_scalar_statistics(family, scale, shift, cls):
    model = _model(family, scale, shift)
    fmt = lf.for_model(model)
    assert type(fmt) is cls
    raw = torch.randn(1, 4, 8, 8)
    assert torch.allclose(fmt.process_in(raw), model.to_model_space(raw), atol=1e-6)


def test_for_model_of_a_real_qwen_image_value():
    from nodeloom.diffusion.families import FAMILIES

    family = FAMILIES["qwen_image"]
    model = _model("qwen_image", family.latent_scale, family.latent_shift)
    fmt = lf.for_model(model)
    assert isinstance(fmt, lf.QwenImage)
    assert torch.allclose(fmt.latents_mean, lf.QwenImage().latents_mean) and torch.allclose(fmt.latents_std, lf.QwenImage().latents_std)
