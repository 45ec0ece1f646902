"""Lumina Image 2.0 end to end on tiny random weights: the original NextDiT layout (ComfyUI's
repackaged file), the diffusers layout and a scaled-fp8 variant through UNETLoader and CLIPLoader
(type lumina2, Gemma 2), the template's prompt wiring (system prompt joined by StringConcatenate)
through the Engine and a live server, and parity with diffusers' Lumina2Pipeline on the latents."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from nodeloom.diffusion.flow import FlowSampling
from nodeloom.diffusion.schedules import calculate_sigmas
from nodeloom.diffusion.split_models import load_diffusion_model
from nodeloom.models.offload import dequantised_state_dict
from nodeloom.testing.tiny_lumina2 import LUMINA2_WORKFLOW, build_tiny_lumina2
from tests.nodes.diffusion.family_helpers import engine_for, run_ok, run_served


@pytest.fixture(scope="module")
def lumina(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return root, build_tiny_lumina2(root)


def _run(base: Path, models: Path, prompt: dict) -> object:
    with engine_for(base, models) as engine:
        return run_ok(engine, prompt)


def test_template_workflow_runs_through_the_engine(tmp_path, lumina):
    image = _run(tmp_path, lumina[0], copy.deepcopy(LUMINA2_WORKFLOW)).value("11")
    assert image.shape == (1, 64, 64, 3) and image.std() > 0.01


@pytest.mark.parametrize("unet", ["unet", "unet_diffusers"])
def test_latents_match_the_diffusers_pipeline(tmp_path, lumina, unet):
    """Noise: a CPU float32 ``torch.randn`` of the [B,16,h,w] latent seeded with the seed on both
    sides. Our Gemma states (the template's text, `<bos>` first, unpadded, layer −2) equal the
    pipeline's own encoding on the real tokens; they are handed over with an all-ones mask (the
    pipeline pads to 256 and masks; here both are zero-padded to one length with the padding masked
    out, which attends to exactly the real tokens). cfg 4 with the negative prompt; the pipeline's CFG
    renormalisation is off (ComfyUI has none)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, Lumina2Pipeline

    models, parts = lumina
    prompt = copy.deepcopy(LUMINA2_WORKFLOW)
    prompt["1"]["inputs"]["unet_name"] = parts[unet]
    prompt["10"]["inputs"]["sampler_name"] = "euler"
    result = _run(tmp_path, models, prompt)
    ours = (result.value("10")["samples"] - 0.1159) * 0.3611
    cond, neg = result.value("5")[0][0], result.value("7")[0][0]
    pipe = Lumina2Pipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=parts["vae"],
                           text_encoder=parts["gemma"], tokenizer=parts["tokenizer"], transformer=parts["transformer"])
    theirs_states, mask = pipe._get_gemma_prompt_embeds([result.value("4")], torch.device("cpu"))
    assert int(mask.sum()) == cond.shape[1]
    assert (theirs_states[:, : cond.shape[1]] - cond).abs().max() < 1e-5
    sigmas = calculate_sigmas(FlowSampling(shift=4.0, multiplier=1.0), "simple", 4)
    n = max(cond.shape[1], neg.shape[1])  # the pipeline wants equal lengths: zero-pad and mask out the rest
    (cond_p, cond_m), (neg_p, neg_m) = (_padded(x, n) for x in (cond, neg))
    theirs = pipe(prompt_embeds=cond_p, prompt_attention_mask=cond_m, negative_prompt_embeds=neg_p,
                  negative_prompt_attention_mask=neg_m, height=64, width=64, num_inference_steps=4,
                  sigmas=sigmas[:-1].tolist(), guidance_scale=4.0, cfg_normalization=False, cfg_trunc_ratio=1.0,
                  generator=torch.Generator().manual_seed(13), output_type="latent").images
    assert theirs.shape == ours.shape
    assert (ours - theirs).abs().max() < 1e-4


def _padded(states: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    pad = n - states.shape[1]
    mask = torch.cat([torch.ones(1, states.shape[1], dtype=torch.long), torch.zeros(1, pad, dtype=torch.long)], dim=1)
    return torch.cat([states, states.new_zeros(1, pad, states.shape[2])], dim=1), mask


def test_files_are_told_apart_from_z_image(lumina):
    """Lumina 2's NextDiT layout shares Z-Image's key names; the scaled-fp8 file loads dequantised."""
    models, parts = lumina
    module, family = load_diffusion_model(models / "diffusion_models" / parts["unet_fp8"])
    assert family.name == "lumina2" and module.config.hidden_size == 48
    ref, got = parts["transformer"].state_dict(), dequantised_state_dict(module)
    for key, value in ref.items():
        assert (got[key] - value).abs().max() <= value.abs().max() / 16 + 1e-6, key


def test_template_workflow_runs_through_a_live_server(tmp_path, lumina):
    entry = run_served(tmp_path, lumina[0], copy.deepcopy(LUMINA2_WORKFLOW))
    assert entry["outputs"]["12"]["images"][0]["filename"].startswith("NetaYume_Lumina")


def test_all_in_one_checkpoint_equals_the_split_files(tmp_path, lumina):
    """The NetaYume template's CheckpointLoaderSimple graph on an all-in-one file (the NextDiT under
    ``model.diffusion_model.``, Gemma 2 under ``text_encoders.gemma2_2b.transformer.``, the VAE under
    ``vae.``) equals the split files; one without its text encoder is refused naming the loader to use."""
    from safetensors.torch import load_file, save_file

    models, parts = lumina
    everything = {k: v for k, v in load_file(str(models / "diffusion_models" / parts["unet"])).items()}
    everything.update({"text_encoders.gemma2_2b.transformer." + k: v
                       for k, v in load_file(str(models / "text_encoders" / parts["clip"])).items()})
    everything.update({"vae." + k: v for k, v in load_file(str(models / "vae" / parts["vae_file"])).items()})
    (models / "checkpoints").mkdir(exist_ok=True)
    save_file(everything, str(models / "checkpoints" / "tiny_netayume.safetensors"))
    save_file({k: v for k, v in everything.items() if not k.startswith("text_encoders.")},
              str(models / "checkpoints" / "tiny_netayume_no_te.safetensors"))
    prompt = copy.deepcopy(LUMINA2_WORKFLOW)
    for node in ("1", "2", "3"):
        del prompt[node]
    prompt["0"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_netayume.safetensors"}}
    prompt["8"]["inputs"]["model"] = ["0", 0]
    prompt["5"]["inputs"]["clip"] = prompt["7"]["inputs"]["clip"] = ["0", 1]
    prompt["11"]["inputs"]["vae"] = ["0", 2]
    with engine_for(tmp_path, models) as engine:
        split = run_ok(engine, copy.deepcopy(LUMINA2_WORKFLOW)).value("11")
        assert (run_ok(engine, prompt).value("11") - split).abs().max() < 1e-5
        prompt["0"]["inputs"]["ckpt_name"] = "tiny_netayume_no_te.safetensors"
        result = engine.run(prompt)
    assert result.status == "error" and "CLIPLoader (type lumina2)" in str(result.errors)
