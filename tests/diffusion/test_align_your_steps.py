"""AlignYourStepsScheduler: the published levels, their log-linear stretch and the denoise rule."""

from __future__ import annotations

import pytest
import torch

from nodeloom.diffusion.align_your_steps import AYS_NOISE_LEVELS
from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion.align_your_steps import AlignYourStepsScheduler


def _sigmas(*args):
    return AlignYourStepsScheduler.execute(*args)[0]


@pytest.mark.parametrize("model_type", ["SD1", "SDXL", "SVD"])
def test_ten_steps_are_the_published_levels_ending_at_zero(model_type):
    levels = torch.tensor(AYS_NOISE_LEVELS[model_type])
    sigmas = _sigmas(model_type, 10, 1.0)
    assert sigmas.dtype == torch.float32 and len(sigmas) == 11
    assert torch.allclose(sigmas[:-1], levels[:-1]) and sigmas[-1] == 0


def test_twenty_steps_interpolate_log_linearly_between_the_levels():
    levels = torch.tensor(AYS_NOISE_LEVELS["SDXL"], dtype=torch.float64)
    sigmas = _sigmas("SDXL", 20, 1.0).double()
    assert len(sigmas) == 21
    assert torch.allclose(sigmas[:-1:2], levels[:-1], rtol=1e-6)  # every other point is a published level
    midpoints = (levels[:-1].log() + levels[1:].log()).div(2).exp()
    assert torch.allclose(sigmas[1:-1:2], midpoints, rtol=1e-6)
    assert bool((sigmas[:-1].diff() < 0).all())


def test_denoise_keeps_the_last_steps():
    full = _sigmas("SD1", 10, 1.0)
    half = _sigmas("SD1", 10, 0.5)
    assert torch.allclose(half[:-1], full[-6:-1]) and half[-1] == 0 and len(half) == 6
    assert len(_sigmas("SD1", 10, 0.0)) == 0
    with pytest.raises(ValidationError, match="`model_type`"):
        _sigmas("SD3", 10, 1.0)
