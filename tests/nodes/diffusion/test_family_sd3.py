"""SD3.5 end to end on tiny random weights: original-layout (MMDiT), diffusers-layout and scaled-fp8
files through UNETLoader, TripleCLIPLoader (clip_l + clip_g + t5xxl) encoding as ComfyUI does, a
workflow shaped like ComfyUI's SD3.5 examples through the Engine and a live server, parity with
diffusers' StableDiffusion3Pipeline on the latents, SkipLayerGuidanceDiTSimple and loader errors."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from nodeloom.diffusion.families.sd3 import LATENT_SCALE, LATENT_SHIFT
from nodeloom.diffusion.flow import FlowSampling
from nodeloom.diffusion.schedules import calculate_sigmas
from nodeloom.diffusion.split_models import load_diffusion_model
from nodeloom.models.offload import dequantised_state_dict
from nodeloom.testing.tiny_sd3 import SD35_WORKFLOW, build_tiny_sd3
from tests.nodes.diffusion.family_helpers import engine_for, run_ok, run_served

PROMPT = SD35_WORKFLOW["5"]["inputs"]["text"]


@pytest.fixture(scope="module")
def sd3(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return root, build_tiny_sd3(root)


def _run(base: Path, models: Path, prompt: dict) -> object:
    with engine_for(base, models) as engine:
        return run_ok(engine, prompt)


def _model_space(latent: torch.Tensor) -> torch.Tensor:
    return (latent - LATENT_SHIFT) * LATENT_SCALE


def test_every_layout_loads_the_same_transformer(sd3):
    models, parts = sd3
    ref = parts["transformer"].state_dict()
    for key, tol in (("unet", 0.0), ("unet_diffusers", 0.0), ("unet_fp8", 1 / 16)):
        module, family = load_diffusion_model(models / "diffusion_models" / parts[key])
        got = dequantised_state_dict(module)
        assert family.name == "sd3" and set(got) == set(ref), key
        assert tuple(module.config.dual_attention_layers) == (0,) and module.config.qk_norm == "rms_norm"
        for name, value in ref.items():
            assert (got[name] - value).abs().max() <= tol * value.abs().max() + 1e-6, (key, name)


def test_triple_clip_encodes_as_comfyui_does_for_sd3(tmp_path, sd3):
    """CLIP-L and CLIP-G penultimate states side by side, zero-padded to T5's width, then T5's
    states (77 tokens); pooled = CLIP-L's pooler output ‖ CLIP-G's projected output."""
    from diffusers import StableDiffusion3Pipeline

    from nodeloom.diffusion.tokenizer import clip_tokenizer

    models, parts = sd3
    prompt = {k: SD35_WORKFLOW[k] for k in ("2", "5")}
    prompt["11"] = {"class_type": "PreviewAny", "inputs": {"source": ["5", 0]}}
    cond, extra = _run(tmp_path, models, prompt).value("5")[0]
    assert cond.shape == (1, 77 + 77, 128) and extra["pooled_output"].shape == (1, 32 + 64)
    tok, tok_g = clip_tokenizer(), clip_tokenizer()
    tok_g.pad_token = "!"  # CLIP-G pads with id 0, as SD3's second tokenizer does
    pipe = StableDiffusion3Pipeline(transformer=parts["transformer"], scheduler=None, vae=parts["vae"],
                                    text_encoder=parts["clip_l"], tokenizer=tok, text_encoder_2=parts["clip_g"],
                                    tokenizer_2=tok_g, text_encoder_3=parts["t5"], tokenizer_3=parts["tokenizer"])
    cpu = torch.device("cpu")
    g_states, g_pooled = pipe._get_clip_prompt_embeds(PROMPT, device=cpu, clip_model_index=1)
    t5 = pipe._get_t5_prompt_embeds(PROMPT, max_sequence_length=77, device=cpu)
    ids = tok(PROMPT, padding="max_length", max_length=77, return_tensors="pt").input_ids
    l_out = parts["clip_l"](ids, output_hidden_states=True)  # the pipeline's recipe (it wants CLIP-L with a projection)
    assert (cond[:, :77, :32] - l_out.hidden_states[-2]).abs().max() < 1e-5
    assert (cond[:, :77, 32:96] - g_states).abs().max() < 1e-5
    assert not cond[:, :77, 96:].any()
    assert (cond[:, 77:] - t5).abs().max() < 1e-5
    assert (extra["pooled_output"][:, :32] - l_out.pooler_output).abs().max() < 1e-5
    assert (extra["pooled_output"][:, 32:] - g_pooled).abs().max() < 1e-5


@pytest.mark.parametrize("unet", ["unet", "unet_diffusers"])
def test_latents_match_the_diffusers_pipeline(tmp_path, sd3, unet):
    """Noise: a CPU float32 ``torch.randn`` of the [1,16,8,8] latent from a generator seeded with the
    seed, on both sides (σ₀ = 1, so the start is the noise itself). The pipeline gets our prompt
    states and pooled vectors, and the same sigmas (ModelSamplingSD3 shift 3, sgm_uniform)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline

    models, parts = sd3
    prompt = copy.deepcopy(SD35_WORKFLOW)
    prompt["1"]["inputs"]["unet_name"] = parts[unet]
    result = _run(tmp_path, models, prompt)
    ours = _model_space(result.value("8")["samples"])
    (pos, pos_extra), (neg, neg_extra) = result.value("5")[0], result.value("6")[0]
    pipe = StableDiffusion3Pipeline(transformer=parts["transformer"], scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0),
                                    vae=parts["vae"], text_encoder=None, tokenizer=None, text_encoder_2=None,
                                    tokenizer_2=None, text_encoder_3=None, tokenizer_3=None)
    sigmas = calculate_sigmas(FlowSampling(shift=3.0, multiplier=1000.0), "sgm_uniform", 4)
    assert float(sigmas[0]) == pytest.approx(1.0)
    theirs = pipe(prompt_embeds=pos, negative_prompt_embeds=neg, pooled_prompt_embeds=pos_extra["pooled_output"],
                  negative_pooled_prompt_embeds=neg_extra["pooled_output"], height=64, width=64, num_inference_steps=4,
                  sigmas=sigmas[:-1].tolist(), guidance_scale=4.0, generator=torch.Generator().manual_seed(5),
                  output_type="latent").images
    assert theirs.shape == ours.shape == (1, 16, 8, 8)
    assert (ours - theirs).abs().max() < 1e-4


def test_template_workflow_runs_through_the_engine_and_a_live_server(tmp_path, sd3):
    models, _ = sd3
    image = _run(tmp_path / "engine", models, copy.deepcopy(SD35_WORKFLOW)).value("9")
    assert image.shape == (1, 64, 64, 3) and image.std() > 0.01
    entry = run_served(tmp_path / "served", models, copy.deepcopy(SD35_WORKFLOW))
    assert entry["outputs"]["10"]["images"][0]["filename"].startswith("sd3.5")


def test_skip_layer_guidance_skips_blocks_only_in_the_unguided_pass(tmp_path, sd3):
    """Through the node, the negative pass equals the transformer called with ``skip_layers`` and the
    positive pass the plain transformer; the sampled result changes; an empty list changes nothing."""
    from nodeloom.diffusion.sampling import CondEntry, ModelCall
    from nodeloom.nodes.diffusion.skip_layer import SkipLayerGuidanceDiTSimple

    models, parts = sd3
    module, family = load_diffusion_model(models / "diffusion_models" / parts["unet"])
    from nodeloom.diffusion.split_models import model_value

    model = model_value(module, family, parts["unet"])
    (patched,) = SkipLayerGuidanceDiTSimple.execute(model, 0.0, 1.0, "1", "")
    assert SkipLayerGuidanceDiTSimple.execute(model, 0.0, 1.0, "", "")[0] is model
    gen = torch.Generator().manual_seed(0)
    x, ctx, pooled = torch.randn(2, 16, 8, 8, generator=gen), torch.randn(2, 10, 128, generator=gen), torch.randn(1, 96)
    entries = [CondEntry(ctx[:1], {"pooled_output": pooled}, (64, 64), 1.0, uncond=True),
               CondEntry(ctx[1:], {"pooled_output": pooled}, (64, 64), 1.0)]
    sigma = torch.tensor(0.5)
    with torch.no_grad():
        out = patched.adapter(module, x, sigma, ModelCall(entries, ctx, None))
        t = torch.tensor([500.0])
        skipped = module(x[:1], ctx[:1], pooled, t, skip_layers=[1], return_dict=False)[0]
        plain = module(x[1:], ctx[1:], pooled, t, return_dict=False)[0]
    assert (out[:1] - skipped).abs().max() < 1e-5 and (out[1:] - plain).abs().max() < 1e-5
    assert (skipped - module(x[:1], ctx[:1], pooled, t, return_dict=False)[0]).abs().max() > 1e-4
    prompt = copy.deepcopy(SD35_WORKFLOW)
    prompt["11"] = {"class_type": "SkipLayerGuidanceDiTSimple", "inputs": {"model": ["4", 0], "double_layers": "1",
                                                                           "single_layers": "", "start_percent": 0.0,
                                                                           "end_percent": 1.0}}
    prompt["8"]["inputs"]["model"] = ["11", 0]
    with_slg = _run(tmp_path / "slg", models, prompt).value("8")["samples"]
    plain_run = _run(tmp_path / "plain", models, copy.deepcopy(SD35_WORKFLOW)).value("8")["samples"]
    assert (with_slg - plain_run).abs().max() > 1e-4


def test_loader_errors_name_the_file_and_folder(tmp_path, sd3):
    from nodeloom.nodes.diffusion.split_loaders import TripleCLIPLoader

    models, parts = sd3
    bad = tmp_path / "models"
    for sub in ("diffusion_models", "text_encoders", "tokenizers"):
        (bad / sub).mkdir(parents=True)
    data = (models / "diffusion_models" / parts["unet"]).read_bytes()
    (bad / "diffusion_models" / "cut.safetensors").write_bytes(data[: len(data) // 2])
    for name in ("tiny_clip_l", "tiny_clip_g", "tiny_t5xxl"):
        (bad / "text_encoders" / f"{name}.safetensors").symlink_to(models / "text_encoders" / f"{name}.safetensors")
    (bad / "diffusion_models" / "vae.safetensors").symlink_to(models / "vae" / "tiny_sd3_vae.safetensors")
    prompt = {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "cut.safetensors", "weight_dtype": "default"}}}
    cases = [("cut.safetensors", "truncated"), ("vae.safetensors", "VAELoader")]
    with engine_for(tmp_path / "base", bad) as engine:
        for name, expected in cases:
            prompt["1"]["inputs"]["unet_name"] = name
            prompt["2"] = {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}
            result = engine.run(prompt)
            message = " ".join(str(e.get("exception_message", e)) for e in result.errors)
            assert result.status != "success" and name in message and expected in message, message
        # T5 without its tokenizer folder: the error names the folders searched
        triple = {"2": {"class_type": "TripleCLIPLoader", "inputs": copy.deepcopy(SD35_WORKFLOW["2"]["inputs"])},
                  "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}}}
        result = engine.run(triple)
        message = " ".join(str(e.get("exception_message", e)) for e in result.errors)
        assert result.status != "success" and "tokenizers" in message and "t5" in message, message
    assert TripleCLIPLoader.SCHEMA.node_id == "TripleCLIPLoader"


#: the official SD3.5 template's graph (sd3.5_simple_example.json): one all-in-one checkpoint
CHECKPOINT_WORKFLOW = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sd3.5_medium_aio.safetensors"}},
    "16": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["4", 1], "text": PROMPT}},
    "40": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["4", 1], "text": ""}},
    "53": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "3": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "seed": 5, "steps": 4, "cfg": 4.0,
                                               "sampler_name": "euler", "scheduler": "sgm_uniform",
                                               "positive": ["16", 0], "negative": ["40", 0], "latent_image": ["53", 0],
                                               "denoise": 1.0}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "ComfyUI"}},
}


def test_all_in_one_checkpoint_equals_the_split_files(tmp_path, sd3):
    """CheckpointLoaderSimple on an SD3.5 all-in-one file (told from its keys) gives the same latents
    as the split files with ModelSamplingSD3 at 3.0 (the family's default schedule), and runs served."""
    models, _ = sd3
    whole = _run(tmp_path / "aio", models, copy.deepcopy(CHECKPOINT_WORKFLOW))
    split = _run(tmp_path / "split", models, copy.deepcopy(SD35_WORKFLOW))
    assert (whole.value("3")["samples"] - split.value("8")["samples"]).abs().max() < 1e-5
    assert (whole.value("8") - split.value("9")).abs().max() < 1e-5
    entry = run_served(tmp_path / "served", models, copy.deepcopy(CHECKPOINT_WORKFLOW))
    assert entry["outputs"]["9"]["images"][0]["filename"].startswith("ComfyUI")


def test_all_in_one_checkpoint_without_clips_is_refused_by_name(tmp_path, sd3):
    from safetensors.torch import load_file, save_file

    models, parts = sd3
    bad = tmp_path / "models"
    (bad / "checkpoints").mkdir(parents=True)
    sd = load_file(str(models / "checkpoints" / parts["checkpoint"]))
    save_file({k: v for k, v in sd.items() if not k.startswith("text_encoders.clip_g.")},
              str(bad / "checkpoints" / "no_clip_g.safetensors"))
    prompt = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "no_clip_g.safetensors"}},
              "5": {"class_type": "PreviewAny", "inputs": {"source": ["4", 1]}}}
    with engine_for(tmp_path / "base", bad) as engine:
        result = engine.run(prompt)
    message = " ".join(str(e.get("exception_message", e)) for e in result.errors)
    assert result.status != "success" and "no_clip_g.safetensors" in message and "TripleCLIPLoader" in message, message


def test_clip_files_in_any_order_and_without_t5(tmp_path, sd3):
    """TripleCLIPLoader tells CLIP-L from CLIP-G by width whatever the order; DualCLIPLoader `sd3`
    (clip_l + clip_g) pads the CLIP states to 4096 with no T5 tokens, as ComfyUI does."""
    models, _ = sd3
    swapped = {k: SD35_WORKFLOW[k] for k in ("2", "5")}
    swapped["2"] = {"class_type": "TripleCLIPLoader", "inputs": {"clip_name1": "tiny_t5xxl.safetensors",
                                                                 "clip_name2": "tiny_clip_g.safetensors",
                                                                 "clip_name3": "tiny_clip_l.safetensors"}}
    swapped["11"] = {"class_type": "PreviewAny", "inputs": {"source": ["5", 0]}}
    dual = copy.deepcopy(swapped)
    dual["2"] = {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "tiny_clip_g.safetensors",
                                                            "clip_name2": "tiny_clip_l.safetensors", "type": "sd3"}}
    plain = {k: SD35_WORKFLOW[k] for k in ("2", "5")} | {"11": swapped["11"]}
    ref, ref_extra = _run(tmp_path / "ref", models, plain).value("5")[0]
    got, got_extra = _run(tmp_path / "swapped", models, swapped).value("5")[0]
    assert (got - ref).abs().max() == 0 and (got_extra["pooled_output"] - ref_extra["pooled_output"]).abs().max() == 0
    clip_only, extra = _run(tmp_path / "dual", models, dual).value("5")[0]
    assert clip_only.shape == (1, 77, 4096) and not clip_only[..., 96:].any()
    assert (clip_only[..., :96] - ref[:, :77, :96]).abs().max() == 0
    assert (extra["pooled_output"] - ref_extra["pooled_output"]).abs().max() == 0


def test_custom_sampling_with_manual_sigmas_equals_the_ksampler(tmp_path, sd3):
    """The SD3.5 graph through SamplerCustomAdvanced: ManualSigmas typed from the sgm_uniform schedule
    and a CFGGuider equal the KSampler; DualCFGGuider (regular) with cond2 = the negative and
    cfg_cond2_negative 1 equals it too (cond2 − negative cancels)."""
    models, _ = sd3
    sigmas = calculate_sigmas(FlowSampling(shift=3.0, multiplier=1000.0), "sgm_uniform", 4)
    prompt = copy.deepcopy(SD35_WORKFLOW)
    prompt.update({
        "20": {"class_type": "ManualSigmas", "inputs": {"sigmas": ", ".join(f"{float(s):.9g}" for s in sigmas)}},
        "21": {"class_type": "RandomNoise", "inputs": {"noise_seed": 5}},
        "22": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "23": {"class_type": "CFGGuider", "inputs": {"model": ["4", 0], "positive": ["5", 0], "negative": ["6", 0],
                                                     "cfg": 4.0}},
        "24": {"class_type": "DualCFGGuider", "inputs": {"model": ["4", 0], "cond1": ["5", 0], "cond2": ["6", 0],
                                                         "negative": ["6", 0], "cfg_conds": 4.0,
                                                         "cfg_cond2_negative": 1.0, "style": "regular"}},
        "25": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["21", 0], "guider": ["23", 0],
                                                                 "sampler": ["22", 0], "sigmas": ["20", 0],
                                                                 "latent_image": ["7", 0]}},
        "26": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["21", 0], "guider": ["24", 0],
                                                                 "sampler": ["22", 0], "sigmas": ["20", 0],
                                                                 "latent_image": ["7", 0]}},
        "27": {"class_type": "PreviewAny", "inputs": {"source": ["25", 0]}},
        "28": {"class_type": "PreviewAny", "inputs": {"source": ["26", 0]}},
    })
    result = _run(tmp_path, models, prompt)
    ksampler = result.value("8")["samples"]
    assert (result.value("25")["samples"] - ksampler).abs().max() < 1e-5
    assert (result.value("26")["samples"] - ksampler).abs().max() < 1e-5


def test_scaled_fp8_all_in_one_checkpoint_keeps_its_mmdit_fp8(tmp_path, sd3):
    """An all-in-one file whose MMDiT is ComfyUI's scaled fp8 (as ``sd3.5_large_fp8_scaled``): its layers
    stay fp8 with their scales, as UNETLoader keeps the split scaled-fp8 file, and the template's graph
    equals the split files with that UNet to 1e-5."""
    from safetensors.torch import load_file, save_file

    from nodeloom.models.offload import fp8_bytes
    from nodeloom.testing.tiny_families import scaled_fp8

    models, parts = sd3
    sd = load_file(str(models / "checkpoints" / parts["checkpoint"]))
    cut = "model.diffusion_model."
    mmdit = {k[len(cut):]: v for k, v in sd.items() if k.startswith(cut)}
    save_file({**scaled_fp8(mmdit, cut), **{k: v for k, v in sd.items() if not k.startswith(cut)}},
              str(models / "checkpoints" / "tiny_sd3.5_fp8_scaled_aio.safetensors"))
    whole = copy.deepcopy(CHECKPOINT_WORKFLOW)
    whole["4"]["inputs"]["ckpt_name"] = "tiny_sd3.5_fp8_scaled_aio.safetensors"
    split = copy.deepcopy(SD35_WORKFLOW)
    split["1"]["inputs"]["unet_name"] = parts["unet_fp8"]
    with engine_for(tmp_path, models) as engine:
        got, want = run_ok(engine, whole), run_ok(engine, split)
        stored, total = fp8_bytes(got.value("4").unet)
        assert 0 < stored < total and (stored, total) == fp8_bytes(load_diffusion_model(
            models / "diffusion_models" / parts["unet_fp8"])[0])
    assert (got.value("3")["samples"] - want.value("8")["samples"]).abs().max() < 1e-5
