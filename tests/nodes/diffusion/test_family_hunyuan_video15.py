"""HunyuanVideo 1.5 end to end on tiny random weights: the split files in the layouts ComfyUI users
download (release-layout transformer, Qwen2.5-VL + byT5 text encoders for DualCLIPLoader type
``hunyuan_video_15``, the 32-channel video VAE, a SigLIP vision tower), the official 720p
text- and image-to-video templates' graphs through the Engine and a live server, written with
SaveVideo and read back with PyAV, and parity with diffusers' HunyuanVideo15Pipeline and
HunyuanVideo15ImageToVideoPipeline on the latents.

Noise convention (both sides): the initial noise is a CPU float32 ``torch.randn`` of the latent's
shape ``[1,32,t,h,w]`` from a generator seeded with RandomNoise's seed; the pipelines' scheduler is
FlowMatchEulerDiscreteScheduler handed our ``simple`` sigmas (shift 1, so they are not shifted
again); their guider's ``guidance_scale`` is CFGGuider's cfg; their latents are ours × 1.03682
(the VAE's scaling factor). The pipelines get our prompt encodings (``prompt_embeds*``) — their
own encoders wrap the prompt in a differently spaced system message and pad it to 1,108 tokens —
and the image-to-video one our CLIPVisionEncode states: the encoders are compared on their own.
"""

from __future__ import annotations

import copy
from pathlib import Path

import av
import pytest
import torch

from nodeloom.diffusion.families.hunyuan_video15 import LATENT_SCALE
from nodeloom.diffusion.flow import FlowSampling
from nodeloom.diffusion.schedules import calculate_sigmas
from nodeloom.testing.tiny_hunyuan_video15 import HV15_I2V_WORKFLOW, HV15_T2V_WORKFLOW, build_tiny_hunyuan_video15
from tests.nodes.diffusion.family_helpers import engine_for, run_ok, run_served

T2V, I2V = HV15_T2V_WORKFLOW, HV15_I2V_WORKFLOW


@pytest.fixture(scope="module")
def hv15(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return root, build_tiny_hunyuan_video15(root)


def _start_image(base: Path) -> Path:
    """A 32² start frame from scikit-image's shipped photo, in the engine's input folder."""
    from PIL import Image
    from skimage import data

    (base / "input").mkdir(parents=True, exist_ok=True)
    path = base / "input" / "hv15_start.png"
    Image.fromarray(data.astronaut()).resize((32, 32)).save(path)
    return path


def _read_back(engine, saved: dict) -> tuple[int, float]:
    path = engine.paths.output_dir / saved["subfolder"] / saved["filename"]
    with av.open(str(path)) as box:
        stream = box.streams.video[0]
        return sum(1 for _ in box.decode(stream)), float(stream.average_rate)


def _clip(models: Path):
    from nodeloom.diffusion.split_models import load_text_encoders

    enc = models / "text_encoders"
    return load_text_encoders([enc / "tiny_qwen_2.5_vl_7b.safetensors", enc / "tiny_byt5_small_glyphxl.safetensors"],
                              "hunyuan_video_15", [models / "tokenizers"])


def _scheduler(steps: int = 3, shift: float = 7.0):
    """A FlowMatchEuler scheduler that takes our sigmas whatever step count the pipeline asks for."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    sigmas = calculate_sigmas(FlowSampling(shift=shift, multiplier=1000.0), "simple", steps)
    sched = FlowMatchEulerDiscreteScheduler(shift=1.0)
    plain = sched.set_timesteps

    def ours(num_inference_steps=None, device=None, sigmas=None, **kw):  # the pipeline looks for a `sigmas` parameter
        plain(sigmas=ours_sigmas, device=device)

    ours_sigmas = sigmas[:-1].tolist()
    sched.set_timesteps = ours
    return sched


def _embeds(clip, text: str, negative: bool = False) -> dict[str, torch.Tensor]:
    """A prompt's encodings as the pipelines take them (glyph tokens: one masked-out zero token without quotes)."""
    states, _ = clip.encode(text)
    glyph = clip.glyph_states(text)
    glyph_mask = torch.ones(1, glyph.shape[1], dtype=torch.int64) if glyph is not None else torch.zeros(1, 1, dtype=torch.int64)
    glyph = glyph if glyph is not None else torch.zeros(1, 1, 16)
    pre = "negative_" if negative else ""
    return {f"{pre}prompt_embeds": states, f"{pre}prompt_embeds_mask": torch.ones(1, states.shape[1], dtype=torch.int64),
            f"{pre}prompt_embeds_2": glyph, f"{pre}prompt_embeds_mask_2": glyph_mask}


def _pipeline(cls, parts: dict, transformer, **extra):
    from diffusers.guiders import ClassifierFreeGuidance
    from transformers import ByT5Tokenizer

    return cls(text_encoder=parts["text_encoder"], tokenizer=parts["tokenizer"], transformer=transformer,
               vae=parts["vae"], scheduler=_scheduler(), text_encoder_2=parts["byt5"], tokenizer_2=ByT5Tokenizer(),
               guider=ClassifierFreeGuidance(guidance_scale=6.0), **extra)


def test_t2v_template_runs_and_saves_a_video(tmp_path, hv15):
    with engine_for(tmp_path, hv15[0]) as engine:
        result = run_ok(engine, copy.deepcopy(T2V))
        assert result.value("127")["samples"].shape == (1, 32, 3, 2, 2)
        frames = result.value("8")
        assert frames.shape == (9, 32, 32, 3) and frames.std() > 0.01
        assert _read_back(engine, result.outputs["102"]["images"][0]) == (9, 24.0)


def test_prompt_conditioning_carries_the_glyph_tokens(tmp_path, hv15):
    """The quoted word reaches byT5 (``conditioning_byt5small``); the empty negative has none."""
    with engine_for(tmp_path, hv15[0]) as engine:
        result = run_ok(engine, {k: copy.deepcopy(T2V[k]) for k in ("11", "44", "93")} | {
            "1": {"class_type": "PreviewAny", "inputs": {"source": ["44", 0]}},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["93", 0]}}})
        positive, negative = result.value("44")[0], result.value("93")[0]
    glyph = positive[1]["conditioning_byt5small"]
    assert glyph.shape == (1, len('Text "HELLO". ') + 1, 16)  # a byte each, then </s>
    assert "conditioning_byt5small" not in negative[1]
    assert positive[0].shape[-1] == 128 and negative[0].shape[1] > 0


def test_t2v_latents_match_the_diffusers_pipeline(tmp_path, hv15):
    from diffusers import HunyuanVideo15Pipeline

    models, parts = hv15
    with engine_for(tmp_path, models) as engine:
        ours = run_ok(engine, copy.deepcopy(T2V)).value("127")["samples"] * LATENT_SCALE
    clip = _clip(models)
    pipe = _pipeline(HunyuanVideo15Pipeline, parts, parts["t2v"])
    theirs = pipe(**_embeds(clip, T2V["44"]["inputs"]["text"]), **_embeds(clip, "", negative=True), height=32,
                  width=32, num_frames=9, num_inference_steps=3, output_type="latent",
                  generator=torch.Generator().manual_seed(7)).frames
    assert theirs.shape == ours.shape
    assert (ours - theirs).abs().max() < 1e-4


def test_i2v_template_runs_with_the_start_frame_known(tmp_path, hv15):
    _start_image(tmp_path)
    with engine_for(tmp_path, hv15[0]) as engine:
        result = run_ok(engine, copy.deepcopy(I2V))
        cond = result.value("78")[0][1]  # the positive conditioning's first entry
        assert cond["concat_latent_image"].shape == (1, 32, 3, 2, 2)
        assert cond["concat_latent_image"][:, :, 1:].abs().max() == 0  # only the start frame's latent is given
        assert cond["concat_mask"][0, 0, :, 0, 0].tolist() == [0.0, 1.0, 1.0]  # 0 = a known latent frame
        assert cond["clip_vision_output"]["last_hidden_state"].shape == (1, 16, 32)
        assert result.value("8").shape == (9, 32, 32, 3)
        assert _read_back(engine, result.outputs["102"]["images"][0]) == (9, 24.0)


def test_i2v_latents_match_the_diffusers_pipeline(tmp_path, hv15, monkeypatch):
    from diffusers import HunyuanVideo15ImageToVideoPipeline
    from PIL import Image
    from transformers import SiglipImageProcessor

    models, parts = hv15
    image = _start_image(tmp_path)
    with engine_for(tmp_path, models) as engine:
        result = run_ok(engine, copy.deepcopy(I2V))
        ours = result.value("127")["samples"] * LATENT_SCALE
        vision = result.value("79")["last_hidden_state"]
    clip = _clip(models)
    pipe = _pipeline(HunyuanVideo15ImageToVideoPipeline, parts, parts["i2v"], image_encoder=parts["vision"],
                     feature_extractor=SiglipImageProcessor(size={"height": 28, "width": 28}))
    monkeypatch.setattr(pipe, "encode_image", lambda image, batch_size, device, dtype: vision.to(device, dtype))
    theirs = pipe(image=Image.open(image).convert("RGB"), **_embeds(clip, I2V["44"]["inputs"]["text"]),
                  **_embeds(clip, "", negative=True), num_frames=9, num_inference_steps=3, output_type="latent",
                  generator=torch.Generator().manual_seed(7)).frames
    assert theirs.shape == ours.shape
    assert (ours - theirs).abs().max() < 1e-4


def test_text_encoders_match_the_pipelines_own(hv15):
    """Qwen2.5-VL's states equal diffusers' ``_get_mllm_prompt_embeds`` (given ComfyUI's system
    message, cropped where the user turn starts) over the real tokens; byT5's equal its
    ``_get_byt5_prompt_embeds`` over the real tokens."""
    from diffusers import HunyuanVideo15Pipeline as P
    from transformers import ByT5Tokenizer

    from nodeloom.diffusion.hunyuan_video15_text import VIDEO_TEMPLATE

    models, parts = hv15
    clip = _clip(models)
    prompt = T2V["44"]["inputs"]["text"]
    ours, _ = clip.encode(prompt)
    system = VIDEO_TEMPLATE.split("<|im_start|>system\n", 1)[1].split("<|im_end|>", 1)[0]
    full = parts["tokenizer"](VIDEO_TEMPLATE.format(prompt), add_special_tokens=False).input_ids
    crop = len(full) - ours.shape[1]
    theirs, mask = P._get_mllm_prompt_embeds(parts["text_encoder"], parts["tokenizer"], prompt, "cpu",
                                             tokenizer_max_length=ours.shape[1] + 8, system_message=system,
                                             crop_start=crop)
    assert int(mask.sum()) == ours.shape[1]
    assert (theirs[:, : ours.shape[1]] - ours).abs().max() < 1e-5
    glyph = clip.glyph_states(prompt)
    theirs2, mask2 = P._get_byt5_prompt_embeds(ByT5Tokenizer(), parts["byt5"], prompt, "cpu", tokenizer_max_length=32)
    assert int(mask2.sum()) == glyph.shape[1]
    assert (theirs2[:, : glyph.shape[1]] - glyph).abs().max() < 1e-5
    assert clip.glyph_states("no quotes here") is None


def test_t2v_template_runs_through_a_live_server(tmp_path, hv15):
    entry = run_served(tmp_path, hv15[0], copy.deepcopy(T2V))
    saved = entry["outputs"]["102"]["images"][0]
    assert saved["filename"].startswith("hunyuan_video_1.5") and saved["filename"].endswith(".mp4")


def _error(engine, prompt: dict, node: str) -> str:
    result = engine.run(prompt)
    assert result.status == "error"
    errors = [e for e in result.errors if e.get("node_id") == node]
    assert errors, result.errors
    return errors[0]["exception_message"]


def test_fused_qkv_layout_loads_the_same_model(hv15):
    """The HunyuanVideo 1.0-style file (``img_attn_qkv`` fused, ComfyUI's in-memory names for the
    modulations) converts to the same diffusers weights as the release's separate q/k/v."""
    from nodeloom.diffusion.families.hunyuan_video15 import diffusers_keys
    from nodeloom.testing.tiny_hunyuan_video15 import transformer_to_release

    sd = hv15[1]["t2v"].state_dict()
    fused = {k.replace("_mod.linear.", "_mod.lin."): v for k, v in transformer_to_release(sd, fused=True).items()}
    assert any("img_attn_qkv" in k for k in fused) and not any("img_attn_q." in k for k in fused)
    back = diffusers_keys(fused)
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)


def test_bad_inputs_are_explained(tmp_path, hv15):
    from safetensors.torch import load_file, save_file

    models, parts = hv15
    sd = load_file(str(models / "diffusion_models" / parts["files"]["t2v"]))
    sd["model.diffusion_model.time_r_in.mlp.0.weight"] = torch.zeros(128, 256)
    save_file(sd, str(models / "diffusion_models" / "tiny_hv15_distilled.safetensors"))
    with engine_for(tmp_path, models) as engine:
        prompt = copy.deepcopy(T2V)
        prompt["124"]["inputs"]["length"] = 8
        message = _error(engine, prompt, "124")
        assert "`length` 8" in message and "4k + 1" in message
        prompt = copy.deepcopy(T2V)
        prompt["12"]["inputs"]["unet_name"] = "tiny_hv15_distilled.safetensors"
        assert "mean-flow" in _error(engine, prompt, "12")
        prompt = copy.deepcopy(T2V)
        prompt["11"]["inputs"]["type"] = "hunyuan_image"
        assert "not a combination" in _error(engine, prompt, "11")


def test_image_to_video_needs_the_hunyuan_video15_vae():
    from nodeloom.node_api import ValidationError
    from nodeloom.nodes.diffusion.hunyuan_video15_nodes import HunyuanVideo15ImageToVideo

    with pytest.raises(ValidationError, match="HunyuanVideo 1.5 VAE"):
        HunyuanVideo15ImageToVideo.execute([], [], object(), 32, 32, 9, 1, start_image=torch.rand(1, 32, 32, 3))


def test_a_batch_of_two_videos_samples_each_from_its_own_noise(tmp_path, hv15):
    prompt = copy.deepcopy(T2V)
    prompt["124"]["inputs"]["batch_size"] = 2
    with engine_for(tmp_path, hv15[0]) as engine:
        result = run_ok(engine, prompt)
    samples = result.value("127")["samples"]
    assert samples.shape == (2, 32, 3, 2, 2) and (samples[0] - samples[1]).abs().max() > 1e-3
    assert result.value("8").shape == (18, 32, 32, 3)
