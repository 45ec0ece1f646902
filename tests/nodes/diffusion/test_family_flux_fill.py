"""Flux.1 Fill end to end on tiny random weights: the inpaint and outpaint templates' graphs
(InpaintModelConditioning feeding the Fill model's extra channels, DifferentialDiffusion) through
the Engine and a live server, parity with diffusers' FluxFillPipeline, and CLIPTextEncodeFlux."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from nodeloom.diffusion.flow import FluxSampling
from nodeloom.diffusion.schedules import calculate_sigmas
from nodeloom.testing.tiny_families import build_tiny_flux
from tests.nodes.diffusion.family_helpers import engine_for, run_ok, run_served

PROMPT = "a castle on a hill under a stormy sky"

#: flux_fill_inpaint_example.json, tiny sizes (the mask comes from the image's alpha)
FILL_WORKFLOW = {
    "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_flux_fill.safetensors", "weight_dtype": "default"}},
    "2": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "tiny_clip_l.safetensors",
                                                     "clip_name2": "tiny_t5xxl.safetensors", "type": "flux",
                                                     "device": "default"}},
    "3": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny_ae.safetensors"}},
    "4": {"class_type": "LoadImage", "inputs": {"image": "fill_input.png"}},
    "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": PROMPT}},
    "6": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["5", 0], "guidance": 30.0}},
    "7": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["5", 0]}},
    "8": {"class_type": "InpaintModelConditioning", "inputs": {"positive": ["6", 0], "negative": ["7", 0],
                                                               "vae": ["3", 0], "pixels": ["4", 0], "mask": ["4", 1],
                                                               "noise_mask": True}},
    "9": {"class_type": "DifferentialDiffusion", "inputs": {"model": ["1", 0], "strength": 1.0}},
    "10": {"class_type": "KSampler", "inputs": {"model": ["9", 0], "seed": 3, "steps": 4, "cfg": 1.0,
                                                "sampler_name": "euler", "scheduler": "normal", "positive": ["8", 0],
                                                "negative": ["8", 1], "latent_image": ["8", 2], "denoise": 1.0}},
    "11": {"class_type": "VAEDecode", "inputs": {"samples": ["10", 0], "vae": ["3", 0]}},
    "12": {"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "flux-fill"}},
}


@pytest.fixture(scope="module")
def fill(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return root, build_tiny_flux(root, fill=True)


def _photo_and_mask() -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image as PILImage
    from skimage import data

    photo = np.asarray(PILImage.fromarray(data.astronaut()).resize((64, 64), PILImage.LANCZOS))
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[16:48, 24:56] = 255  # the part to regenerate
    return photo, mask


def _base(tmp_path: Path) -> Path:
    from PIL import Image as PILImage

    photo, mask = _photo_and_mask()
    base = tmp_path / "engine"
    (base / "input").mkdir(parents=True)
    PILImage.fromarray(np.dstack([photo, 255 - mask])).save(base / "input" / "fill_input.png")  # ComfyUI: mask = 1 − alpha
    return base


def test_inpaint_template_runs_and_keeps_the_unmasked_latent(tmp_path, fill):
    models, _ = fill
    result = run_ok_at(_base(tmp_path), models, copy.deepcopy(FILL_WORKFLOW))
    out, start = result.value("10")["samples"], result.value("8", 2)["samples"]
    assert out.shape == (1, 16, 8, 8) and result.value("11").shape == (1, 64, 64, 3)
    keep = result.value("8", 2)["noise_mask"][0, 0, ::8, ::8] == 0
    assert (out[0][:, keep] - start[0][:, keep]).abs().max() < 1e-5  # outside the mask the image's latent stays
    assert (out[0][:, ~keep] - start[0][:, ~keep]).abs().max() > 1e-2


def run_ok_at(base: Path, models: Path, prompt: dict) -> object:
    with engine_for(base, models) as engine:
        return run_ok(engine, prompt)


def test_latents_match_the_fill_pipeline(tmp_path, fill, monkeypatch):
    """InpaintModelConditioning without the noise mask (as the outpaint template wires it) and the
    Fill model equal diffusers' FluxFillPipeline given the same photo, mask, prompt states, sigmas
    and seed. Noise: a CPU float32 ``torch.randn`` of the [B,16,h,w] latent seeded with the seed on
    both sides; the pipeline's masked image is encoded by the posterior mean (ComfyUI's VAEEncode),
    not a sample."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxFillPipeline
    from diffusers.pipelines.flux import pipeline_flux_fill
    from PIL import Image as PILImage

    models, parts = fill
    prompt = copy.deepcopy(FILL_WORKFLOW)
    prompt["8"]["inputs"]["noise_mask"] = False
    result = run_ok_at(_base(tmp_path), models, prompt)
    ours = (result.value("10")["samples"] - 0.1159) * 0.3611
    cond, extra = result.value("6")[0]
    monkeypatch.setattr(pipeline_flux_fill, "retrieve_latents",
                        lambda out, generator=None, sample_mode="sample": out.latent_dist.mode())
    pipe = FluxFillPipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=parts["vae"],
                            text_encoder=parts["clip_l"], tokenizer=None, text_encoder_2=parts["t5"],
                            tokenizer_2=parts["tokenizer"], transformer=parts["transformer"])
    photo, mask = _photo_and_mask()
    sigmas = calculate_sigmas(FluxSampling(shift=1.15), "normal", 4)
    packed = pipe(image=PILImage.fromarray(photo), mask_image=PILImage.fromarray(mask), prompt_embeds=cond,
                  pooled_prompt_embeds=extra["pooled_output"], height=64, width=64, num_inference_steps=4,
                  sigmas=sigmas[:-1].tolist(), guidance_scale=30.0, generator=torch.Generator().manual_seed(3),
                  output_type="latent").images
    theirs = pipe._unpack_latents(packed, 64, 64, pipe.vae_scale_factor)
    assert theirs.shape == ours.shape
    assert (ours - theirs).abs().max() < 1e-4


def test_outpaint_template_runs_through_a_live_server(tmp_path, fill):
    prompt = copy.deepcopy(FILL_WORKFLOW)
    prompt["13"] = {"class_type": "ImagePadForOutpaint", "inputs": {"image": ["4", 0], "left": 16, "top": 0,
                                                                    "right": 16, "bottom": 0, "feathering": 8}}
    prompt["8"]["inputs"].update(pixels=["13", 0], mask=["13", 1], noise_mask=False)
    entry = run_served(_base(tmp_path), fill[0], prompt)
    assert entry["outputs"]["12"]["images"][0]["filename"].startswith("flux-fill")


def test_clip_text_encode_flux_sends_each_prompt_to_its_encoder(fill):
    """CLIPTextEncodeFlux equals CLIPTextEncode's T5 states for `t5xxl`, CLIP-L's pooled vector for
    `clip_l`, with the guidance attached; a non-Flux CLIP is refused by name."""
    from nodeloom.diffusion.split_models import load_text_encoders
    from nodeloom.errors import ValidationError
    from nodeloom.nodes.diffusion.conditioning import CLIPTextEncode
    from nodeloom.nodes.diffusion.flux_text import CLIPTextEncodeFlux

    models, parts = fill
    clip = load_text_encoders([models / "text_encoders" / parts["clip_l_file"], models / "text_encoders" / parts["t5_file"]],
                              "flux", [models / "tokenizers"])
    ((cond, extra),), = CLIPTextEncodeFlux.execute(clip, "a red fox", PROMPT, 2.5)
    assert extra["guidance"] == 2.5
    (((t5_cond, t5_extra),),) = CLIPTextEncode.execute(PROMPT, clip)
    (((_, l_extra),),) = CLIPTextEncode.execute("a red fox", clip)
    assert torch.equal(cond, t5_cond)
    assert torch.equal(extra["pooled_output"], l_extra["pooled_output"])
    assert not torch.equal(extra["pooled_output"], t5_extra["pooled_output"])
    with pytest.raises(ValidationError, match="needs a Flux CLIP"):
        CLIPTextEncodeFlux.execute(clip.clone(family="sd3"), "a", "b", 3.5)
