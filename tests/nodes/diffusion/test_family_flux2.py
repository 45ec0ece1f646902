"""Flux.2 Klein and dev end to end on tiny random weights: the release-layout, diffusers-layout and
scaled-fp8 files through UNETLoader, CLIPLoader (type flux2: Qwen3 for Klein, Mistral for dev) and
VAELoader (the Flux.2 VAE), the templates' graphs through the Engine and a live server, and parity
with diffusers' Flux2KleinPipeline / Flux2Pipeline on the latents."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from nodeloom.diffusion.flow import flux2_sigmas
from nodeloom.diffusion.flux2_vae import unpatchify
from nodeloom.diffusion.split_models import load_diffusion_model
from nodeloom.models.offload import dequantised_state_dict
from nodeloom.testing.tiny_flux2 import (
    FLUX2_DEV_WORKFLOW,
    FLUX2_KLEIN_EDIT_WORKFLOW,
    FLUX2_KLEIN_WORKFLOW,
    build_tiny_flux2,
)
from tests.nodes.diffusion.family_helpers import engine_for, run_ok, run_served


@pytest.fixture(scope="module")
def flux2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return root, build_tiny_flux2(root)


def _run(base: Path, models: Path, prompt: dict) -> object:
    with engine_for(base, models) as engine:
        return run_ok(engine, prompt)


def _raw(vae: object, ours: torch.Tensor) -> torch.Tensor:
    """Our LATENT (patchified, normalised) → the pipeline's ``output_type="latent"`` (the VAE's 32 channels)."""
    mean = vae.bn.running_mean.view(1, -1, 1, 1)
    std = torch.sqrt(vae.bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps)
    return unpatchify(ours * std + mean)


def _klein(parts: dict, transformer: str = "klein") -> object:
    from diffusers import FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline

    return Flux2KleinPipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=parts["vae"],
                              text_encoder=parts["qwen3"], tokenizer=parts["tokenizer"],
                              transformer=parts[transformer])


def test_klein_template_workflow_runs_through_the_engine(tmp_path, flux2):
    models, _ = flux2
    result = _run(tmp_path, models, copy.deepcopy(FLUX2_KLEIN_WORKFLOW))
    image = result.value("12")
    assert image.shape == (1, 64, 64, 3) and image.std() > 0.01
    assert result.value("11")["samples"].shape == (1, 128, 4, 4)


@pytest.mark.parametrize(("unet", "cfg"), [("klein_unet", 1.0), ("klein_diffusers", 1.0), ("klein_unet", 2.5)])
def test_klein_latents_match_the_diffusers_pipeline(tmp_path, flux2, unet, cfg):
    """Noise: a CPU float32 ``torch.randn`` of the [B,128,h/16,w/16] latent from a generator seeded
    with the seed, on both sides. The text goes through the pipeline's own Qwen3 encoding (chat
    format without thinking, 512 tokens, layers 9/18/27) — equal to ours; at cfg > 1 the negative is
    the empty prompt on both sides (the base template's)."""
    models, parts = flux2
    prompt = copy.deepcopy(FLUX2_KLEIN_WORKFLOW)
    prompt["1"]["inputs"]["unet_name"] = parts[unet]
    if cfg != 1.0:
        prompt["5"] = {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": ""}}
        prompt["6"]["inputs"]["cfg"] = cfg
    result = _run(tmp_path, models, prompt)
    ours = _raw(parts["vae"], result.value("11")["samples"])
    pipe = _klein(parts)
    embeds = pipe._get_qwen3_prompt_embeds(parts["qwen3"], parts["tokenizer"], FLUX2_KLEIN_WORKFLOW["4"]["inputs"]["text"])
    assert (embeds - result.value("4")[0][0]).abs().max() < 1e-5
    theirs = pipe(prompt=FLUX2_KLEIN_WORKFLOW["4"]["inputs"]["text"], height=64, width=64, num_inference_steps=4,
                  sigmas=flux2_sigmas(4, 16)[:-1].tolist(), guidance_scale=cfg,
                  generator=torch.Generator().manual_seed(5), output_type="latent").images
    assert theirs.shape == ours.shape == (1, 32, 8, 8)
    assert (ours - theirs).abs().max() < 1e-4


def test_klein_edit_reference_matches_the_pipeline(tmp_path, flux2):
    """The edit template's wiring (LoadImage → ImageScaleToTotalPixels → VAEEncode → ReferenceLatent
    on both conditionings, the size from GetImageSize) equals Flux2KleinPipeline given the scaled
    image: the reference's tokens follow the image's at time index 10."""
    import numpy as np
    from PIL import Image as PILImage
    from skimage import data

    models, parts = flux2
    base = tmp_path / "engine"
    (base / "input").mkdir(parents=True)
    PILImage.fromarray(data.astronaut()).resize((120, 90), PILImage.LANCZOS).save(base / "input" / "flux2_input.png")
    result = _run(base, models, copy.deepcopy(FLUX2_KLEIN_EDIT_WORKFLOW))
    scaled = result.value("15")
    h, w = scaled.shape[1:3]
    assert h % 16 == 0 and w % 16 == 0
    ref = result.value("18")[0][1]["reference_latents"][0]
    assert ref.shape == (1, 128, h // 16, w // 16)
    ours = _raw(parts["vae"], result.value("11")["samples"])
    image = PILImage.fromarray((scaled[0].numpy() * 255).round().astype(np.uint8))
    theirs = _klein(parts)(image=image, prompt=FLUX2_KLEIN_EDIT_WORKFLOW["4"]["inputs"]["text"], height=h, width=w,
                           num_inference_steps=4, sigmas=flux2_sigmas(4, h * w // 256)[:-1].tolist(),
                           guidance_scale=1.0, generator=torch.Generator().manual_seed(5), output_type="latent").images
    assert (ours - theirs).abs().max() < 1e-4
    plain = copy.deepcopy(FLUX2_KLEIN_EDIT_WORKFLOW)
    plain["6"]["inputs"].update(positive=["4", 0], negative=["5", 0])
    unref = _raw(parts["vae"], _run(base, models, plain).value("11")["samples"])
    assert (ours - unref).abs().max() > 1e-3  # the reference changed the result


def test_reference_multi_latent_wiring_equals_scale_encode_and_reference_latent(tmp_path, flux2):
    """The Flux Klein edit template's ReferenceMultiLatent wiring (resize, its `empty_latent` into the
    sampler) on the tiny Flux.2 files samples exactly what ImageScaleToTotalPixels (lanczos, steps of 16)
    → VAEEncode → ReferenceLatent on both sides → EmptyFlux2LatentImage of that size does."""
    from PIL import Image as PILImage

    models, _ = flux2
    base = tmp_path / "engine"
    (base / "input").mkdir(parents=True)
    pixels = (torch.rand(90, 120, 3, generator=torch.Generator().manual_seed(3)) * 255).to(torch.uint8).numpy()
    PILImage.fromarray(pixels).save(base / "input" / "flux2_input.png")
    chained = copy.deepcopy(FLUX2_KLEIN_EDIT_WORKFLOW)
    chained["15"]["inputs"]["upscale_method"] = "lanczos"
    multi = copy.deepcopy(chained)
    multi["20"] = {"class_type": "ReferenceMultiLatent", "inputs": {
        "positive": ["4", 0], "negative": ["5", 0], "vae": ["3", 0], "resolution": "resize",
        "resolution.megapixels": 0.01, "images.image0": ["14", 0]}}
    multi["6"]["inputs"].update(positive=["20", 0], negative=["20", 1])
    multi["11"]["inputs"]["latent_image"] = ["20", 2]
    want = _run(base, models, chained)
    got = _run(base, models, multi)
    refs = got.value("20")[0][1]["reference_latents"]
    assert len(refs) == 1 and torch.equal(refs[0], want.value("16")["samples"])
    assert got.value("20", 1)[0][1]["reference_latents"][0] is refs[0]
    assert torch.equal(got.value("20", 2)["samples"], want.value("9")["samples"])
    assert torch.equal(got.value("11")["samples"], want.value("11")["samples"])


def test_dev_template_workflow_matches_the_diffusers_pipeline(tmp_path, flux2):
    """Flux.2 dev: the Mistral encoder's layers 10/20/30 side by side over 512 tokens of the release's
    chat format; FluxGuidance's value reaches the guidance embedder. The prompt states are handed to
    Flux2Pipeline (its Mistral processor cannot be built offline); same noise convention as Klein."""
    from diffusers import FlowMatchEulerDiscreteScheduler, Flux2Pipeline

    models, parts = flux2
    result = _run(tmp_path, models, copy.deepcopy(FLUX2_DEV_WORKFLOW))
    cond, extra = result.value("5")[0]
    assert cond.shape == (1, 512, 96) and extra["guidance"] == 4.0
    ids = parts["mistral_tokenizer"]("x").input_ids
    assert cond.shape[1] == 512 and len(ids) > 0
    ours = result.value("11")["samples"].flatten(2).transpose(1, 2)  # Flux2Pipeline returns the packed tokens
    pipe = Flux2Pipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=parts["vae"], text_encoder=None,
                         tokenizer=None, transformer=parts["dev"])
    theirs = pipe(prompt_embeds=cond, height=64, width=64, num_inference_steps=4,
                  sigmas=flux2_sigmas(4, 16)[:-1].tolist(), guidance_scale=4.0,
                  generator=torch.Generator().manual_seed(5), output_type="latent").images
    assert (ours - theirs).abs().max() < 1e-4
    assert result.value("12").shape == (1, 64, 64, 3)


def test_mistral_prompt_carries_the_system_message(flux2):
    from diffusers.pipelines.flux2.system_messages import SYSTEM_MESSAGE

    from nodeloom.diffusion.flux2_text import flux2_clip

    _, parts = flux2
    clip = flux2_clip("mistral3", parts["mistral3"], parts["mistral_tokenizer"])
    ids, mask = clip.tokens("a red fox")
    text = parts["mistral_tokenizer"].decode(ids[0][mask[0].bool()])
    assert text.startswith("<s>[SYSTEM_PROMPT]" + SYSTEM_MESSAGE) and text.endswith("[INST]a red fox[/INST]")
    assert ids.shape == (1, 512)


def test_scaled_fp8_file_loads_dequantised(flux2):
    models, parts = flux2
    module, family = load_diffusion_model(models / "diffusion_models" / parts["klein_fp8"])
    ref, got = parts["klein"].state_dict(), dequantised_state_dict(module)
    assert family.name == "flux2" and set(ref) == set(got) and not module.config.guidance_embeds
    for key, value in ref.items():
        assert (got[key] - value).abs().max() <= value.abs().max() / 16 + 1e-6, key


def test_klein_template_workflow_runs_through_a_live_server(tmp_path, flux2):
    entry = run_served(tmp_path, flux2[0], copy.deepcopy(FLUX2_KLEIN_WORKFLOW))
    assert entry["outputs"]["13"]["images"][0]["filename"].startswith("Flux2-Klein")


def test_wrong_pairings_are_clear_errors(tmp_path, flux2):
    """A Flux.1 latent into the Flux.2 VAE, and the Qwen3 encoder under a type no family pairs it with."""
    models, parts = flux2
    prompt = copy.deepcopy(FLUX2_KLEIN_WORKFLOW)
    prompt["9"] = {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
    prompt["12"]["inputs"]["samples"] = ["9", 0]
    with engine_for(tmp_path, models) as engine:
        result = engine.run(prompt)
        assert result.status == "error"
        assert "Flux.2 VAE decodes [B,128,h,w]" in str(result.errors)
        prompt = copy.deepcopy(FLUX2_KLEIN_WORKFLOW)
        prompt["2"]["inputs"]["type"] = "chroma"
        result = engine.run(prompt)
        assert result.status == "error"
        message = str(result.errors)
        assert parts["qwen3_file"] in message and "type `flux2` with qwen3" in message


def test_kohya_and_ai_toolkit_loras_on_klein_equal_their_merged_weights(tmp_path, flux2):
    """A kohya LoRA (``lora_unet_double_blocks_0_img_attn_proj``, alpha 2, rank 4) and an ai-toolkit
    one (``diffusion_model.single_blocks.0.linear2``) at strength 0.7 through LoraLoaderModelOnly
    equal a file with ``W + 0.7·scale·up·down`` merged in."""
    from safetensors.torch import load_file, save_file

    from nodeloom.testing.tiny_flux2 import flux2_to_bfl
    from tests.nodes.diffusion.family_helpers import lora_pair, write_merged

    models, parts = flux2
    base = {k: v.clone() for k, v in parts["klein"].state_dict().items()}
    down1, up1 = lora_pair(base, "transformer_blocks.0.attn.to_out.0.weight", seed=1)
    down2, up2 = lora_pair(base, "single_transformer_blocks.0.attn.to_out.weight", seed=2)
    (models / "loras").mkdir(exist_ok=True)
    save_file({"lora_unet_double_blocks_0_img_attn_proj.lora_down.weight": down1,
               "lora_unet_double_blocks_0_img_attn_proj.lora_up.weight": up1,
               "lora_unet_double_blocks_0_img_attn_proj.alpha": torch.tensor(2.0)},
              str(models / "loras" / "klein_kohya.safetensors"))
    save_file({"diffusion_model.single_blocks.0.linear2.lora_A.weight": down2,
               "diffusion_model.single_blocks.0.linear2.lora_B.weight": up2},
              str(models / "loras" / "klein_aitk.safetensors"))
    merged_path = tmp_path / "merged.safetensors"
    write_merged(base, {"transformer_blocks.0.attn.to_out.0.weight": 0.7 * 0.5 * up1 @ down1,
                        "single_transformer_blocks.0.attn.to_out.weight": 0.7 * up2 @ down2}, merged_path)
    save_file(flux2_to_bfl(load_file(str(merged_path))), str(models / "diffusion_models" / "klein_merged.safetensors"))
    with_lora = copy.deepcopy(FLUX2_KLEIN_WORKFLOW)
    with_lora["20"] = {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["1", 0], "lora_name":
                                                                       "klein_kohya.safetensors", "strength_model": 0.7}}
    with_lora["21"] = {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["20", 0], "lora_name":
                                                                       "klein_aitk.safetensors", "strength_model": 0.7}}
    with_lora["6"]["inputs"]["model"] = ["21", 0]
    merged = copy.deepcopy(FLUX2_KLEIN_WORKFLOW)
    merged["1"]["inputs"]["unet_name"] = "klein_merged.safetensors"
    with engine_for(tmp_path / "engine", models) as engine:
        plain = run_ok(engine, copy.deepcopy(FLUX2_KLEIN_WORKFLOW)).value("11")["samples"]
        a = run_ok(engine, with_lora).value("11")["samples"]
        b = run_ok(engine, merged).value("11")["samples"]
    assert (a - b).abs().max() < 1e-4
    assert (a - plain).abs().max() > 1e-3  # the LoRA changed the result


def test_mixed_precision_layers_in_formats_nodeloom_cannot_read_are_refused_by_name(tmp_path, flux2):
    """ComfyUI's mixed-precision files (``*.comfy_quant`` tensors) load (tests/nodes/diffusion/test_fp8mixed.py);
    a layer in a block-scaled 4-bit format is refused: the error names the file, the layer and its format."""
    import json

    from safetensors.torch import load_file, save_file

    from nodeloom.errors import ValidationError

    models, parts = flux2
    sd = load_file(str(models / "diffusion_models" / parts["klein_unet"]))
    sd["img_in.comfy_quant"] = torch.tensor(list(json.dumps({"format": "nvfp4"}).encode()), dtype=torch.uint8)
    path = tmp_path / "flux2_dev_nvfp4mixed.safetensors"
    save_file(sd, str(path))
    with pytest.raises(ValidationError, match="flux2_dev_nvfp4mixed.safetensors.*`img_in`.*`nvfp4`.*fp8mixed"):
        load_diffusion_model(path)


def test_klein_two_references_match_the_pipeline(tmp_path, flux2):
    """The two-image edit subgraph (two ReferenceLatent in a chain) equals Flux2KleinPipeline given
    both images: the second reference's tokens sit at time index 20."""
    import numpy as np
    from PIL import Image as PILImage
    from skimage import data

    models, parts = flux2
    base = tmp_path / "engine"
    (base / "input").mkdir(parents=True)
    PILImage.fromarray(data.astronaut()).resize((120, 90), PILImage.LANCZOS).save(base / "input" / "flux2_input.png")
    PILImage.fromarray(data.chelsea()).resize((64, 80), PILImage.LANCZOS).save(base / "input" / "second.png")
    prompt = copy.deepcopy(FLUX2_KLEIN_EDIT_WORKFLOW)
    prompt["20"] = {"class_type": "LoadImage", "inputs": {"image": "second.png"}}
    prompt["21"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["20", 0], "vae": ["3", 0]}}
    prompt["22"] = {"class_type": "ReferenceLatent", "inputs": {"conditioning": ["18", 0], "latent": ["21", 0]}}
    prompt["6"]["inputs"]["positive"] = ["22", 0]
    result = _run(base, models, prompt)
    assert [r.shape for r in result.value("22")[0][1]["reference_latents"]][1] == (1, 128, 5, 4)
    scaled = result.value("15")
    h, w = scaled.shape[1:3]
    first = PILImage.fromarray((scaled[0].numpy() * 255).round().astype(np.uint8))
    second = PILImage.open(base / "input" / "second.png").convert("RGB")
    ours = _raw(parts["vae"], result.value("11")["samples"])
    theirs = _klein(parts)(image=[first, second], prompt=prompt["4"]["inputs"]["text"], height=h, width=w,
                           num_inference_steps=4, sigmas=flux2_sigmas(4, h * w // 256)[:-1].tolist(),
                           guidance_scale=1.0, generator=torch.Generator().manual_seed(5), output_type="latent").images
    assert (ours - theirs).abs().max() < 1e-4
