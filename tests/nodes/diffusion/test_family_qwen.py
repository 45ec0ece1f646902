"""Qwen-Image and Qwen-Image-Edit end to end on tiny random weights: the split files as ComfyUI
users have them, the official templates' node types and wiring through the Engine and a live
server, parity with diffusers' QwenImagePipeline / QwenImageEditPipeline / QwenImageEditPlusPipeline
on the latents, LoRA files, and the loaders' errors."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from nodeloom import Engine
from nodeloom.diffusion.families.qwen import latent_stats
from nodeloom.diffusion.flow import FlowSampling
from nodeloom.diffusion.qwen_text import EDIT_PLUS_TEMPLATE, EDIT_TEMPLATE, T2I_TEMPLATE, template_start
from nodeloom.diffusion.schedules import calculate_sigmas
from nodeloom.diffusion.split_models import load_diffusion_model
from nodeloom.models.offload import dequantised_state_dict
from nodeloom.testing.tiny_qwen import (
    QWEN_IMAGE_EDIT_PLUS_WORKFLOW,
    QWEN_IMAGE_EDIT_WORKFLOW,
    QWEN_IMAGE_WORKFLOW,
    build_tiny_qwen_image,
    vl_processor,
)
from tests.nodes.diffusion.family_helpers import engine_for, lora_pair, run_ok, run_served, write_merged


@pytest.fixture(scope="module")
def qwen(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return root, build_tiny_qwen_image(root)


def _inputs(base: Path, *sizes: tuple[str, int]) -> None:
    """Real photos (scikit-image's astronaut and cat) as square PNGs in the engine's input folder."""
    from PIL import Image
    from skimage import data

    (base / "input").mkdir(parents=True, exist_ok=True)
    for (name, size), photo in zip(sizes, (data.astronaut(), data.chelsea()[:, 75:375])):
        Image.fromarray(photo).resize((size, size), Image.BICUBIC).save(base / "input" / name)


def _model_space(raw: torch.Tensor) -> torch.Tensor:
    """A LATENT's samples in model space; a VAE-encoded image is a one-frame clip, as in ComfyUI."""
    raw = raw[:, :, 0] if raw.ndim == 5 else raw
    scale, shift = latent_stats()
    return (raw - shift) * scale


def _drop(tokenizer: object, template: str) -> int:
    """The template tokens ComfyUI's rule drops with this tokenizer (diffusers hard-codes 34 / 64,
    the same count with Qwen's real tokenizer)."""
    ids = tokenizer(template.format("x"), add_special_tokens=False).input_ids
    return template_start(ids, tokenizer.convert_tokens_to_ids("<|im_start|>"),
                          tokenizer("user\n", add_special_tokens=False).input_ids)


def _pipeline(cls_name: str, parts: dict, template: str) -> object:
    import diffusers

    kwargs = {"processor": vl_processor(parts["tokenizer"])} if "Edit" in cls_name else {}
    pipe = getattr(diffusers, cls_name)(scheduler=diffusers.FlowMatchEulerDiscreteScheduler(shift=1.0), vae=parts["vae"],
                                        text_encoder=parts["text_encoder"], tokenizer=parts["tokenizer"],
                                        transformer=parts["transformer"], **kwargs)
    pipe.prompt_template_encode_start_idx = _drop(parts["tokenizer"], template)
    return pipe


def _their_latents(pipe: object, steps: int, seed: int, **kwargs: object) -> torch.Tensor:
    """diffusers' latents along ComfyUI's schedule (ModelSamplingAuraFlow 3.1, simple), unpacked."""
    sigmas = calculate_sigmas(FlowSampling(shift=3.1, multiplier=1.0), "simple", steps)
    packed = pipe(height=64, width=64, num_inference_steps=steps, sigmas=sigmas[:-1].tolist(), true_cfg_scale=1.0,
                  generator=torch.Generator().manual_seed(seed), output_type="latent", **kwargs).images
    return pipe._unpack_latents(packed, 64, 64, pipe.vae_scale_factor)[:, :, 0]


def test_template_workflow_runs_through_the_engine(tmp_path, qwen):
    with engine_for(tmp_path, qwen[0]) as engine:
        result = run_ok(engine, copy.deepcopy(QWEN_IMAGE_WORKFLOW))
        saved = result.outputs["10"]["images"]
        assert (engine.paths.output_dir / saved[0]["subfolder"] / saved[0]["filename"]).is_file()
        image = result.value("9")
    assert image.shape == (1, 64, 64, 3)
    assert image.std() > 0.01


@pytest.mark.parametrize("unet", ["unet", "unet_original"])
def test_latents_match_the_diffusers_pipeline(tmp_path, qwen, unet):
    """Same seed: the initial noise is a CPU float32 ``torch.randn`` of the latent's shape from a
    generator seeded with ``seed`` on both sides (diffusers draws ``[B, 1, 16, h, w]``, the same
    numbers in the same order as ComfyUI's ``[B, 16, h, w]``). cfg 1: diffusers' true CFG rescales
    the guided velocity to the positive one's norm, which ComfyUI's CFG does not."""
    models, parts = qwen
    prompt = copy.deepcopy(QWEN_IMAGE_WORKFLOW)
    prompt["1"]["inputs"]["unet_name"] = parts[unet]
    prompt["8"]["inputs"]["cfg"] = 1.0
    with engine_for(tmp_path, models) as engine:
        ours = _model_space(run_ok(engine, prompt).value("8")["samples"])
    theirs = _their_latents(_pipeline("QwenImagePipeline", parts, T2I_TEMPLATE), 4, 7,
                            prompt=QWEN_IMAGE_WORKFLOW["5"]["inputs"]["text"])
    assert theirs.shape == ours.shape
    assert (ours - theirs).abs().max() < 1e-4


def test_edit_latents_match_the_diffusers_edit_pipeline(tmp_path, qwen):
    """TextEncodeQwenImageEdit on a 1024² photo (the node's own target size, so neither side
    resizes it): vision tokens, prompt template and reference latent as QwenImageEditPipeline's."""
    from PIL import Image

    models, parts = qwen
    _inputs(tmp_path, ("edit_input.png", 1024))
    prompt = copy.deepcopy(QWEN_IMAGE_EDIT_WORKFLOW)
    prompt["12"] = {"class_type": "ImageScale", "inputs": {"image": ["11", 0], "upscale_method": "area", "width": 64,
                                                           "height": 64, "crop": "disabled"}}
    prompt["5"]["inputs"]["image"] = ["11", 0]
    prompt["6"] = {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["5", 0]}}
    prompt["8"]["inputs"]["cfg"] = 1.0
    with engine_for(tmp_path, models) as engine:
        ours = _model_space(run_ok(engine, prompt).value("8")["samples"])
    theirs = _their_latents(_pipeline("QwenImageEditPipeline", parts, EDIT_TEMPLATE), prompt["8"]["inputs"]["steps"],
                            3, image=Image.open(tmp_path / "input" / "edit_input.png"), prompt=prompt["5"]["inputs"]["prompt"])
    assert (ours - theirs).abs().max() < 1e-4


def test_edit_template_workflow_runs_through_the_engine(tmp_path, qwen):
    _inputs(tmp_path, ("edit_input.png", 96))
    with engine_for(tmp_path, qwen[0]) as engine:
        result = run_ok(engine, copy.deepcopy(QWEN_IMAGE_EDIT_WORKFLOW))
        cond = result.value("5")
    assert result.value("9").shape[1:] == (96, 96, 3)  # ImageScaleToTotalPixels: 0.01 MP in steps of 32
    (ref,) = cond[0][1]["reference_latents"]
    assert ref.shape == (1, 16, 1, 128, 128)  # about 1024² pixels, a one-frame clip as in ComfyUI


def test_edit_plus_template_workflow_runs_through_a_live_server(tmp_path, qwen):
    _inputs(tmp_path, ("edit_input.png", 96), ("edit_second.png", 80))
    entry = run_served(tmp_path, qwen[0], copy.deepcopy(QWEN_IMAGE_EDIT_PLUS_WORKFLOW))
    assert entry["outputs"]["10"]["images"][0]["filename"].startswith("qwen-image-edit")


def test_template_workflow_runs_through_a_live_server(tmp_path, qwen):
    entry = run_served(tmp_path, qwen[0], copy.deepcopy(QWEN_IMAGE_WORKFLOW))
    assert entry["outputs"]["10"]["images"][0]["filename"].startswith("qwen-image")


def test_scaled_fp8_file_loads_dequantised(qwen):
    models, parts = qwen
    module, family = load_diffusion_model(models / "diffusion_models" / parts["unet_fp8"])
    assert family.name == "qwen_image"
    ref, got = parts["transformer"].state_dict(), dequantised_state_dict(module)
    assert set(ref) == set(got)
    for key, value in ref.items():  # e4m3 keeps 3 mantissa bits: within 1/16 of the layer's largest weight
        assert (got[key] - value).abs().max() <= value.abs().max() / 16 + 1e-6, key


def _error(engine: Engine, prompt: dict, node: str) -> str:
    result = engine.run(prompt)
    assert result.status == "error"
    errors = [e for e in result.errors if e.get("node_id") == node]
    assert errors, result.errors
    return errors[0]["exception_message"]


def test_loader_errors_name_the_file_and_the_right_node(tmp_path, qwen):
    models, parts = qwen
    broken = tmp_path / "broken_models"
    (broken / "diffusion_models").mkdir(parents=True)
    for sub in ("vae", "tokenizers", "text_encoders"):
        (broken / sub).symlink_to(models / sub, target_is_directory=True)
    (broken / "diffusion_models" / "vae_here.safetensors").symlink_to(models / "vae" / parts["vae_file"])
    prompt = copy.deepcopy(QWEN_IMAGE_WORKFLOW)
    prompt["1"]["inputs"]["unet_name"] = "vae_here.safetensors"
    with engine_for(tmp_path / "engine", broken) as engine:
        message = _error(engine, prompt, "1")
        assert "vae_here.safetensors" in message and "txt_norm.weight" in message
    wrong = copy.deepcopy(QWEN_IMAGE_WORKFLOW)
    wrong["2"]["inputs"]["type"] = "lumina2"
    with engine_for(tmp_path / "engine2", models) as engine:
        message = _error(engine, wrong, "2")
    assert parts["clip"] in message and "qwen_image" in message


def test_text_only_encoder_runs_text_to_image_and_explains_edits(tmp_path, qwen):
    """A Qwen2.5-VL file without its vision tower encodes prompts; asked to read an image it says why not."""
    from safetensors.torch import load_file, save_file

    models, parts = qwen
    sd = load_file(str(models / "text_encoders" / parts["clip"]))
    save_file({k: v for k, v in sd.items() if not k.startswith("visual.")},
              str(models / "text_encoders" / "text_only.safetensors"))
    _inputs(tmp_path, ("edit_input.png", 64))
    t2i, edit = copy.deepcopy(QWEN_IMAGE_WORKFLOW), copy.deepcopy(QWEN_IMAGE_EDIT_WORKFLOW)
    t2i["2"]["inputs"]["clip_name"] = edit["2"]["inputs"]["clip_name"] = "text_only.safetensors"
    with engine_for(tmp_path, models) as engine:
        with_vision = run_ok(engine, copy.deepcopy(QWEN_IMAGE_WORKFLOW)).value("5")[0][0]
        assert torch.allclose(run_ok(engine, t2i).value("5")[0][0], with_vision, atol=1e-5)
        message = _error(engine, edit, "5")
    assert "vision tower" in message


def test_peft_and_kohya_loras_equal_their_merged_weights(tmp_path, qwen):
    """A diffusers/PEFT LoRA (``transformer.transformer_blocks.0.attn.to_q`` lora_A/B), a kohya one
    (``lora_unet_transformer_blocks_1_img_mlp_net_2``, alpha 2, rank 4) and one as the Lightning
    LoRAs ship (``diffusion_model.transformer_blocks.1.attn.add_v_proj`` lora_down/up, alpha 8) at
    strength 0.8 equal the merged weights."""
    from safetensors.torch import save_file

    models, parts = qwen
    base = {k: v.clone() for k, v in parts["transformer"].state_dict().items()}
    down1, up1 = lora_pair(base, "transformer_blocks.0.attn.to_q.weight", seed=1)
    down2, up2 = lora_pair(base, "transformer_blocks.1.img_mlp.net.2.weight", seed=2)
    down3, up3 = lora_pair(base, "transformer_blocks.1.attn.add_v_proj.weight", seed=3)
    (models / "loras").mkdir(exist_ok=True)
    save_file({"transformer.transformer_blocks.0.attn.to_q.lora_A.weight": down1,
               "transformer.transformer_blocks.0.attn.to_q.lora_B.weight": up1},
              str(models / "loras" / "qwen_peft.safetensors"))
    save_file({"lora_unet_transformer_blocks_1_img_mlp_net_2.lora_down.weight": down2,
               "lora_unet_transformer_blocks_1_img_mlp_net_2.lora_up.weight": up2,
               "lora_unet_transformer_blocks_1_img_mlp_net_2.alpha": torch.tensor(2.0)},
              str(models / "loras" / "qwen_kohya.safetensors"))
    save_file({"diffusion_model.transformer_blocks.1.attn.add_v_proj.lora_down.weight": down3,
               "diffusion_model.transformer_blocks.1.attn.add_v_proj.lora_up.weight": up3,
               "diffusion_model.transformer_blocks.1.attn.add_v_proj.alpha": torch.tensor(8.0)},
              str(models / "loras" / "qwen_lightning.safetensors"))
    write_merged(base, {"transformer_blocks.0.attn.to_q.weight": 0.8 * up1 @ down1,
                        "transformer_blocks.1.img_mlp.net.2.weight": 0.8 * 0.5 * up2 @ down2,
                        "transformer_blocks.1.attn.add_v_proj.weight": 0.8 * 2.0 * up3 @ down3},
                 models / "diffusion_models" / "qwen_merged.safetensors")
    with_lora = copy.deepcopy(QWEN_IMAGE_WORKFLOW)
    with_lora["12"] = {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["1", 0], "lora_name":
                                                                       "qwen_peft.safetensors", "strength_model": 0.8}}
    with_lora["13"] = {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["12", 0], "lora_name":
                                                                       "qwen_kohya.safetensors", "strength_model": 0.8}}
    with_lora["17"] = {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["13", 0], "lora_name":
                                                                       "qwen_lightning.safetensors", "strength_model": 0.8}}
    with_lora["4"]["inputs"]["model"] = ["17", 0]
    merged = copy.deepcopy(QWEN_IMAGE_WORKFLOW)
    merged["1"]["inputs"]["unet_name"] = "qwen_merged.safetensors"
    with engine_for(tmp_path / "lora", models) as engine:
        a = run_ok(engine, with_lora).value("8")["samples"]
        plain = run_ok(engine, copy.deepcopy(QWEN_IMAGE_WORKFLOW)).value("8")["samples"]
    with engine_for(tmp_path / "merged", models) as engine:
        b = run_ok(engine, merged).value("8")["samples"]
    assert (a - b).abs().max() < 1e-4
    assert (a - plain).abs().max() > 1e-3



@pytest.mark.parametrize("method", ["index", "index_timestep_zero"])
def test_edit_plus_latents_match_the_diffusers_edit_plus_pipeline(tmp_path, qwen, method):
    """TextEncodeQwenImageEditPlus with two 384² photos (the vision encoder's own size on both sides)
    against QwenImageEditPlusPipeline; index_timestep_zero (the 2511 template) against the pipeline
    with diffusers' ``zero_cond_t``. diffusers scales the reference images to 1024² with PIL's
    resampling and ComfyUI with area averaging: the pipeline is handed ComfyUI's scaling, so both
    sides encode the same pixels."""
    import numpy as np
    import torch.nn.functional as F
    from PIL import Image

    models, parts = qwen
    _inputs(tmp_path, ("edit_input.png", 384), ("edit_second.png", 384))
    prompt = copy.deepcopy(QWEN_IMAGE_EDIT_PLUS_WORKFLOW)
    prompt["12"] = {"class_type": "ImageScale", "inputs": {"image": ["11", 0], "upscale_method": "area", "width": 64,
                                                           "height": 64, "crop": "disabled"}}
    prompt["5"]["inputs"]["image1"] = ["11", 0]
    prompt["16"] = {"class_type": "FluxKontextMultiReferenceLatentMethod",
                    "inputs": {"conditioning": ["5", 0], "reference_latents_method": method}}
    prompt["8"]["inputs"].update(cfg=1.0, positive=["16", 0])
    prompt["6"] = {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["5", 0]}}
    with engine_for(tmp_path, models) as engine:
        ours = _model_space(run_ok(engine, prompt).value("8")["samples"])
    transformer = copy.deepcopy(parts["transformer"])
    for module in (transformer, *transformer.transformer_blocks):
        module.zero_cond_t = method == "index_timestep_zero"
    pipe = _pipeline("QwenImageEditPlusPipeline", {**parts, "transformer": transformer}, EDIT_PLUS_TEMPLATE)

    def area(image: Image.Image, height: int, width: int) -> torch.Tensor:
        pixels = torch.from_numpy(np.array(image)).float().div(255).movedim(-1, 0)[None]
        return F.interpolate(pixels, size=(height, width), mode="area") * 2 - 1

    pipe.image_processor.preprocess = area
    images = [Image.open(tmp_path / "input" / n) for n in ("edit_input.png", "edit_second.png")]
    theirs = _their_latents(pipe, prompt["8"]["inputs"]["steps"], 3, image=images, prompt=prompt["5"]["inputs"]["prompt"])
    assert (ours - theirs).abs().max() < 1e-4
