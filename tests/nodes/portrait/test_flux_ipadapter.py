"""The Flux IP-Adapter (x-flux-comfyui's node names) on tiny random weights: a tiny Flux.1 dev
from UNETLoader, a tiny CLIP-vision model and a tiny adapter in XLabs' key layout under
models/xlabs/ipadapters. The adapter changes the result, strength 0 equals no adapter, the latents
equal diffusers' FluxPipeline with ``load_ip_adapter``, and mismatched files fail clearly."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from skimage import data

from nodeloom.diffusion.flux_ip_adapter import block_strengths, load_flux_ip_adapter
from nodeloom.testing.tiny_clip_vision import save_vision_file, tiny_vision_model
from nodeloom.testing.tiny_families import FLUX_DEV_WORKFLOW, build_tiny_flux
from nodeloom.testing.tiny_ip_adapter import save_tiny_flux_ip_adapter
from tests.nodes.diffusion.family_helpers import engine_for, run_ok

ADAPTER = "flux-ip-adapter.safetensors"
VISION = "clip_vision_l.safetensors"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    parts = build_tiny_flux(root)
    vision = tiny_vision_model("clip_h", seed=3)
    save_vision_file(vision, root / "clip_vision" / VISION)
    embed = int(vision.config.projection_dim)
    save_tiny_flux_ip_adapter(parts["transformer"], root / "xlabs" / "ipadapters" / ADAPTER, embed, seed=2)
    other = copy.deepcopy(parts["transformer"].config)
    wide = type(parts["transformer"]).from_config({**other, "num_layers": 2})
    save_tiny_flux_ip_adapter(wide, root / "xlabs" / "ipadapters" / "two_blocks.safetensors", embed, seed=2)
    base = tmp_path_factory.mktemp("base")
    (base / "input").mkdir()
    PILImage.fromarray(data.astronaut()[::8, ::8]).save(base / "input" / "astronaut.png")
    return base, root, parts


def _prompt(node: str | None = None, **inputs) -> dict:
    prompt = copy.deepcopy(FLUX_DEV_WORKFLOW)
    if node is not None:
        prompt["20"] = {"class_type": "LoadImage", "inputs": {"image": "astronaut.png"}}
        prompt["21"] = {"class_type": "LoadFluxIPAdapter", "inputs": {"ipadatper": inputs.pop("file", ADAPTER),
                                                                      "clip_vision": VISION, "provider": "CPU"}}
        prompt["22"] = {"class_type": node, "inputs": {"model": ["1", 0], "ip_adapter_flux": ["21", 0],
                                                       "image": ["20", 0], **inputs}}
        prompt["4"]["inputs"]["model"] = ["22", 0]
    return prompt


def _latent(engine, prompt: dict) -> torch.Tensor:
    result = engine.run(prompt)
    assert result.status == "success", [e.get("exception_message", e) for e in result.errors]
    return result.value("9")["samples"]


def test_the_adapter_steers_and_strength_zero_equals_no_adapter(files):
    base, models, _ = files
    with engine_for(base, models) as engine:
        plain = _latent(engine, _prompt())
        steered = _latent(engine, _prompt("ApplyFluxIPAdapter", ip_scale=0.93))
        assert (steered - plain).abs().max() > 1e-3
        assert torch.equal(_latent(engine, _prompt("ApplyFluxIPAdapter", ip_scale=0.0)), plain)
        flat = _latent(engine, _prompt("ApplyAdvancedFluxIPAdapter", begin_strength=0.0, end_strength=0.0,
                                       smothing_type="Linear"))
        assert torch.equal(flat, plain)
        # one double block: the advanced node's curve starts at begin_strength there; with the
        # embeddings of one image averaged it equals the simple node at that strength
        one = _latent(engine, _prompt("ApplyAdvancedFluxIPAdapter", begin_strength=0.5, end_strength=1.0,
                                      smothing_type="Linear"))
        assert torch.allclose(one, _latent(engine, _prompt("ApplyFluxIPAdapter", ip_scale=0.5)), atol=1e-6)
        assert torch.equal(_latent(engine, _prompt()), plain)  # the shared transformer came back as it was


def test_latents_match_diffusers_flux_pipeline_with_load_ip_adapter(files):
    """diffusers gets the same image embedding (our CLIP-vision preprocessing, as
    ``ip_adapter_image_embeds``), text states, sigmas and seed."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline

    from nodeloom.diffusion.clip_vision import load_clip_vision
    from nodeloom.diffusion.flow import FluxSampling, flux_resolution_shift
    from nodeloom.diffusion.schedules import calculate_sigmas

    base, models, parts = files
    with engine_for(base, models) as engine:
        result = run_ok(engine, _prompt("ApplyFluxIPAdapter", ip_scale=0.8))
    ours = (result.value("9")["samples"] - 0.1159) * 0.3611
    cond, extra = result.value("6")[0]
    image = result.value("20")
    embeds = load_clip_vision(models / "clip_vision" / VISION).encode_image(image, crop=True)["image_embeds"]
    transformer = copy.deepcopy(parts["transformer"])
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=parts["vae"],
                        text_encoder=parts["clip_l"], tokenizer=None, text_encoder_2=parts["t5"],
                        tokenizer_2=parts["tokenizer"], transformer=transformer)
    pipe.load_ip_adapter(str(models / "xlabs" / "ipadapters"), weight_name=ADAPTER,
                         image_encoder_pretrained_model_name_or_path=None)
    pipe.set_ip_adapter_scale(0.8)
    sigmas = calculate_sigmas(FluxSampling(shift=flux_resolution_shift(64, 64)), "simple", 4)
    packed = pipe(prompt_embeds=cond, pooled_prompt_embeds=extra["pooled_output"], height=64, width=64,
                  num_inference_steps=4, sigmas=sigmas[:-1].tolist(), guidance_scale=3.5,
                  ip_adapter_image_embeds=[embeds[None]], negative_ip_adapter_image_embeds=[torch.zeros_like(embeds)[None]],
                  generator=torch.Generator().manual_seed(11), output_type="latent").images
    theirs = pipe._unpack_latents(packed, 64, 64, pipe.vae_scale_factor)
    assert (ours - theirs).abs().max() < 1e-4
    pipe.unload_ip_adapter()
    plain = pipe(prompt_embeds=cond, pooled_prompt_embeds=extra["pooled_output"], height=64, width=64,
                 num_inference_steps=4, sigmas=sigmas[:-1].tolist(), guidance_scale=3.5,
                 generator=torch.Generator().manual_seed(11), output_type="latent").images
    assert (packed - plain).abs().max() > 1e-3  # the comparison is not between two unsteered runs


def test_mismatched_or_foreign_files_fail_naming_them(files, tmp_path):
    base, models, _ = files
    with engine_for(base, models) as engine:
        result = engine.run(_prompt("ApplyFluxIPAdapter", ip_scale=0.5, file="two_blocks.safetensors"))
    assert result.status != "success"
    message = str([e.get("exception_message") for e in result.errors])
    assert "two_blocks.safetensors" in message and "2 double blocks" in message
    from safetensors.torch import save_file

    save_file({"image_proj.proj.weight": torch.zeros(8, 4)}, str(tmp_path / "sd15.safetensors"))
    with pytest.raises(Exception, match="sd15.safetensors.*not a Flux IP-Adapter"):
        load_flux_ip_adapter(tmp_path / "sd15.safetensors")


def test_block_strength_curves():
    linear = block_strengths(0.0, 1.0, "Linear", 19)
    assert linear[0] == 0.0 and linear[-1] == 1.0 and np.allclose(np.diff(linear), 1 / 18)
    first = block_strengths(0.2, 1.0, "First half", 19)
    assert first[0] == pytest.approx(0.2) and first[8] == pytest.approx(1.0) and first[9:] == [1.0] * 10
    second = block_strengths(0.2, 1.0, "Second half", 19)
    assert second[:10] == [0.2] * 10 and second[-1] == pytest.approx(1.0)
    sigmoid = block_strengths(0.0, 1.0, "Sigmoid", 19)
    assert all(b > a for a, b in zip(sigmoid, sigmoid[1:])) and sigmoid[0] < -0.45 and sigmoid[-1] > 0.45
    assert block_strengths(0.3, 0.9, "Linear", 1) == [0.3]
    with pytest.raises(Exception, match="smothing_type"):
        block_strengths(0.0, 1.0, "Cubic", 19)
