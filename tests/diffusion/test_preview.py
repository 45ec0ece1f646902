import torch
import torch.nn.functional as F

from nodeloom.diffusion.preview import fit_latent_rgb, latent_preview


class _LinearVae:
    """An 'encoder' that is exactly linear per latent pixel, so the fit must recover its inverse."""

    mix = torch.tensor([[0.5, -1.0, 0.2], [1.0, 0.3, -0.4], [0.1, 0.8, 0.9], [0.0, 0.0, 0.0]])

    def encode(self, images, manager=None):
        small = F.avg_pool2d(images.movedim(-1, 1), 8)
        return torch.einsum("nchw,lc->nlhw", small, self.mix) + 0.25


def test_fit_recovers_a_linear_encoder_and_previews_in_range():
    weight, bias = fit_latent_rgb(_LinearVae())
    rgb = torch.rand(1, 3, 2, 2)
    latent = torch.einsum("nchw,lc->nlhw", rgb, _LinearVae.mix) + 0.25
    got = latent_preview(latent, weight, bias)
    assert got.shape == (2, 2, 3)
    assert torch.allclose(got, rgb[0].movedim(0, -1), atol=1e-3)
