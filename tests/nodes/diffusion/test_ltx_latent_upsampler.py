"""LatentUpscaleModelLoader + LTXVLatentUpsampler on tiny random weights: both released layouts
(LTX-Video 0.9.x pixel shuffle, LTX-2 rational resampler) read from ``latent_upscale_models``, parity
with LTXLatentUpsamplePipeline within 1e-4, the LTX-Video template upscaled and decoded at twice
its size through the Engine, and the nodes' errors."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nodeloom.diffusion.latent_upsampler import load_latent_upsampler, upsample, upsampler_config
from nodeloom.diffusion.single_file import read_header
from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion.ltx_upsampler import LTXVLatentUpsampler
from nodeloom.testing.tiny_ltx import LTXV_T2V_WORKFLOW, build_tiny_ltxv
from nodeloom.testing.tiny_ltx2 import build_tiny_upsamplers
from tests.nodes.diffusion.family_helpers import engine_for, run_ok


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return root, build_tiny_ltxv(root), build_tiny_upsamplers(root)


def _loaded(root: Path, name: str) -> torch.nn.Module:
    path = root / "latent_upscale_models" / name
    return load_latent_upsampler(load_file(str(path)), read_header(path).metadata)


def test_both_layouts_load_with_their_config(models: tuple[Path, dict, dict]) -> None:
    root, _, ups = models
    for key, rational in (("ltxv", False), ("ltx2", True)):
        module, name = ups[key]
        loaded = _loaded(root, name)
        assert loaded.config.use_rational_resampler is rational and loaded.config.mid_channels == 32
        assert loaded.config.num_blocks_per_stage == 1 and loaded.config.dims == 3
        x = torch.randn(1, 128, 2, 2, 3)
        assert (loaded(x) - module(x)).abs().max().item() == 0.0


def test_parity_with_the_latent_upsample_pipeline(models: tuple[Path, dict, dict]) -> None:
    from diffusers import LTXLatentUpsamplePipeline
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

    root, built, ups = models
    module, name = ups["ltxv"]
    reference = LTXLatentUpsamplerModel(in_channels=128, mid_channels=32, num_blocks_per_stage=1).eval()
    reference.load_state_dict(module.state_dict())
    pipe = LTXLatentUpsamplePipeline(vae=built["vae"], latent_upsampler=reference)
    latent = torch.randn(1, 128, 2, 2, 2, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref = pipe(latents=latent, output_type="latent").frames
    ours = upsample(_loaded(root, name), latent, built["vae"].latents_mean, built["vae"].latents_std)
    assert ours.shape == (1, 128, 2, 4, 4) == ref.shape
    assert (ours - ref).abs().max().item() <= 1e-4


@pytest.mark.parametrize("which", ["ltxv", "ltx2"])
def test_template_upscaled_through_the_engine(models: tuple[Path, dict, dict], tmp_path: Path, which: str) -> None:
    root, built, ups = models
    prompt = copy.deepcopy(LTXV_T2V_WORKFLOW)
    prompt["90"] = {"class_type": "LatentUpscaleModelLoader", "inputs": {"model_name": ups[which][1]}}
    prompt["91"] = {"class_type": "LTXVLatentUpsampler",
                    "inputs": {"samples": ["72", 0], "upscale_model": ["90", 0], "vae": ["44", 2]}}
    prompt["8"]["inputs"]["samples"] = ["91", 0]
    with engine_for(tmp_path, root) as engine:
        result = run_ok(engine, prompt)
    assert tuple(result.value("72")["samples"].shape) == (1, 128, 2, 2, 2)
    assert tuple(result.value("91")["samples"].shape) == (1, 128, 2, 4, 4)
    frames = result.value("8")
    assert tuple(frames.shape) == (9, 128, 128, 3) and frames.std() > 0.01  # 64² template decoded at 128²


def test_bad_inputs_say_what_was_expected(models: tuple[Path, dict, dict]) -> None:
    root, built, ups = models
    module = _loaded(root, ups["ltxv"][1])
    with pytest.raises(ValidationError, match=r"video latent \[B,128,F,H,W\]"):
        upsample(module, torch.zeros(1, 4, 8, 8), torch.zeros(128), torch.ones(128))
    with pytest.raises(ValidationError, match="LTX-Video VAE"):
        LTXVLatentUpsampler.execute({"samples": torch.zeros(1, 128, 1, 2, 2)}, module, object())
    with pytest.raises(ValidationError, match="not a Lightricks latent upsampler"):
        upsampler_config({"conv.weight": (4, 4, 3, 3)})
