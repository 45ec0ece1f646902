"""HiDream I1/E1 end to end on tiny random weights: ComfyUI-layout, release-layout and scaled-fp8
files through UNETLoader, QuadrupleCLIPLoader (clip_l, clip_g, t5xxl, llama-3.1, in any order)
encoding as diffusers' HiDreamImagePipeline does, CLIPTextEncodeHiDream, the template workflow
through the Engine and a live server, parity with the pipeline on the latents, the E1 edit graph
(InstructPixToPixConditioning, DualCFGGuider) and loader and conditioning errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from nodeloom.models.offload import dequantised_state_dict
from nodeloom.diffusion.families.hidream import LATENT_SCALE, LATENT_SHIFT
from nodeloom.diffusion.flow import FlowSampling
from nodeloom.diffusion.schedules import calculate_sigmas
from nodeloom.diffusion.split_models import load_diffusion_model, model_value
from nodeloom.testing.tiny_hidream import HIDREAM_E1_WORKFLOW, HIDREAM_WORKFLOW, build_tiny_hidream
from tests.nodes.diffusion.family_helpers import (
    engine_for,
    lora_pair,
    official_template,
    run_ok,
    run_served,
    write_merged,
)

PROMPT = HIDREAM_WORKFLOW["91"]["inputs"]["text"]
NEGATIVE = HIDREAM_WORKFLOW["85"]["inputs"]["text"]
QUAD = HIDREAM_WORKFLOW["82"]["inputs"]


@pytest.fixture(scope="module")
def hidream(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return root, build_tiny_hidream(root)


def _run(base: Path, models: Path, prompt: dict) -> object:
    with engine_for(base, models) as engine:
        return run_ok(engine, prompt)


def _encoded(base: Path, models: Path, loader: dict, encoders: dict) -> object:
    """Run a loader and text-encode nodes (ids → node) with a preview each; the result."""
    prompt = {"82": loader, **encoders}
    prompt.update({f"p{k}": {"class_type": "PreviewAny", "inputs": {"source": [k, 0]}} for k in encoders})
    return _run(base, models, prompt)


def _pipeline(parts: dict, with_encoders: bool) -> object:
    from diffusers import FlowMatchEulerDiscreteScheduler, HiDreamImagePipeline
    from transformers import LlamaForCausalLM

    from nodeloom.diffusion.tokenizer import clip_tokenizer

    llama = None
    if with_encoders:
        llama = LlamaForCausalLM(parts["llama"].config).eval()
        llama.model.load_state_dict(parts["llama"].state_dict())
    enc = (lambda name: parts[name] if with_encoders else None)  # noqa: E731
    tok = (lambda value: value if with_encoders else None)  # noqa: E731
    pipe = HiDreamImagePipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=parts["vae"],
                                text_encoder=enc("clip_l"), tokenizer=tok(clip_tokenizer()),
                                text_encoder_2=enc("clip_g"), tokenizer_2=tok(clip_tokenizer()),
                                text_encoder_3=enc("t5"), tokenizer_3=tok(parts["t5_tokenizer"]),
                                text_encoder_4=llama, tokenizer_4=tok(parts["llama_tokenizer"]),
                                transformer=parts["transformer"])
    pipe.default_sample_size = 8  # the pipeline resizes to this area (× 8): 64², the tests' size
    return pipe


def test_every_layout_loads_the_same_transformer(hidream):
    models, parts = hidream
    ref = parts["transformer"].state_dict()
    for key, tol in (("unet", 0.0), ("unet_release", 0.0), ("unet_fp8", 1 / 16)):
        module, family = load_diffusion_model(models / "diffusion_models" / parts[key])
        got = dequantised_state_dict(module)  # an fp8 file's layers stay fp8 with their scale
        assert family.name == "hidream" and set(got) == set(ref), key
        assert list(module.config.llama_layers) == [0, 1, 2] and module.config.num_routed_experts == 4
        assert tuple(module.config.caption_channels) == (48, 32) and module.config.text_emb_dim == 96
        for name, value in ref.items():
            assert (got[name] - value).abs().max() <= tol * value.abs().max() + 1e-6, (key, name)


def test_quadruple_clip_encodes_as_the_diffusers_pipeline(tmp_path, hidream):
    """T5's 128 masked tokens as the conditioning tensor, CLIP-L ‖ CLIP-G projected pooled vectors,
    Llama's hidden layers after the embeddings as ``conditioning_llama3``; the files in the E1
    template's order (clip_g first) give the same."""
    models, parts = hidream
    encode = {"91": HIDREAM_WORKFLOW["91"]}
    result = _encoded(tmp_path / "a", models, HIDREAM_WORKFLOW["82"], encode)
    (cond, extra), = result.value("91")
    pipe = _pipeline(parts, with_encoders=True)
    cpu = torch.device("cpu")
    with torch.no_grad():
        t5 = pipe._get_t5_prompt_embeds(PROMPT, 128, cpu)
        pooled = torch.cat([pipe._get_clip_prompt_embeds(pipe.tokenizer, pipe.text_encoder, PROMPT, 128, cpu),
                            pipe._get_clip_prompt_embeds(pipe.tokenizer_2, pipe.text_encoder_2, PROMPT, 128, cpu)], -1)
        llama = pipe._get_llama3_prompt_embeds(PROMPT, 128, cpu)
    assert cond.shape == (1, 128, 48) and extra["pooled_output"].shape == (1, 96)
    assert extra["conditioning_llama3"].shape == (1, 3, 128, 32)
    assert (cond - t5).abs().max() < 1e-5
    assert (extra["pooled_output"] - pooled).abs().max() < 1e-5
    assert (extra["conditioning_llama3"].movedim(1, 0) - llama).abs().max() < 1e-5
    swapped = {"class_type": "QuadrupleCLIPLoader", "inputs": dict(HIDREAM_E1_WORKFLOW["42"]["inputs"])}
    (cond2, extra2), = _encoded(tmp_path / "b", models, swapped, encode).value("91")
    assert (cond2 - cond).abs().max() == 0 and (extra2["pooled_output"] - extra["pooled_output"]).abs().max() == 0
    assert (extra2["conditioning_llama3"] - extra["conditioning_llama3"]).abs().max() == 0


def test_text_encode_hidream_gives_each_encoder_its_prompt(tmp_path, hidream):
    """CLIPTextEncodeHiDream: each part equals the plain encoding of that encoder's own prompt."""
    models, _ = hidream
    texts = {"clip_l": "a red fox", "clip_g": "a castle on a hill", "t5xxl": "a bowl of fruit", "llama": "an astronaut"}
    encoders = {"20": {"class_type": "CLIPTextEncodeHiDream", "inputs": {"clip": ["82", 0], **texts}}}
    for i, text in enumerate(texts.values()):
        encoders[f"3{i}"] = {"class_type": "CLIPTextEncode", "inputs": {"clip": ["82", 0], "text": text}}
    result = _encoded(tmp_path, models, HIDREAM_WORKFLOW["82"], encoders)
    (cond, extra), = result.value("20")
    plain = [result.value(f"3{i}")[0] for i in range(4)]
    assert (extra["pooled_output"][:, :32] - plain[0][1]["pooled_output"][:, :32]).abs().max() == 0
    assert (extra["pooled_output"][:, 32:] - plain[1][1]["pooled_output"][:, 32:]).abs().max() == 0
    assert (cond - plain[2][0]).abs().max() == 0
    assert (extra["conditioning_llama3"] - plain[3][1]["conditioning_llama3"]).abs().max() == 0
    assert (cond - plain[0][0]).abs().max() > 1e-4


def test_comfyui_token_calls_give_each_part_its_prompt(tmp_path, hidream):
    """A pack doing what ComfyUI's CLIPTextEncodeHiDream does with ``clip.tokenize`` and
    ``encode_from_tokens_scheduled`` gets what CLIPTextEncodeHiDream gives."""
    from nodeloom.diffusion.split_models import load_text_encoders

    models, _ = hidream
    clip = load_text_encoders([models / "text_encoders" / QUAD[f"clip_name{i}"] for i in range(1, 5)], "hidream",
                              [models / "tokenizers"])
    texts = {"l": "a red fox", "g": "a castle on a hill", "t5xxl": "a bowl of fruit", "llama": "an astronaut"}
    tokens = clip.tokenize(texts["g"])
    for key in ("l", "t5xxl", "llama"):
        tokens[key] = clip.tokenize(texts[key])[key]
    (cond, extra), = clip.encode_from_tokens_scheduled(tokens)
    ref, ref_extra = clip.encode_conditioning("", texts=list(texts.values()))
    assert (cond - ref).abs().max() == 0
    assert all((extra[k] - ref_extra[k]).abs().max() == 0 for k in ("pooled_output", "conditioning_llama3"))
    assert clip.encode_from_tokens(tokens, return_dict=True)["conditioning_llama3"].shape == (1, 3, 128, 32)
    with pytest.raises(TypeError, match="tokenize"):
        clip.encode_from_tokens_scheduled({"l": []})


@pytest.mark.parametrize("unet", ["unet", "unet_release"])
def test_latents_match_the_diffusers_pipeline(tmp_path, hidream, unet):
    """Noise: a CPU float32 ``torch.randn`` of the [1,16,8,8] latent from a generator seeded with the
    seed, on both sides (σ₀ = 1). The pipeline gets our prompt states and the same sigmas
    (ModelSamplingSD3 shift 3, simple, euler), cfg 5 with the template's negative prompt."""
    models, parts = hidream
    prompt = copy.deepcopy(HIDREAM_WORKFLOW)
    prompt["94"]["inputs"]["unet_name"] = parts[unet]
    prompt["93"]["inputs"]["sampler_name"] = "euler"
    result = _run(tmp_path, models, prompt)
    ours = (result.value("93")["samples"] - LATENT_SHIFT) * LATENT_SCALE
    (pos, pos_extra), = result.value("91")
    (neg, neg_extra), = result.value("85")
    sigmas = calculate_sigmas(FlowSampling(shift=3.0, multiplier=1000.0), "simple", 4)
    assert float(sigmas[0]) == pytest.approx(1.0)
    with torch.no_grad():
        theirs = _pipeline(parts, with_encoders=False)(
            prompt_embeds_t5=pos, negative_prompt_embeds_t5=neg,
            prompt_embeds_llama3=pos_extra["conditioning_llama3"].movedim(1, 0),
            negative_prompt_embeds_llama3=neg_extra["conditioning_llama3"].movedim(1, 0),
            pooled_prompt_embeds=pos_extra["pooled_output"], negative_pooled_prompt_embeds=neg_extra["pooled_output"],
            height=64, width=64, num_inference_steps=4, sigmas=sigmas[:-1].tolist(), guidance_scale=5.0,
            generator=torch.Generator().manual_seed(5), output_type="latent").images
    assert theirs.shape == ours.shape == (1, 16, 8, 8)
    assert (ours - theirs).abs().max() < 1e-4


def test_peft_and_comfyui_loras_equal_their_merged_weights(tmp_path, hidream):
    """A diffusers/PEFT LoRA (``transformer.double_stream_blocks.0.block.attn1.to_q`` lora_A/B) and
    one in ComfyUI's naming (``diffusion_model.single_stream_blocks.1.block.ff_i.shared_experts.w2``
    lora_down/up, alpha 2, rank 4) at strength 0.8 equal the merged weights."""
    from safetensors.torch import save_file

    models, parts = hidream
    base = {k: v.clone() for k, v in parts["transformer"].state_dict().items()}
    q, w2 = "double_stream_blocks.0.block.attn1.to_q", "single_stream_blocks.1.block.ff_i.shared_experts.w2"
    down1, up1 = lora_pair(base, q + ".weight", seed=1)
    down2, up2 = lora_pair(base, w2 + ".weight", seed=2)
    (models / "loras").mkdir(exist_ok=True)
    save_file({f"transformer.{q}.lora_A.weight": down1, f"transformer.{q}.lora_B.weight": up1},
              str(models / "loras" / "hidream_peft.safetensors"))
    save_file({f"diffusion_model.{w2}.lora_down.weight": down2, f"diffusion_model.{w2}.lora_up.weight": up2,
               f"diffusion_model.{w2}.alpha": torch.tensor(2.0)}, str(models / "loras" / "hidream_comfy.safetensors"))
    write_merged(base, {q + ".weight": 0.8 * up1 @ down1, w2 + ".weight": 0.8 * 0.5 * up2 @ down2},
                 models / "diffusion_models" / "hidream_merged.safetensors")
    with_lora = copy.deepcopy(HIDREAM_WORKFLOW)
    with_lora["12"] = {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["94", 0], "lora_name":
                                                                       "hidream_peft.safetensors", "strength_model": 0.8}}
    with_lora["13"] = {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["12", 0], "lora_name":
                                                                       "hidream_comfy.safetensors", "strength_model": 0.8}}
    with_lora["84"]["inputs"]["model"] = ["13", 0]
    merged = copy.deepcopy(HIDREAM_WORKFLOW)
    merged["94"]["inputs"]["unet_name"] = "hidream_merged.safetensors"
    with engine_for(tmp_path / "lora", models) as engine:
        a = run_ok(engine, with_lora).value("93")["samples"]
        plain = run_ok(engine, copy.deepcopy(HIDREAM_WORKFLOW)).value("93")["samples"]
    with engine_for(tmp_path / "merged", models) as engine:
        b = run_ok(engine, merged).value("93")["samples"]
    assert (a - b).abs().max() < 1e-4
    assert (a - plain).abs().max() > 1e-3


def test_template_workflow_runs_through_the_engine_and_a_live_server(tmp_path, hidream):
    """The I1 template's graph as is (uni_pc, simple, cfg 5), and with the scaled-fp8 diffusion model,
    T5 and Llama files the templates name."""
    models, parts = hidream
    image = _run(tmp_path / "engine", models, copy.deepcopy(HIDREAM_WORKFLOW)).value("89")
    assert image.shape == (1, 64, 64, 3) and image.std() > 0.01
    fp8 = copy.deepcopy(HIDREAM_WORKFLOW)
    fp8["94"]["inputs"]["unet_name"] = parts["unet_fp8"]
    fp8["82"]["inputs"].update(clip_name3="tiny_t5xxl_fp8_e4m3fn_scaled.safetensors",
                               clip_name4="tiny_llama_3.1_8b_instruct_fp8_scaled.safetensors")
    entry = run_served(tmp_path / "served", models, fp8)
    assert entry["outputs"]["90"]["images"][0]["filename"].startswith("hidream")


def test_scaled_fp8_text_encoders_encode_close_to_the_full_precision_ones(tmp_path, hidream):
    models, _ = hidream
    encode = {"91": HIDREAM_WORKFLOW["91"]}
    (ref, ref_extra), = _encoded(tmp_path / "full", models, HIDREAM_WORKFLOW["82"], encode).value("91")
    fp8 = {"class_type": "QuadrupleCLIPLoader", "inputs": {**QUAD, "clip_name3": "tiny_t5xxl_fp8_e4m3fn_scaled.safetensors",
                                                           "clip_name4": "tiny_llama_3.1_8b_instruct_fp8_scaled.safetensors"}}
    (cond, extra), = _encoded(tmp_path / "fp8", models, fp8, encode).value("91")
    llama, ref_llama = extra["conditioning_llama3"], ref_extra["conditioning_llama3"]
    assert 0 < (cond - ref).abs().max() <= 0.1 * ref.abs().max()
    assert 0 < (llama - ref_llama).abs().max() <= 0.1 * ref_llama.abs().max()
    assert (extra["pooled_output"] - ref_extra["pooled_output"]).abs().max() == 0


def test_fewer_encoders_stand_in_zeros_as_comfyui_does(tmp_path, hidream):
    """CLIPLoader type hidream with Llama alone, DualCLIPLoader with T5 + Llama: the missing parts are
    ComfyUI's zeros (pooled 768 + 1280, T5 128 × 4096), the present ones equal the four-file CLIP's."""
    models, _ = hidream
    encode = {"91": HIDREAM_WORKFLOW["91"]}
    (ref, ref_extra), = _encoded(tmp_path / "quad", models, HIDREAM_WORKFLOW["82"], encode).value("91")
    single = {"class_type": "CLIPLoader", "inputs": {"clip_name": QUAD["clip_name4"], "type": "hidream"}}
    (cond, extra), = _encoded(tmp_path / "one", models, single, encode).value("91")
    assert cond.shape == (1, 128, 4096) and not cond.any()
    assert extra["pooled_output"].shape == (1, 2048) and not extra["pooled_output"].any()
    assert (extra["conditioning_llama3"] - ref_extra["conditioning_llama3"]).abs().max() == 0
    dual = {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": QUAD["clip_name3"], "clip_name2": QUAD["clip_name4"],
                                                       "type": "hidream"}}
    (cond, extra), = _encoded(tmp_path / "two", models, dual, encode).value("91")
    assert (cond - ref).abs().max() == 0 and not extra["pooled_output"].any()


def test_edit_template_joins_the_image_on_the_width_axis(tmp_path, hidream):
    """The E1 graph runs served; the model call with InstructPixToPixConditioning's latent equals the
    transformer run on [noisy latent | edit image] side by side (ComfyUI's E1 layout), cropped back."""
    from nodeloom.diffusion.sampling import CondEntry, ModelCall

    models, parts = hidream
    gen = torch.Generator().manual_seed(1)
    workflow = copy.deepcopy(HIDREAM_E1_WORKFLOW)
    workflow["13"] = {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 1,
                                                             "color": 0x3366CC}}
    entry = run_served(tmp_path / "served", models, workflow)
    assert entry["outputs"]["9"]["images"][0]["filename"].startswith("hidream-e1")
    module, family = load_diffusion_model(models / "diffusion_models" / parts["unet"])
    model = model_value(module, family, parts["unet"])
    x, image = torch.randn(1, 16, 6, 8, generator=gen), torch.randn(1, 16, 6, 8, generator=gen)
    t5, llama, pooled = torch.randn(1, 128, 48, generator=gen), torch.randn(1, 3, 16, 32, generator=gen), torch.randn(1, 96)
    extra = {"pooled_output": pooled, "conditioning_llama3": llama, "concat_latent_image": image}
    sigma = torch.tensor(0.6)
    with torch.no_grad():
        got = model.adapter(module, x, sigma, ModelCall([CondEntry(t5, extra, (48, 64), 1.0)], t5, None))
        side = torch.cat([x, (image - LATENT_SHIFT) * LATENT_SCALE], dim=-1)
        from nodeloom.diffusion.families.hidream import patchify

        tokens, ids, sizes = patchify(side, 2)
        want = -module(tokens, torch.tensor([600.0]), t5, llama.movedim(1, 0), pooled, img_ids=ids, img_sizes=sizes,
                       hidden_states_masks=torch.ones(tokens.shape[:2]), return_dict=False)[0][..., :8]
    assert got.shape == (1, 16, 6, 8) and (got - want).abs().max() < 1e-5
    extra.pop("concat_latent_image")
    with torch.no_grad():
        plain = model.adapter(module, x, sigma, ModelCall([CondEntry(t5, extra, (48, 64), 1.0)], t5, None))
    assert (plain - got).abs().max() > 1e-4


def test_conditioning_and_loader_errors_name_what_is_wrong(tmp_path, hidream):
    from nodeloom.diffusion.sampling import CondEntry, ModelCall
    from nodeloom.errors import ValidationError

    models, parts = hidream
    module, family = load_diffusion_model(models / "diffusion_models" / parts["unet"])
    x, ctx = torch.randn(1, 16, 8, 8), torch.randn(1, 128, 48)
    call = ModelCall([CondEntry(ctx, {"pooled_output": torch.randn(1, 96)}, (64, 64), 1.0)], ctx, None)
    with pytest.raises(ValidationError, match="conditioning_llama3"):
        family.adapter(module, x, torch.tensor(0.5), call)
    wrong = {"pooled_output": torch.randn(1, 96), "conditioning_llama3": torch.randn(1, 2, 16, 32)}
    with pytest.raises(ValidationError, match="reads 3 layers"):
        family.adapter(module, x, torch.tensor(0.5), ModelCall([CondEntry(ctx, wrong, (64, 64), 1.0)], ctx, None))
    bad = tmp_path / "models"
    (bad / "text_encoders").mkdir(parents=True)
    for name in (QUAD["clip_name3"], QUAD["clip_name4"]):
        (bad / "text_encoders" / name).symlink_to(models / "text_encoders" / name)
    twice = {"class_type": "QuadrupleCLIPLoader", "inputs": {"clip_name1": QUAD["clip_name3"], "clip_name2": QUAD["clip_name3"],
                                                             "clip_name3": QUAD["clip_name4"], "clip_name4": QUAD["clip_name4"]}}
    no_tokenizer = {"class_type": "CLIPLoader", "inputs": {"clip_name": QUAD["clip_name4"], "type": "hidream"}}
    with engine_for(tmp_path / "base", bad) as engine:
        for loader, expected in ((twice, "at most one each"), (no_tokenizer, "tokenizers")):
            result = engine.run({"1": loader, "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}})
            message = " ".join(str(e.get("exception_message", e)) for e in result.errors)
            assert result.status != "success" and expected in message and "llama_3.1" in message, message


#: the templates' file names → the tiny files (the templates' own T5/Llama names are the scaled-fp8 ones)
_TINY_FILES = {"hidream_i1_dev_fp8.safetensors": "tiny_hidream_i1_fp8_scaled.safetensors",
               "hidream_e1_full_bf16.safetensors": "tiny_hidream_i1.safetensors",
               "hidream_e1_1_bf16.safetensors": "tiny_hidream_i1.safetensors",
               "clip_l_hidream.safetensors": "tiny_clip_l_hidream.safetensors",
               "clip_g_hidream.safetensors": "tiny_clip_g_hidream.safetensors",
               "t5xxl_fp8_e4m3fn_scaled.safetensors": "tiny_t5xxl_fp8_e4m3fn_scaled.safetensors",
               "llama_3.1_8b_instruct_fp8_scaled.safetensors": "tiny_llama_3.1_8b_instruct_fp8_scaled.safetensors",
               "ae.safetensors": "tiny_ae.safetensors"}


@pytest.mark.parametrize("name", ["hidream_i1_dev", "hidream_e1_full", "hidream_e1_1"])
def test_official_template_files_convert_and_run(tmp_path, hidream, name):
    """The official UI-format templates themselves (notes, reroutes, primitives, the E1 image and its
    scaling, E1.1's CFGNorm and fp8 weight rounding), with the tiny files, a small image and 2 steps:
    converted by the engine and run (E1.1's scaling gives an odd latent width, padded to the patch
    size as ComfyUI pads it)."""
    from PIL import Image

    from nodeloom.workflows.files import load_prompt

    models, _ = hidream
    workflow = official_template(name)
    for node in workflow["nodes"]:
        values = node.get("widgets_values")
        if isinstance(values, list):
            values[:] = [_TINY_FILES.get(v, v) if isinstance(v, str) else v for v in values]
        if node["type"] == "EmptySD3LatentImage":
            values[:2] = [64, 64]
        elif node["type"] == "ImageScale":
            values[1:3] = [64, 64]
        elif node["type"] == "ImageScaleToTotalPixels":
            values[1] = 0.01  # its least: 80×72 → 108×97
        elif node["type"] == "KSampler":
            values[2] = 2
        elif node["type"] == "BasicScheduler":
            values[1] = 2
        elif node["type"] == "LoadImage":
            (tmp_path / "base" / "input").mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (80, 72), (200, 120, 40)).save(tmp_path / "base" / "input" / values[0])
    (tmp_path / "wf.json").write_text(json.dumps(workflow), encoding="utf-8")
    with engine_for(tmp_path / "base", models) as engine:
        prompt = load_prompt(engine, str(tmp_path / "wf.json"))
        result = run_ok(engine, prompt)
    saves = [k for k, v in prompt.items() if v["class_type"] == "SaveImage"]
    assert saves and result.outputs[saves[0]]["images"][0]["filename"].startswith("ComfyUI")
    decoded = [k for k, v in prompt.items() if v["class_type"] == "VAEDecode"]
    size = {"hidream_e1_1": (96, 104)}.get(name, (64, 64))  # 108×97 cropped to whole latents: 13 wide
    assert result.value(decoded[0]).shape == (1, *size, 3)
