"""Flux.1 dev/schnell end to end on tiny random weights: original-layout, diffusers-layout and
scaled-fp8 files through DualCLIPLoader (clip_l + t5) and UNETLoader, a template-shaped workflow
through the Engine and a live server, and parity with diffusers' FluxPipeline on the latents."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from nodeloom.diffusion.flow import FluxSampling, flux_resolution_shift
from nodeloom.diffusion.schedules import calculate_sigmas
from nodeloom.diffusion.split_models import load_diffusion_model
from nodeloom.models.offload import dequantised_state_dict
from nodeloom.testing.tiny_families import FLUX_DEV_WORKFLOW, build_tiny_flux
from tests.nodes.diffusion.family_helpers import engine_for, lora_pair, run_ok, run_served, write_merged

PROMPT = "a castle on a hill under a stormy sky"

WORKFLOW = FLUX_DEV_WORKFLOW


@pytest.fixture(scope="module")
def flux(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return root, build_tiny_flux(root)


def _run(base: Path, models: Path, prompt: dict) -> object:
    with engine_for(base, models) as engine:
        return run_ok(engine, prompt)


def test_template_workflow_runs_through_the_engine(tmp_path, flux):
    models, _ = flux
    image = _run(tmp_path, models, copy.deepcopy(WORKFLOW)).value("10")
    assert image.shape == (1, 64, 64, 3) and image.std() > 0.01


@pytest.mark.parametrize("unet", ["unet", "unet_diffusers"])
def test_latents_match_the_diffusers_pipeline(tmp_path, flux, unet):
    """Noise: a CPU float32 ``torch.randn`` of the [B,16,h,w] latent from a generator seeded with
    the seed, on both sides (diffusers packs it into 2×2 patches afterwards). The T5 states equal
    the pipeline's own T5 encoding (256 tokens, ComfyUI's minimum length); the pooled CLIP-L vector
    is handed over."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline

    models, parts = flux
    prompt = copy.deepcopy(WORKFLOW)
    prompt["1"]["inputs"]["unet_name"] = parts[unet]
    result = _run(tmp_path, models, prompt)
    ours = (result.value("9")["samples"] - 0.1159) * 0.3611
    cond, extra = result.value("6")[0]
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=parts["vae"],
                        text_encoder=parts["clip_l"], tokenizer=None, text_encoder_2=parts["t5"],
                        tokenizer_2=parts["tokenizer"], transformer=parts["transformer"])
    t5 = pipe._get_t5_prompt_embeds(PROMPT, max_sequence_length=256, device=torch.device("cpu"))
    assert (t5 - cond).abs().max() < 1e-5
    sigmas = calculate_sigmas(FluxSampling(shift=flux_resolution_shift(64, 64)), "simple", 4)
    packed = pipe(prompt_embeds=cond, pooled_prompt_embeds=extra["pooled_output"], height=64, width=64,
                  num_inference_steps=4, sigmas=sigmas[:-1].tolist(), guidance_scale=3.5,
                  generator=torch.Generator().manual_seed(11), output_type="latent").images
    theirs = pipe._unpack_latents(packed, 64, 64, pipe.vae_scale_factor)
    assert theirs.shape == ours.shape
    assert (ours - theirs).abs().max() < 1e-4


def test_scaled_fp8_and_schnell(tmp_path, flux):
    models, parts = flux
    module, family = load_diffusion_model(models / "diffusion_models" / parts["unet_fp8"])
    ref = parts["transformer"].state_dict()
    got = dequantised_state_dict(module)
    assert family.name == "flux" and set(ref) == set(got)
    for key, value in ref.items():
        assert (got[key] - value).abs().max() <= value.abs().max() / 16 + 1e-6, key
    schnell = build_tiny_flux(tmp_path / "schnell", guidance=False)
    module, family = load_diffusion_model(tmp_path / "schnell" / "diffusion_models" / schnell["unet"])
    assert not module.config.guidance_embeds and family.sampling(module).shift == 1.0


def test_template_workflow_runs_through_a_live_server(tmp_path, flux):
    entry = run_served(tmp_path, flux[0], copy.deepcopy(WORKFLOW))
    assert entry["outputs"]["11"]["images"][0]["filename"].startswith("flux-dev")


def test_kohya_and_peft_loras_equal_their_merged_weights(tmp_path, flux):
    """A kohya LoRA (``lora_unet_double_blocks_0_img_attn_proj``, alpha 2, rank 4) and a PEFT one
    (``transformer.single_transformer_blocks.0.proj_mlp``) at strength 0.7 through
    LoraLoaderModelOnly equal a file with ``W + 0.7·scale·up·down`` merged in."""
    from safetensors.torch import save_file

    models, parts = flux
    base = {k: v.clone() for k, v in parts["transformer"].state_dict().items()}
    down1, up1 = lora_pair(base, "transformer_blocks.0.attn.to_out.0.weight", seed=1)
    down2, up2 = lora_pair(base, "single_transformer_blocks.0.proj_mlp.weight", seed=2)
    (models / "loras").mkdir(exist_ok=True)
    save_file({"lora_unet_double_blocks_0_img_attn_proj.lora_down.weight": down1,
               "lora_unet_double_blocks_0_img_attn_proj.lora_up.weight": up1,
               "lora_unet_double_blocks_0_img_attn_proj.alpha": torch.tensor(2.0)},
              str(models / "loras" / "flux_kohya.safetensors"))
    save_file({"transformer.single_transformer_blocks.0.proj_mlp.lora_A.weight": down2,
               "transformer.single_transformer_blocks.0.proj_mlp.lora_B.weight": up2},
              str(models / "loras" / "flux_peft.safetensors"))
    write_merged(base, {"transformer_blocks.0.attn.to_out.0.weight": 0.7 * 0.5 * up1 @ down1,
                        "single_transformer_blocks.0.proj_mlp.weight": 0.7 * up2 @ down2},
                 models / "diffusion_models" / "flux_merged.safetensors")
    with_lora = copy.deepcopy(WORKFLOW)
    with_lora["12"] = {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["1", 0], "lora_name":
                                                                       "flux_kohya.safetensors", "strength_model": 0.7}}
    with_lora["13"] = {"class_type": "LoraLoader", "inputs": {"model": ["12", 0], "clip": ["2", 0], "lora_name":
                                                              "flux_peft.safetensors", "strength_model": 0.7,
                                                              "strength_clip": 1.0}}
    with_lora["4"]["inputs"]["model"] = ["13", 0]
    merged = copy.deepcopy(WORKFLOW)
    merged["1"]["inputs"]["unet_name"] = "flux_merged.safetensors"
    plain = _run(tmp_path / "plain", models, copy.deepcopy(WORKFLOW)).value("9")["samples"]
    a = _run(tmp_path / "lora", models, with_lora).value("9")["samples"]
    b = _run(tmp_path / "merged", models, merged).value("9")["samples"]
    assert (a - b).abs().max() < 1e-4
    assert (a - plain).abs().max() > 1e-3  # the LoRA changed the result


def test_kontext_reference_latent_matches_the_kontext_pipeline(tmp_path, flux):
    """Flux.1 Kontext's wiring (LoadImage → VAEEncode → ReferenceLatent → FluxGuidance → KSampler)
    equals diffusers' FluxKontextPipeline given the same image, sigmas and seed: the reference is
    packed after the image tokens with position index 1, as ComfyUI's "offset" method places a first
    reference."""
    import numpy as np
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxKontextPipeline
    from PIL import Image as PILImage
    from skimage import data

    models, parts = flux
    photo = np.asarray(PILImage.fromarray(data.astronaut()).resize((64, 48), PILImage.LANCZOS))
    base = tmp_path / "engine"
    (base / "input").mkdir(parents=True)
    PILImage.fromarray(photo).save(base / "input" / "astronaut.png")
    prompt = copy.deepcopy(WORKFLOW)
    prompt["20"] = {"class_type": "LoadImage", "inputs": {"image": "astronaut.png"}}
    prompt["21"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["20", 0], "vae": ["3", 0]}}
    prompt["22"] = {"class_type": "ReferenceLatent", "inputs": {"conditioning": ["5", 0], "latent": ["21", 0]}}
    prompt["6"]["inputs"]["conditioning"] = ["22", 0]
    result = _run(base, models, prompt)
    ours = (result.value("9")["samples"] - 0.1159) * 0.3611
    cond, extra = result.value("6")[0]
    assert len(extra["reference_latents"]) == 1 and extra["reference_latents"][0].shape == (1, 16, 6, 8)
    pipe = FluxKontextPipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=parts["vae"],
                               text_encoder=parts["clip_l"], tokenizer=None, text_encoder_2=parts["t5"],
                               tokenizer_2=parts["tokenizer"], transformer=parts["transformer"])
    sigmas = calculate_sigmas(FluxSampling(shift=flux_resolution_shift(64, 64)), "simple", 4)
    image = torch.from_numpy(photo).float().div(255).permute(2, 0, 1)[None]
    packed = pipe(image=image, prompt_embeds=cond, pooled_prompt_embeds=extra["pooled_output"], height=64, width=64,
                  num_inference_steps=4, sigmas=sigmas[:-1].tolist(), guidance_scale=3.5, _auto_resize=False, max_area=64 * 64,
                  generator=torch.Generator().manual_seed(11), output_type="latent").images
    theirs = pipe._unpack_latents(packed, 64, 64, pipe.vae_scale_factor)
    assert (ours - theirs).abs().max() < 1e-4
    plain = _run(tmp_path / "plain", models, copy.deepcopy(WORKFLOW)).value("9")["samples"]
    assert (result.value("9")["samples"] - plain).abs().max() > 1e-3  # the reference changed the result


def test_kontext_image_scale_picks_the_closest_trained_resolution():
    from nodeloom.nodes.diffusion.edit_models import FluxKontextImageScale

    (out,) = FluxKontextImageScale.execute(torch.rand(1, 300, 200, 3))
    assert tuple(out.shape) == (1, 1248, 832, 3)
    (out,) = FluxKontextImageScale.execute(torch.rand(1, 64, 64, 3))
    assert tuple(out.shape) == (1, 1024, 1024, 3)


@pytest.mark.parametrize("method", ["offset", "index", "uxo/uno"])
def test_reference_placements_follow_comfyui(method):
    """Two references (3×4 and 2×2 tokens) beside an image of 4×4 tokens, per placement method."""
    from nodeloom.diffusion.families.flux import _references
    from nodeloom.nodes.diffusion.edit_models import FluxKontextMultiReferenceLatentMethod

    (cond,) = FluxKontextMultiReferenceLatentMethod.execute([[torch.zeros(1, 2, 4), {}]], method)
    chosen = cond[0][1]["reference_latents_method"]
    refs = [torch.zeros(1, 16, 6, 8), torch.zeros(1, 16, 4, 4)]
    _, ids = _references(refs, torch.zeros(1), chosen, 4, 4)
    firsts = [tuple(int(v) for v in i[0]) for i in ids]
    expected = {"offset": [(1, 0, 0), (1, 3, 0)], "index": [(1, 0, 0), (2, 0, 0)], "uxo/uno": [(0, 4, 4), (0, 7, 8)]}
    assert firsts == expected[method]
    assert [len(i) for i in ids] == [12, 4]
