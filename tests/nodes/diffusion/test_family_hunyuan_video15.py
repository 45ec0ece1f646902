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
