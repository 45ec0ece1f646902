"""LTX-Video's later VAEs on tiny random weights: the 0.9.1 structure (timestep-conditioned decoder,
noise injection, residual upsamplers) and the 0.9.5 one (also 0.9.7's: pixel-unshuffle downsamplers
of three kinds, a fifth encoder width), beside 0.9.0's. Each loads from the release layout (bare,
as in ComfyUI's ``vae/`` folder, and under ``vae.`` in an all-in-one checkpoint) and from diffusers'
layout to the very module that was saved; decoding is ComfyUI's (2.5 % noise, time 0.05) and
repeats; the ltxv_image_to_video template's graph runs with a 0.9.5 checkpoint."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from nodeloom.diffusion.ltxv_vae import DECODE_NOISE_SCALE, DECODE_TIMESTEP, LtxvVae, load_ltxv_vae
from nodeloom.testing.tiny_ltx import LTXV_T2V_WORKFLOW, build_tiny_ltxv, tiny_ltxv_vae, vae_to_release
from tests.nodes.diffusion.family_helpers import engine_for, input_photo, run_ok

VERSIONS = ("0.9.0", "0.9.1", "0.9.5")
_STRUCTURE = ("block_out_channels", "decoder_block_out_channels", "layers_per_block", "decoder_layers_per_block",
              "spatio_temporal_scaling", "decoder_spatio_temporal_scaling", "decoder_inject_noise", "downsample_type",
              "upsample_residual", "upsample_factor", "down_block_types")


@pytest.fixture(scope="module", params=VERSIONS)
def saved(request: pytest.FixtureRequest) -> tuple[str, torch.nn.Module]:
    torch.set_num_threads(1)
    return request.param, tiny_ltxv_vae(request.param)


@pytest.mark.parametrize("layout", ["release", "checkpoint", "diffusers"])
def test_each_layout_loads_the_saved_module(saved, layout):
    version, vae = saved
    sd = {k: v.clone() for k, v in vae.state_dict().items()}
    data = {"release": lambda: vae_to_release(sd, version),
            "checkpoint": lambda: {f"vae.{k}": v for k, v in vae_to_release(sd, version).items()},
            "diffusers": lambda: sd}[layout]()
    loaded = load_ltxv_vae(data, f"tiny_ltxv_{version}_vae.safetensors")
    got = loaded.state_dict()
    assert set(got) == set(sd) and all(torch.equal(got[k], sd[k]) for k in sd)
    for key in _STRUCTURE:
        assert list(loaded.config[key]) == list(vae.config[key]), key
    assert loaded.config.timestep_conditioning == (version != "0.9.0")
    assert (loaded.spatial_compression_ratio, loaded.temporal_compression_ratio) == (32, 8)


def test_encode_and_decode_are_diffusers_with_comfyuis_decode_noise(saved):
    """Encoding: the posterior mode, normalised. Decoding a timestep-conditioned VAE: the raw latent
    mixed with 2.5 % noise, decoded at time 0.05 (LTXPipeline's ``decode_noise_scale`` and
    ``decode_timestep`` set to ComfyUI's values), the noise and the decoder's injected noise seeded
    so that a decode repeats."""
    version, vae = saved
    value = LtxvVae(vae)
    clip = torch.rand(9, 64, 64, 3)
    latent = value.encode(clip)
    mean, std = vae.latents_mean.view(1, -1, 1, 1, 1), vae.latents_std.view(1, -1, 1, 1, 1)
    with torch.no_grad():
        raw = vae.encode(clip.movedim(-1, 0)[None] * 2 - 1).latent_dist.mode()
        assert torch.allclose(latent, (raw - mean) / std, atol=1e-5)
        frames = value.decode(latent)
        assert frames.shape == (9, 64, 64, 3)
        assert torch.equal(frames, value.decode(latent))
        z = latent * std + mean
        if version == "0.9.0":
            expected = vae.decode(z).sample
        else:
            torch.manual_seed(0)
            z = (1 - DECODE_NOISE_SCALE) * z + DECODE_NOISE_SCALE * torch.randn_like(z)
            expected = vae.decode(z, temb=torch.full((1,), DECODE_TIMESTEP)).sample
    expected = (expected / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 4, 1).flatten(0, 1)
    assert (frames - expected).abs().max() < 1e-5


def test_image_to_video_template_runs_with_a_095_checkpoint(tmp_path):
    """ltxv_image_to_video (ltx-video-2b-v0.9.5's all-in-one checkpoint): LTXVImgToVideo encodes the
    image with the 0.9.5 VAE, the clip samples and decodes through the timestep-conditioned decoder."""
    from safetensors.torch import load_file, save_file

    models = tmp_path / "models"
    parts = build_tiny_ltxv(models)
    ckpt = models / "checkpoints" / parts["ckpt"]
    sd = {k: v for k, v in load_file(str(ckpt)).items() if not k.startswith("vae.")}
    vae = tiny_ltxv_vae("0.9.5", seed=3)
    sd.update({f"vae.{k}": v for k, v in vae_to_release(vae.state_dict(), "0.9.5").items()})
    save_file(sd, str(models / "checkpoints" / "tiny_ltx-video-2b-v0.9.5.safetensors"))
    input_photo(tmp_path, "ltxv_input.png", 64)
    prompt = copy.deepcopy(LTXV_T2V_WORKFLOW)
    prompt["44"]["inputs"]["ckpt_name"] = "tiny_ltx-video-2b-v0.9.5.safetensors"
    del prompt["70"]
    prompt["78i"] = {"class_type": "LoadImage", "inputs": {"image": "ltxv_input.png"}}
    prompt["77"] = {"class_type": "LTXVImgToVideo", "inputs": {
        "positive": ["6", 0], "negative": ["7", 0], "vae": ["44", 2], "image": ["78i", 0], "width": 64, "height": 64,
        "length": 9, "batch_size": 1, "strength": 0.15}}
    prompt["69"]["inputs"].update(positive=["77", 0], negative=["77", 1])
    prompt["71"]["inputs"]["latent"] = ["77", 2]
    prompt["72"]["inputs"]["latent_image"] = ["77", 2]
    with engine_for(tmp_path, models) as engine:
        result = run_ok(engine, prompt)
        latent = result.value("77", 2)
        assert latent["samples"].shape == (1, 128, 2, 2, 2)
        assert latent["noise_mask"][0, 0, :, 0, 0].tolist() == pytest.approx([0.85, 1.0])
        frames = result.value("8")
        assert frames.shape == (9, 64, 64, 3) and frames.std() > 0.01
        assert Path(engine.paths.output_dir / result.outputs["79"]["images"][0]["subfolder"]).is_dir()
