"""Z-Image Turbo end to end on tiny random weights: the split files as ComfyUI users have them,
the frontend's default workflow (its template's node types and wiring) through the Engine and a
live server, and parity with diffusers' ZImagePipeline on the latents."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from nodeloom import Engine
from nodeloom.diffusion.flow import FlowSampling
from nodeloom.diffusion.schedules import calculate_sigmas
from nodeloom.diffusion.split_models import load_diffusion_model
from nodeloom.models.offload import dequantised_state_dict
from nodeloom.testing.tiny_families import ZIMAGE_TURBO_WORKFLOW, build_tiny_zimage
from tests.nodes.diffusion.family_helpers import engine_for, lora_pair, run_ok, run_served, write_merged

WORKFLOW = ZIMAGE_TURBO_WORKFLOW


@pytest.fixture(scope="module")
def zimage(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return root, build_tiny_zimage(root)


_engine, _run = engine_for, run_ok


def test_template_workflow_runs_through_the_engine(tmp_path, zimage):
    models, _ = zimage
    with _engine(tmp_path, models) as engine:
        result = _run(engine, copy.deepcopy(WORKFLOW))
        image = result.value("9")
        saved = result.outputs["10"]["images"]
        assert (engine.paths.output_dir / saved[0]["subfolder"] / saved[0]["filename"]).is_file()
    assert image.shape == (1, 64, 64, 3)
    assert image.std() > 0.01


def _pipeline(parts: dict) -> object:
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline

    return ZImagePipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=parts["vae"],
                          text_encoder=parts["text_encoder"], tokenizer=parts["tokenizer"],
                          transformer=parts["transformer"])


@pytest.mark.parametrize("unet", ["unet", "unet_diffusers"])
@pytest.mark.parametrize("cfg", [1.0, 3.0])
def test_latents_match_the_diffusers_pipeline(tmp_path, zimage, unet, cfg):
    """Same seed: the initial noise is a CPU float32 ``torch.randn`` of the latent's shape from a
    generator seeded with ``seed`` on both sides (ComfyUI's convention, diffusers' ``randn_tensor``);
    diffusers' ``guidance_scale`` g is ComfyUI's cfg − 1."""
    models, parts = zimage
    prompt = copy.deepcopy(WORKFLOW)
    prompt["1"]["inputs"]["unet_name"] = parts[unet]
    prompt["8"]["inputs"].update(sampler_name="euler", cfg=cfg)
    negative_text = "blurry, low quality"
    if cfg != 1.0:
        prompt["6"] = {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": negative_text}}
    with _engine(tmp_path, models) as engine:
        result = _run(engine, prompt)
        ours = result.value("8")["samples"]
    sigmas = calculate_sigmas(FlowSampling(shift=3.0, multiplier=1.0), "simple", 4)
    ours = (ours - 0.1159) * 0.3611  # LATENT holds raw VAE latents; the pipeline returns model-space ones
    pipe = _pipeline(parts)
    kwargs = {"negative_prompt": negative_text} if cfg != 1.0 else {}
    theirs = pipe(prompt=WORKFLOW["5"]["inputs"]["text"], height=64, width=64, num_inference_steps=4,
                  sigmas=sigmas[:-1].tolist(), guidance_scale=cfg - 1.0, generator=torch.Generator().manual_seed(7),
                  output_type="latent", **kwargs).images
    assert theirs.shape == ours.shape
    assert (ours - theirs).abs().max() < 1e-4


def test_scaled_fp8_file_loads_dequantised(zimage):
    models, parts = zimage
    module, family = load_diffusion_model(models / "diffusion_models" / parts["unet_fp8"])
    assert family.name == "z_image"
    ref, got = parts["transformer"].state_dict(), dequantised_state_dict(module)
    assert set(ref) == set(got)
    for key, value in ref.items():  # e4m3 keeps 3 mantissa bits: within 1/16 of the layer's largest weight
        assert (got[key] - value).abs().max() <= value.abs().max() / 16 + 1e-6, key


def test_fp8_weight_dtype_rounds_the_weights(zimage):
    models, parts = zimage
    module, _ = load_diffusion_model(models / "diffusion_models" / parts["unet"], "fp8_e4m3fn")
    assert module.layers[0].feed_forward.w1.weight.dtype == torch.float8_e4m3fn  # stored fp8
    w = dequantised_state_dict(module)["layers.0.feed_forward.w1.weight"]
    assert torch.equal(w, w.to(torch.float8_e4m3fn).float())
    assert not torch.equal(w, parts["transformer"].state_dict()["layers.0.feed_forward.w1.weight"])


def test_legacy_folder_names_and_symlinks(tmp_path, zimage):
    models, parts = zimage
    legacy = tmp_path / "legacy_models"
    (legacy / "unet").mkdir(parents=True)
    (legacy / "clip").mkdir()
    (legacy / "unet" / "linked.safetensors").symlink_to(models / "diffusion_models" / parts["unet"])
    (legacy / "clip" / "enc").symlink_to(models / "text_encoders", target_is_directory=True)
    for sub in ("vae", "tokenizers"):
        (legacy / sub).symlink_to(models / sub, target_is_directory=True)
    prompt = copy.deepcopy(WORKFLOW)
    prompt["1"]["inputs"]["unet_name"] = "linked.safetensors"
    prompt["2"]["inputs"]["clip_name"] = "enc/" + parts["clip"]
    with _engine(tmp_path / "engine", legacy) as engine:
        assert "linked.safetensors" in engine.paths.get_filename_list("diffusion_models")
        assert _run(engine, prompt).value("9").shape == (1, 64, 64, 3)


def test_template_workflow_runs_through_a_live_server(tmp_path, zimage):
    entry = run_served(tmp_path, zimage[0], copy.deepcopy(WORKFLOW))
    assert entry["outputs"]["10"]["images"][0]["filename"].startswith("z-image-turbo")


def _error(engine: Engine, prompt: dict, node: str) -> dict:
    checked = engine.validate(prompt)
    assert checked.ok, checked.node_errors
    result = engine.run(prompt, validated=checked)
    assert result.status == "error"
    errors = [e for e in result.errors if e.get("node_id") == node]
    assert errors, result.errors
    return errors[0]


def test_loader_errors_name_the_file_the_folder_and_the_right_node(tmp_path, zimage):
    models, parts = zimage
    broken = tmp_path / "broken_models"
    (broken / "diffusion_models").mkdir(parents=True)
    (broken / "text_encoders").mkdir()
    for sub in ("vae", "tokenizers"):
        (broken / sub).symlink_to(models / sub, target_is_directory=True)
    (broken / "diffusion_models" / "vae_here.safetensors").symlink_to(models / "vae" / parts["vae_file"])
    (broken / "diffusion_models" / "encoder_here.safetensors").symlink_to(models / "text_encoders" / parts["clip"])
    (broken / "text_encoders" / "unet_here.safetensors").symlink_to(models / "diffusion_models" / parts["unet"])
    data = (models / "diffusion_models" / parts["unet"]).read_bytes()
    (broken / "diffusion_models" / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    cases = [
        ("1", {"unet_name": "vae_here.safetensors"}, ["vae_here.safetensors", "VAELoader", "x_embedder.weight"]),
        ("1", {"unet_name": "encoder_here.safetensors"}, ["encoder_here.safetensors", "CLIPLoader"]),
        ("1", {"unet_name": "truncated.safetensors"}, ["truncated.safetensors", "truncated"]),
        ("2", {"clip_name": "unet_here.safetensors"}, ["unet_here.safetensors", "UNETLoader"]),
    ]
    with _engine(tmp_path / "engine", broken) as engine:
        for node, inputs, words in cases:
            prompt = copy.deepcopy(WORKFLOW)
            prompt["1"]["inputs"]["unet_name"] = "vae_here.safetensors"
            prompt["2"]["inputs"]["clip_name"] = "unet_here.safetensors"
            prompt[node]["inputs"].update(inputs)
            message = _error(engine, prompt, node)["exception_message"]
            for word in words:
                assert word in message, (word, message)
        checked = engine.validate(copy.deepcopy(WORKFLOW))  # a name that is not in the folder: a validation error
        assert not checked.ok and checked.node_errors["1"]["errors"][0]["type"] == "value_not_in_list"


def test_missing_tokenizer_and_wrong_type_are_explained(tmp_path, zimage):
    models, parts = zimage
    bare = tmp_path / "bare_models"
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (bare / sub).mkdir(parents=True)
    for sub, name in (("diffusion_models", parts["unet"]), ("text_encoders", parts["clip"]), ("vae", parts["vae_file"])):
        (bare / sub / name).symlink_to(models / sub / name)
    with _engine(tmp_path / "engine", bare) as engine:
        message = _error(engine, copy.deepcopy(WORKFLOW), "2")["exception_message"]
        assert "tokenizer" in message and str(bare / "tokenizers" / "qwen3") in message
    prompt = copy.deepcopy(WORKFLOW)
    prompt["2"] = {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": parts["clip"], "clip_name2": parts["clip"],
                                                              "type": "flux"}}
    with _engine(tmp_path / "engine2", models) as engine:
        message = _error(engine, prompt, "2")["exception_message"]
        assert "tiny_qwen3.safetensors" in message and "lumina2" in message


def test_kohya_and_trainer_loras_equal_their_merged_weights(tmp_path, zimage):
    """A kohya LoRA (``lora_unet_layers_0_attention_to_q``, alpha 2, rank 4) and a trainer-format one
    (``diffusion_model.layers.1.feed_forward.w1`` lora_A/B) at strength 0.8 equal the merged weights."""
    from safetensors.torch import save_file

    models, parts = zimage
    base = {k: v.clone() for k, v in parts["transformer"].state_dict().items()}
    down1, up1 = lora_pair(base, "layers.0.attention.to_q.weight", seed=1)
    down2, up2 = lora_pair(base, "layers.1.feed_forward.w1.weight", seed=2)
    (models / "loras").mkdir(exist_ok=True)
    save_file({"lora_unet_layers_0_attention_to_q.lora_down.weight": down1,
               "lora_unet_layers_0_attention_to_q.lora_up.weight": up1,
               "lora_unet_layers_0_attention_to_q.alpha": torch.tensor(2.0)},
              str(models / "loras" / "z_kohya.safetensors"))
    save_file({"diffusion_model.layers.1.feed_forward.w1.lora_A.weight": down2,
               "diffusion_model.layers.1.feed_forward.w1.lora_B.weight": up2},
              str(models / "loras" / "z_trainer.safetensors"))
    write_merged(base, {"layers.0.attention.to_q.weight": 0.8 * 0.5 * up1 @ down1,
                        "layers.1.feed_forward.w1.weight": 0.8 * up2 @ down2},
                 models / "diffusion_models" / "z_merged.safetensors")
    with_lora = copy.deepcopy(WORKFLOW)
    with_lora["12"] = {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["1", 0], "lora_name":
                                                                       "z_kohya.safetensors", "strength_model": 0.8}}
    with_lora["13"] = {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["12", 0], "lora_name":
                                                                       "z_trainer.safetensors", "strength_model": 0.8}}
    with_lora["4"]["inputs"]["model"] = ["13", 0]
    merged = copy.deepcopy(WORKFLOW)
    merged["1"]["inputs"]["unet_name"] = "z_merged.safetensors"
    with _engine(tmp_path / "lora", models) as engine:
        a = _run(engine, with_lora).value("8")["samples"]
        plain = _run(engine, copy.deepcopy(WORKFLOW)).value("8")["samples"]
    with _engine(tmp_path / "merged", models) as engine:
        b = _run(engine, merged).value("8")["samples"]
    assert (a - b).abs().max() < 1e-4
    assert (a - plain).abs().max() > 1e-3
