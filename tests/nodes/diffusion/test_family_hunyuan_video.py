"""HunyuanVideo 1.0 text-to-video end to end on tiny random weights: the split files in the layouts
ComfyUI users download (release-layout transformer, CLIP-L + Llama for DualCLIPLoader type
``hunyuan_video``, the 16-channel video VAE in ComfyUI's layout), the official template's graph
(FluxGuidance → BasicGuider → SamplerCustomAdvanced → VAEDecodeTiled) through the Engine, written
with SaveVideo and read back with PyAV, and parity with diffusers' HunyuanVideoPipeline.

Noise convention (both sides): the initial noise is a CPU float32 ``torch.randn`` of the latent's
shape ``[1,16,t,h,w]`` from a generator seeded with RandomNoise's seed; the pipeline's scheduler is
FlowMatchEulerDiscreteScheduler handed our ``simple`` sigmas (shift 1); its embedded
``guidance_scale`` is FluxGuidance's value and ``true_cfg_scale`` 1 (BasicGuider: no CFG); its
latents are ours × 0.476986 (the VAE's scaling factor). The pipeline gets our prompt encodings
(Llama states from the user turn on, CLIP-L's pooled vector).
"""

from __future__ import annotations

import copy
from pathlib import Path

import av
import pytest
import torch

from nodeloom.diffusion.families.hunyuan_video import LATENT_SCALE
from nodeloom.diffusion.flow import FlowSampling
from nodeloom.diffusion.schedules import calculate_sigmas
from nodeloom.testing.tiny_hunyuan_video import HV_T2V_WORKFLOW, build_tiny_hunyuan_video
from tests.nodes.diffusion.family_helpers import engine_for, run_ok

T2V = HV_T2V_WORKFLOW


@pytest.fixture(scope="module")
def hv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return root, build_tiny_hunyuan_video(root)


def _clip(models: Path):
    from nodeloom.diffusion.split_models import load_text_encoders

    enc = models / "text_encoders"
    return load_text_encoders([enc / "tiny_clip_l.safetensors", enc / "tiny_llava_llama3.safetensors"],
                              "hunyuan_video", [models / "tokenizers"])


def _scheduler(steps: int = 3, shift: float = 7.0):
    from diffusers import FlowMatchEulerDiscreteScheduler

    fixed = calculate_sigmas(FlowSampling(shift=shift, multiplier=1000.0), "simple", steps)[:-1].tolist()
    sched = FlowMatchEulerDiscreteScheduler(shift=1.0)
    plain = sched.set_timesteps

    def ours(num_inference_steps=None, device=None, sigmas=None, **kw):  # the pipeline looks for a `sigmas` parameter
        plain(sigmas=fixed, device=device)

    sched.set_timesteps = ours
    return sched


def test_t2v_template_runs_and_saves_a_video(tmp_path, hv):
    with engine_for(tmp_path, hv[0]) as engine:
        result = run_ok(engine, copy.deepcopy(T2V))
        assert result.value("13")["samples"].shape == (1, 16, 3, 4, 4)
        frames = result.value("73")
        assert frames.shape == (9, 32, 32, 3) and frames.std() > 0.01
        saved = result.outputs["80"]["images"][0]
        with av.open(str(engine.paths.output_dir / saved["subfolder"] / saved["filename"])) as box:
            stream = box.streams.video[0]
            assert (sum(1 for _ in box.decode(stream)), float(stream.average_rate)) == (9, 24.0)


def test_prompt_is_cut_to_the_user_turn(hv):
    """The Llama states start after the user header and blank line and end with the closing
    ``<|eot_id|>``; CLIP-L gives the pooled vector."""
    from nodeloom.diffusion.hunyuan_video_text import user_span

    models, parts = hv
    clip = _clip(models)
    text = T2V["44"]["inputs"]["text"]
    states, pooled = clip.encode(text)
    ids = clip.llama_ids(text)[0].tolist()
    start, end = user_span(ids, parts["tokenizer"])
    tok = parts["tokenizer"]
    assert ids[0] == tok.bos_token_id and ids[end - 1] == tok.convert_tokens_to_ids("<|eot_id|>")
    assert ids[start:end - 1] == tok(text, add_special_tokens=False).input_ids
    assert states.shape == (1, end - start, 128) and pooled.shape == (1, 24)


def test_t2v_latents_match_the_diffusers_pipeline(tmp_path, hv):
    from diffusers import HunyuanVideoPipeline

    models, parts = hv
    with engine_for(tmp_path, models) as engine:
        ours = run_ok(engine, copy.deepcopy(T2V)).value("13")["samples"] * LATENT_SCALE
    states, pooled = _clip(models).encode(T2V["44"]["inputs"]["text"])
    pipe = HunyuanVideoPipeline(text_encoder=parts["llama"], tokenizer=parts["tokenizer"], transformer=parts["transformer"],
                                vae=parts["vae"], scheduler=_scheduler(), text_encoder_2=parts["clip_l"], tokenizer_2=None)
    theirs = pipe(prompt_embeds=states, pooled_prompt_embeds=pooled,
                  prompt_attention_mask=torch.ones(1, states.shape[1], dtype=torch.int64), height=32, width=32,
                  num_frames=9, num_inference_steps=3, guidance_scale=6.0, output_type="latent",
                  generator=torch.Generator().manual_seed(1)).frames
    assert theirs.shape == ours.shape
    assert (ours - theirs).abs().max() < 1e-4


def test_image_to_video_releases_are_refused(tmp_path, hv):
    from safetensors.torch import load_file, save_file

    models, _ = hv
    sd = load_file(str(models / "diffusion_models" / "tiny_hunyuan_video_t2v_720p.safetensors"))
    key = "model.diffusion_model.img_in.proj.weight"
    sd[key] = torch.cat([sd[key], sd[key][:, :1]], dim=1)  # 33 input channels, as the I2V release
    save_file(sd, str(models / "diffusion_models" / "tiny_hunyuan_video_i2v.safetensors"))
    prompt = copy.deepcopy(T2V)
    prompt["12"]["inputs"]["unet_name"] = "tiny_hunyuan_video_i2v.safetensors"
    with engine_for(tmp_path, models) as engine:
        result = engine.run(prompt)
    assert result.status == "error"
    assert any("image-to-video release" in e.get("exception_message", "") for e in result.errors), result.errors
