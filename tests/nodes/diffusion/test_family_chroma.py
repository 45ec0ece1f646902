"""Chroma end to end on tiny random weights: the original-layout, diffusers-layout and scaled-fp8
files through UNETLoader and CLIPLoader (type chroma, T5 only), the Chroma template's graph
(T5TokenizerOptions, ModelSamplingAuraFlow, BasicScheduler beta, CFGGuider) through the Engine and
a live server, and parity with diffusers' ChromaPipeline on the latents."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from nodeloom.diffusion.flow import FlowSampling
from nodeloom.diffusion.schedules import calculate_sigmas
from nodeloom.diffusion.split_models import load_diffusion_model, load_text_encoders
from nodeloom.models.offload import dequantised_state_dict
from nodeloom.testing.tiny_chroma import CHROMA_WORKFLOW, build_tiny_chroma
from tests.nodes.diffusion.family_helpers import engine_for, run_ok, run_served


@pytest.fixture(scope="module")
def chroma(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return root, build_tiny_chroma(root)


def _run(base: Path, models: Path, prompt: dict) -> object:
    with engine_for(base, models) as engine:
        return run_ok(engine, prompt)


def test_template_workflow_runs_through_the_engine(tmp_path, chroma):
    image = _run(tmp_path, chroma[0], copy.deepcopy(CHROMA_WORKFLOW)).value("14")
    assert image.shape == (1, 64, 64, 3) and image.std() > 0.01


@pytest.mark.parametrize("unet", ["unet", "unet_diffusers"])
def test_latents_match_the_diffusers_pipeline(tmp_path, chroma, unet):
    """Noise: a CPU float32 ``torch.randn`` of the [B,16,h,w] latent seeded with the seed on both
    sides (the pipeline packs it into 2×2 patches afterwards). The prompt states (T5, unpadded, as
    ComfyUI encodes Chroma's prompts) are handed over with an all-ones attention mask, i.e. none."""
    from diffusers import ChromaPipeline, FlowMatchEulerDiscreteScheduler

    models, parts = chroma
    prompt = copy.deepcopy(CHROMA_WORKFLOW)
    prompt["1"]["inputs"]["unet_name"] = parts[unet]
    result = _run(tmp_path, models, prompt)
    ours = (result.value("13")["samples"] - 0.1159) * 0.3611
    cond, neg = result.value("5")[0][0], result.value("6")[0][0]
    assert cond.shape[1] == len(parts["tokenizer"](CHROMA_WORKFLOW["5"]["inputs"]["text"]).input_ids)  # no padding
    pipe = ChromaPipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=parts["vae"], text_encoder=parts["t5"],
                          tokenizer=parts["tokenizer"], transformer=parts["transformer"])
    sigmas = calculate_sigmas(FlowSampling(shift=1.0, multiplier=1.0), "beta", 4)
    packed = pipe(prompt_embeds=cond, prompt_attention_mask=torch.ones(cond.shape[:2]), negative_prompt_embeds=neg,
                  negative_prompt_attention_mask=torch.ones(neg.shape[:2]), height=64, width=64, num_inference_steps=4,
                  sigmas=sigmas[:-1].tolist(), guidance_scale=3.5, generator=torch.Generator().manual_seed(9),
                  output_type="latent").images
    theirs = pipe._unpack_latents(packed, 64, 64, pipe.vae_scale_factor)
    assert theirs.shape == ours.shape
    assert (ours - theirs).abs().max() < 1e-4


def test_t5_tokenizer_options_pad_the_prompt(chroma):
    """min_padding pad tokens follow `</s>`; min_length pads up to that many tokens (ComfyUI's order)."""
    from nodeloom.nodes.diffusion.t5_options import T5TokenizerOptions

    models, parts = chroma
    clip = load_text_encoders([models / "text_encoders" / parts["t5_file"]], "chroma", [models / "tokenizers"])
    base = clip.t5_ids("a red fox")[0].tolist()
    assert base[-1] == parts["tokenizer"].eos_token_id
    pad = parts["tokenizer"].pad_token_id
    (padded,) = T5TokenizerOptions.execute(clip, 3, 0)
    assert padded.t5_ids("a red fox")[0].tolist() == base + [pad] * 3
    (longer,) = T5TokenizerOptions.execute(clip, 1, 20)
    assert longer.t5_ids("a red fox")[0].tolist() == base + [pad] * (20 - len(base))
    assert longer.encode("a red fox")[0].shape == (1, 20, 32)
    (same,) = T5TokenizerOptions.execute("not a clip", 1, 20)
    assert same == "not a clip"


def test_scaled_fp8_file_loads_dequantised(chroma):
    models, parts = chroma
    module, family = load_diffusion_model(models / "diffusion_models" / parts["unet_fp8"])
    ref, got = parts["transformer"].state_dict(), dequantised_state_dict(module)
    assert family.name == "chroma" and set(ref) == set(got)
    for key, value in ref.items():
        assert (got[key] - value).abs().max() <= value.abs().max() / 16 + 1e-6, key


def test_template_workflow_runs_through_a_live_server(tmp_path, chroma):
    entry = run_served(tmp_path, chroma[0], copy.deepcopy(CHROMA_WORKFLOW))
    assert entry["outputs"]["15"]["images"][0]["filename"].startswith("chroma")
