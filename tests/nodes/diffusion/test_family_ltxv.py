"""LTX-Video 0.9 end to end on tiny random weights: the all-in-one checkpoint and the split files
(UNETLoader in both layouts, VAELoader, CLIPLoader type ``ltxv``), the official text-to-video
template's graph through the Engine and a live server with the clip read back by PyAV, parity with
diffusers' LTXPipeline on the latents, and the LTX nodes' rules."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from nodeloom.diffusion.families.ltxv import pack, unpack
from nodeloom.errors import ValidationError
from nodeloom.testing.tiny_ltx import LTXV_T2V_WORKFLOW, build_tiny_ltxv
from tests.nodes.diffusion.family_helpers import engine_for, run_ok, run_served

WORKFLOW = LTXV_T2V_WORKFLOW
PROMPT = WORKFLOW["6"]["inputs"]["text"]


@pytest.fixture(scope="module")
def ltxv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return root, build_tiny_ltxv(root)


def _run(base: Path, models: Path, prompt: dict) -> object:
    with engine_for(base, models) as engine:
        return run_ok(engine, prompt)


def _split(unet: str, vae: str) -> dict:
    """The template with the checkpoint replaced by UNETLoader + VAELoader."""
    prompt = copy.deepcopy(WORKFLOW)
    del prompt["44"]
    prompt["1"] = {"class_type": "UNETLoader", "inputs": {"unet_name": unet, "weight_dtype": "default"}}
    prompt["2"] = {"class_type": "VAELoader", "inputs": {"vae_name": vae}}
    prompt["72"]["inputs"]["model"] = ["1", 0]
    prompt["8"]["inputs"]["vae"] = ["2", 0]
    return prompt


def _scheduler() -> object:
    from diffusers import FlowMatchEulerDiscreteScheduler

    # LTX-Video 0.9.1+'s scheduler config: the shift moves with the token count, stretched to 0.1
    return FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
                                           base_image_seq_len=1024, max_image_seq_len=4096, shift_terminal=0.1,
                                           time_shift_type="exponential")


def test_template_workflow_runs_through_the_engine_and_saves_a_clip(tmp_path, ltxv):
    import av

    models, _ = ltxv
    result = _run(tmp_path, models, copy.deepcopy(WORKFLOW))
    assert tuple(result.value("72")["samples"].shape) == (1, 128, 2, 2, 2)
    frames = result.value("8")
    assert tuple(frames.shape) == (9, 64, 64, 3) and frames.std() > 0.01
    with av.open(str(tmp_path / "output" / "video" / "ltxv_00001_.mp4")) as clip:
        stream = clip.streams.video[0]
        decoded = list(clip.decode(stream))
        assert len(decoded) == 9 and float(stream.average_rate) == 24.0
        assert (decoded[0].width, decoded[0].height) == (64, 64)


@pytest.mark.parametrize("files", ["checkpoint", "unet", "unet_diffusers"])
def test_latents_match_the_diffusers_pipeline(tmp_path, ltxv, files):
    """Noise: a CPU float32 ``torch.randn`` of the [1,128,F,H,W] latent from a generator seeded with
    the noise seed, packed into tokens for diffusers. Sigmas: LTXVScheduler's equal the pipeline's
    scheduler (token-count shift, stretched to 0.1). Prompts: ours are T5's states of the real
    tokens; diffusers gets them padded to one length with the padding masked out."""
    from diffusers import LTXPipeline

    models, parts = ltxv
    prompt = copy.deepcopy(WORKFLOW) if files == "checkpoint" else _split(parts[files], parts["vae_file"])
    result = _run(tmp_path, models, prompt)
    ours = result.value("72")["samples"]
    pos, neg = result.value("6")[0][0], result.value("7")[0][0]
    width = max(pos.shape[1], neg.shape[1])

    def padded(cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = torch.zeros(1, width)
        mask[:, :cond.shape[1]] = 1
        return torch.cat([cond, torch.zeros(1, width - cond.shape[1], cond.shape[2])], 1), mask

    (pe, pm), (ne, nm) = padded(pos), padded(neg)
    scheduler = _scheduler()
    pipe = LTXPipeline(scheduler=scheduler, vae=parts["vae"], text_encoder=parts["t5"], tokenizer=parts["tokenizer"],
                       transformer=parts["transformer"])
    noise = torch.randn([1, 128, 2, 2, 2], generator=torch.Generator().manual_seed(7))
    packed = pipe(prompt_embeds=pe, prompt_attention_mask=pm, negative_prompt_embeds=ne, negative_prompt_attention_mask=nm,
                  height=64, width=64, num_frames=9, frame_rate=25, num_inference_steps=4, guidance_scale=3.0,
                  latents=pack(noise), output_type="latent").frames
    assert torch.allclose(scheduler.sigmas, result.value("71"), atol=1e-6)
    assert (ours - unpack(packed, noise)).abs().max() < 1e-4


def test_prompt_states_are_t5_with_the_padding_masked(ltxv):
    """ComfyUI pads the prompt to 128 tokens and masks the padding; the real tokens' states equal ours."""
    from nodeloom.diffusion.split_models import load_text_encoders
    from nodeloom.nodes.diffusion.conditioning import CLIPTextEncode

    models, parts = ltxv
    clip = load_text_encoders([models / "text_encoders" / parts["t5_file"]], "ltxv", [models / "tokenizers"])
    ((cond, extra),) = CLIPTextEncode.execute(PROMPT, clip)[0]
    tok = parts["tokenizer"](PROMPT, padding="max_length", max_length=128, return_tensors="pt")
    with torch.no_grad():
        states = parts["t5"](tok.input_ids, attention_mask=tok.attention_mask).last_hidden_state
    n = int(tok.attention_mask.sum())
    assert cond.shape == (1, n, 32) and extra["pooled_output"] is None
    assert (states[:, :n] - cond).abs().max() < 1e-5


@pytest.mark.parametrize(("steps", "size", "stretch"), [(4, 64, True), (20, 512, True), (8, 256, False)])
def test_ltxv_scheduler_equals_the_diffusers_schedule(steps, size, stretch):
    import math

    from diffusers.pipelines.ltx.pipeline_ltx import calculate_shift

    from nodeloom.nodes.diffusion.ltx_nodes import EmptyLTXVLatentVideo, LTXVScheduler

    (latent,) = EmptyLTXVLatentVideo.execute(size, size, 97)
    (ours,) = LTXVScheduler.execute(steps, 2.05, 0.95, stretch, 0.1, latent)
    tokens = math.prod(latent["samples"].shape[2:])
    scheduler = _scheduler()
    scheduler.register_to_config(shift_terminal=0.1 if stretch else None)
    scheduler.set_timesteps(sigmas=torch.linspace(1.0, 1 / steps, steps).tolist(),
                            mu=calculate_shift(tokens, 1024, 4096, 0.95, 2.05))
    assert torch.allclose(ours, scheduler.sigmas, atol=1e-5)
    (default,) = LTXVScheduler.execute(steps, 2.05, 0.95, stretch, 0.1)  # no latent counts 4096 tokens
    assert float(default[1]) > float(ours[1]) or tokens >= 4096


def test_vae_round_trip_and_frame_count_rules(ltxv):
    from nodeloom.diffusion.checkpoint import load_state_dict
    from nodeloom.diffusion.ltxv_vae import LtxvVae, load_ltxv_vae

    models, parts = ltxv
    vae = LtxvVae(load_ltxv_vae(load_state_dict(models / "vae" / parts["vae_file"])))
    ref = parts["vae"]
    clip = torch.rand(9, 64, 96, 3)
    latent = vae.encode(clip)
    with torch.no_grad():
        raw = ref.encode(clip.permute(3, 0, 1, 2)[None] * 2 - 1).latent_dist.mode()
        mean, std = ref.latents_mean.view(1, -1, 1, 1, 1), ref.latents_std.view(1, -1, 1, 1, 1)
        assert tuple(latent.shape) == (1, 128, 2, 2, 3)
        assert (latent - (raw - mean) / std).abs().max() < 1e-5
        frames = vae.decode(latent)
        pixels = (ref.decode(latent * std + mean).sample / 2 + 0.5).clamp(0, 1)
    assert tuple(frames.shape) == (9, 64, 96, 3)
    assert (frames - pixels[0].permute(1, 2, 3, 0)).abs().max() < 1e-5
    with pytest.raises(ValidationError, match=r"1 \+ 8·k frames \(1, 9, 17, \.\.\.\), got 8"):
        vae.encode(torch.rand(8, 64, 64, 3))
    with pytest.raises(ValidationError, match="multiples of 32"):
        vae.encode(torch.rand(9, 48, 64, 3))
    with pytest.raises(ValidationError, match=r"video latents, got a latent shaped \(1, 4, 8, 8\)"):
        vae.decode(torch.zeros(1, 4, 8, 8))


def test_frame_rate_and_model_sampling_nodes(tmp_path, ltxv):
    from nodeloom.nodes.diffusion.ltx_nodes import LTXVConditioning, ModelSamplingLTXV, ltxv_shift

    models, _ = ltxv
    (pos, neg) = LTXVConditioning.execute([[torch.zeros(1, 2, 4), {"a": 1}]], [[torch.zeros(1, 2, 4), {}]], 12.0)
    assert pos[0][1] == {"a": 1, "frame_rate": 12.0} and neg[0][1] == {"frame_rate": 12.0}
    slow = copy.deepcopy(WORKFLOW)
    slow["69"]["inputs"]["frame_rate"] = 8.0
    a = _run(tmp_path / "a", models, copy.deepcopy(WORKFLOW)).value("72")["samples"]
    b = _run(tmp_path / "b", models, slow).value("72")["samples"]
    assert (a - b).abs().max() > 1e-4  # the frame rate scales the model's positions in time
    assert ltxv_shift(2.05, 0.95, None) == pytest.approx(2.05)
    assert ltxv_shift(2.05, 0.95, {"samples": torch.zeros(1, 128, 4, 16, 16)}) == pytest.approx(0.95)
    from nodeloom.diffusion.split_models import load_diffusion_model, model_value

    module, family = load_diffusion_model(models / "diffusion_models" / "tiny_ltxv.safetensors")
    (patched,) = ModelSamplingLTXV.execute(model_value(module, family, "tiny"), 2.05, 0.95, None)
    assert patched.sampling.shift == pytest.approx(2.05) and family.sampling(module).shift == pytest.approx(2.37)


def test_preprocess_compresses_like_a_video_frame():
    from skimage import data

    from nodeloom.nodes.diffusion.ltx_nodes import LTXVPreprocess

    image = torch.from_numpy(data.astronaut()[:65, :95].copy()).float()[None] / 255
    (same,) = LTXVPreprocess.execute(image, 0)
    assert same is image
    (light,) = LTXVPreprocess.execute(image, 10)
    (heavy,) = LTXVPreprocess.execute(image, 50)
    assert tuple(heavy.shape) == (1, 64, 94, 3)  # H.264 4:2:0 needs even sizes
    err = [(x - image[:, :64, :94]).abs().mean() for x in (light, heavy)]
    assert 0 < err[0] < err[1] < 0.2
    with pytest.raises(ValidationError, match="at least 2×2"):
        LTXVPreprocess.execute(torch.rand(1, 1, 5, 3), 35)


def test_vae_weights_that_do_not_fit_are_refused_with_a_reason(ltxv):
    from nodeloom.diffusion.ltxv_vae import load_ltxv_vae

    _, parts = ltxv
    sd = dict(parts["vae"].state_dict())
    sd["decoder.conv_in.extra.weight"] = torch.zeros(4, 4)
    with pytest.raises(ValidationError, match="does not fit an LTX-Video VAE"):
        load_ltxv_vae(sd, "odd_vae.safetensors")


def test_template_workflow_runs_through_a_live_server(tmp_path, ltxv):
    entry = run_served(tmp_path, ltxv[0], copy.deepcopy(WORKFLOW))
    assert entry["outputs"]["79"]["images"][0]["filename"] == "ltxv_00001_.mp4"


def _image_to_video(base: Path) -> dict:
    """The official ``ltxv_image_to_video`` template's wiring: LoadImage → LTXVImgToVideo → LTXVConditioning."""
    import numpy as np
    from PIL import Image as PILImage
    from skimage import data

    (base / "input").mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(np.asarray(data.astronaut())).save(base / "input" / "astronaut.png")
    prompt = copy.deepcopy(WORKFLOW)
    prompt["78"]["inputs"]["fps"] = 24.0
    prompt["80"] = {"class_type": "LoadImage", "inputs": {"image": "astronaut.png"}}
    prompt["77"] = {"class_type": "LTXVImgToVideo", "inputs": {
        "positive": ["6", 0], "negative": ["7", 0], "vae": ["44", 2], "image": ["80", 0], "width": 64, "height": 64,
        "length": 9, "batch_size": 1, "strength": 1.0}}
    prompt["69"]["inputs"].update(positive=["77", 0], negative=["77", 1])
    prompt["71"]["inputs"]["latent"] = ["77", 2]
    prompt["72"]["inputs"]["latent_image"] = ["77", 2]
    del prompt["70"]
    return prompt


def test_image_to_video_matches_the_diffusers_pipeline(tmp_path, ltxv):
    """The image's latent is the first latent frame, held by the noise mask; its tokens get time 0.
    Diffusers' LTXImageToVideoPipeline is handed the same starting latent (the image's latent, then
    the seeded noise) and the same prompt states; the first frame must come back unchanged."""
    from diffusers import LTXImageToVideoPipeline

    models, parts = ltxv
    result = _run(tmp_path, models, _image_to_video(tmp_path))
    start = result.value("77", 2)
    assert start["noise_mask"].flatten().tolist() == [0.0, 1.0]
    ours = result.value("72")["samples"]
    assert (ours[:, :, :1] - start["samples"][:, :, :1]).abs().max() == 0
    pos, neg = result.value("6")[0][0], result.value("7")[0][0]
    width = max(pos.shape[1], neg.shape[1])
    pad = [(torch.cat([c, torch.zeros(1, width - c.shape[1], c.shape[2])], 1),
            (torch.arange(width) < c.shape[1]).float()[None]) for c in (pos, neg)]
    noise = torch.randn([1, 128, 2, 2, 2], generator=torch.Generator().manual_seed(7))
    first = torch.cat([start["samples"][:, :, :1], noise[:, :, 1:]], dim=2)
    pipe = LTXImageToVideoPipeline(scheduler=_scheduler(), vae=parts["vae"], text_encoder=parts["t5"],
                                   tokenizer=parts["tokenizer"], transformer=parts["transformer"])
    packed = pipe(image=torch.rand(1, 3, 64, 64), prompt_embeds=pad[0][0], prompt_attention_mask=pad[0][1],
                  negative_prompt_embeds=pad[1][0], negative_prompt_attention_mask=pad[1][1], height=64, width=64,
                  num_frames=9, frame_rate=25, num_inference_steps=4, guidance_scale=3.0, latents=pack(first),
                  output_type="latent").frames
    assert (ours - unpack(packed, noise)).abs().max() < 1e-4
    frames = result.value("8")
    assert tuple(frames.shape) == (9, 64, 64, 3)


def test_tiled_decode_in_space_and_time(ltxv):
    """VAEDecodeTiled on LTX-Video's VAE tiles in time too: with tiles covering the clip it equals
    the plain decode; with small tiles the clip keeps its frames and size, and the shared module's
    tiling settings are restored afterwards."""
    from nodeloom.diffusion.ltxv_vae import LtxvVae
    from nodeloom.nodes.diffusion.vae import VAEDecodeTiled

    _, parts = ltxv
    vae = LtxvVae(parts["vae"])
    latent = torch.randn(1, 128, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    plain = vae.decode(latent)
    (whole,) = VAEDecodeTiled.execute({"samples": latent}, vae, 512, 64, 64, 8)
    assert (whole - plain).abs().max() < 1e-6
    (tiled,) = VAEDecodeTiled.execute({"samples": latent}, vae, 64, 32, 8, 4)
    assert tuple(tiled.shape) == (17, 96, 96, 3) and 0 <= float(tiled.min()) <= float(tiled.max()) <= 1
    assert (tiled - plain).abs().max() > 1e-4  # it did tile
    assert not parts["vae"].use_tiling and not parts["vae"].use_framewise_decoding


def test_add_guide_appends_placed_guide_frames_and_crop_takes_them_off(ltxv):
    from nodeloom.diffusion.ltxv_vae import LtxvVae
    from nodeloom.nodes.diffusion.ltx_guides import LTXVAddGuide, LTXVCropGuides
    from nodeloom.nodes.diffusion.ltx_nodes import EmptyLTXVLatentVideo

    _, parts = ltxv
    vae = LtxvVae(parts["vae"])
    (latent,) = EmptyLTXVLatentVideo.execute(64, 64, 17, 1)
    pos, neg = [[torch.zeros(1, 3, 32), {}]], [[torch.zeros(1, 2, 32), {}]]
    image = torch.rand(1, 48, 80, 3)
    pos1, neg1, out = LTXVAddGuide.execute(pos, neg, vae, latent, image, 0, 1.0)
    assert tuple(out["samples"].shape) == (1, 128, 4, 2, 2)  # 3 latent frames + 1 guide frame
    assert out["noise_mask"].flatten().tolist() == [1.0, 1.0, 1.0, 0.0]
    idxs = pos1[0][1]["keyframe_idxs"]
    assert tuple(idxs.shape) == (1, 3, 4) and idxs[0, 0].tolist() == [0.0] * 4  # frame 0 (causal fix)
    assert idxs[0, 1].tolist() == [0.0, 0.0, 32.0, 32.0] and idxs[0, 2].tolist() == [0.0, 32.0, 0.0, 32.0]
    assert neg1[0][1]["keyframe_idxs"] is idxs
    pos2, _, out2 = LTXVAddGuide.execute(pos1, neg1, vae, out, image, -1, 0.5)  # the last frame, counted from the end
    idxs2 = pos2[0][1]["keyframe_idxs"]
    assert tuple(out2["samples"].shape) == (1, 128, 5, 2, 2) and idxs2[0, 0, 4:].tolist() == [16.0] * 4
    assert out2["noise_mask"].flatten().tolist() == [1.0, 1.0, 1.0, 0.0, 0.5]
    cpos, cneg, cropped = LTXVCropGuides.execute(pos2, neg1, out2)
    assert tuple(cropped["samples"].shape) == (1, 128, 3, 2, 2) and cropped["noise_mask"].flatten().tolist() == [1.0] * 3
    assert cpos[0][1]["keyframe_idxs"] is None and cneg[0][1]["keyframe_idxs"] is None
    with pytest.raises(ValidationError, match="run past the latent's 3 frames"):
        LTXVAddGuide.execute(pos, neg, vae, latent, torch.rand(17, 64, 64, 3), 16, 1.0)


def test_guide_positions_reach_the_transformer(ltxv):
    """Guide tokens at the positions the last latent frame has anyway give the plain call's result;
    placed elsewhere, a different one."""
    from nodeloom.diffusion.families.ltxv import FAMILY, latent_pixel_coords
    from nodeloom.diffusion.sampling import CondEntry, ModelCall

    _, parts = ltxv
    x = torch.randn(1, 128, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    ctx = torch.randn(1, 4, 32, generator=torch.Generator().manual_seed(2))

    def call(idxs: torch.Tensor | None) -> torch.Tensor:
        extra = {} if idxs is None else {"keyframe_idxs": idxs}
        group = ModelCall([CondEntry(ctx, extra, (64, 64), 1.0)], ctx, None)
        with torch.no_grad():
            return FAMILY.adapter(parts["transformer"], x, torch.tensor(0.7), group)

    natural = latent_pixel_coords(3, 2, 2, (8, 32, 32))[:, -4:][None]
    assert (call(natural) - call(None)).abs().max() < 1e-5
    moved = natural.clone()
    moved[:, 0] = 0.0
    assert (call(moved) - call(None)).abs().max() > 1e-4


def test_guided_workflow_runs_and_crops_back(tmp_path, ltxv):
    models, _ = ltxv
    prompt = _image_to_video(tmp_path)
    prompt["77"] = {"class_type": "LTXVAddGuide", "inputs": {
        "positive": ["6", 0], "negative": ["7", 0], "vae": ["44", 2], "latent": ["70", 0], "image": ["80", 0],
        "frame_idx": 0, "strength": 1.0}}
    prompt["70"] = copy.deepcopy(WORKFLOW["70"])
    prompt["81"] = {"class_type": "LTXVCropGuides", "inputs": {"positive": ["69", 0], "negative": ["69", 1],
                                                               "latent": ["72", 0]}}
    prompt["8"]["inputs"]["samples"] = ["81", 2]
    result = _run(tmp_path, models, prompt)
    assert tuple(result.value("72")["samples"].shape) == (1, 128, 3, 2, 2)
    assert tuple(result.value("8").shape) == (9, 64, 64, 3)


def test_peft_and_comfyui_loras_equal_their_merged_weights(tmp_path, ltxv):
    """A PEFT LoRA (``transformer.…attn1.to_q``) and one in ComfyUI's LTX layout
    (``diffusion_model.…ff.net.0.proj``) at strength 0.7 through LoraLoaderModelOnly equal a file with
    ``W + 0.7·up·down`` merged in."""
    from safetensors.torch import save_file

    from tests.nodes.diffusion.family_helpers import lora_pair, write_merged

    models, parts = ltxv
    base = {k: v.clone() for k, v in parts["transformer"].state_dict().items()}
    down1, up1 = lora_pair(base, "transformer_blocks.0.attn1.to_q.weight", seed=1)
    down2, up2 = lora_pair(base, "transformer_blocks.1.ff.net.0.proj.weight", seed=2)
    (models / "loras").mkdir(exist_ok=True)
    save_file({"transformer.transformer_blocks.0.attn1.to_q.lora_A.weight": down1,
               "transformer.transformer_blocks.0.attn1.to_q.lora_B.weight": up1},
              str(models / "loras" / "ltxv_peft.safetensors"))
    save_file({"diffusion_model.transformer_blocks.1.ff.net.0.proj.lora_A.weight": down2,
               "diffusion_model.transformer_blocks.1.ff.net.0.proj.lora_B.weight": up2},
              str(models / "loras" / "ltxv_comfy.safetensors"))
    write_merged(base, {"transformer_blocks.0.attn1.to_q.weight": 0.7 * up1 @ down1,
                        "transformer_blocks.1.ff.net.0.proj.weight": 0.7 * up2 @ down2},
                 models / "diffusion_models" / "ltxv_merged.safetensors")
    with_lora = _split(parts["unet"], parts["vae_file"])
    with_lora["12"] = {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["1", 0], "lora_name":
                                                                       "ltxv_peft.safetensors", "strength_model": 0.7}}
    with_lora["13"] = {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["12", 0], "lora_name":
                                                                       "ltxv_comfy.safetensors", "strength_model": 0.7}}
    with_lora["72"]["inputs"]["model"] = ["13", 0]
    plain = _run(tmp_path / "plain", models, _split(parts["unet"], parts["vae_file"])).value("72")["samples"]
    a = _run(tmp_path / "lora", models, with_lora).value("72")["samples"]
    b = _run(tmp_path / "merged", models, _split("ltxv_merged.safetensors", parts["vae_file"])).value("72")["samples"]
    assert (a - b).abs().max() < 1e-4
    assert (a - plain).abs().max() > 1e-3  # the LoRA changed the result


def test_prompts_of_different_lengths_share_one_transformer_call(tmp_path, ltxv, monkeypatch):
    """The positive and negative prompts differ in token count: one batched call a step (the shorter
    padded and masked, as LTXPipeline does), giving what two separate calls give within 1e-5."""
    from nodeloom.diffusion import sampling

    models, _ = ltxv
    prompt = copy.deepcopy(WORKFLOW)
    calls = []

    def counted(fn):
        def wrapped(model, unet, group, *args, **kwargs):
            calls.append(group.context.shape[0])
            return fn(model, unet, group, *args, **kwargs)
        return wrapped

    monkeypatch.setattr(sampling, "_predict", counted(sampling._predict))
    batched = _run(tmp_path / "batched", models, copy.deepcopy(prompt))
    pos, neg = batched.value("6")[0][0], batched.value("7")[0][0]
    assert pos.shape[1] != neg.shape[1]
    steps = len(batched.value("71")) - 1
    assert calls == [2] * steps
    calls.clear()
    plain_groups = sampling._groups
    monkeypatch.setattr(sampling, "_groups", lambda entries, pad=False, areas=None: plain_groups(entries, areas=areas))
    separate = _run(tmp_path / "separate", models, copy.deepcopy(prompt))
    assert calls == [1, 1] * steps
    assert (batched.value("72")["samples"] - separate.value("72")["samples"]).abs().max() < 1e-5


def test_add_guide_takes_ic_lora_parameters_of_factor_one_only(ltxv):
    from nodeloom.diffusion.ltxv_vae import LtxvVae
    from nodeloom.nodes.diffusion.ltx_guides import LTXVAddGuide
    from nodeloom.nodes.diffusion.ltx_nodes import EmptyLTXVLatentVideo

    _, parts = ltxv
    vae = LtxvVae(parts["vae"])
    (latent,) = EmptyLTXVLatentVideo.execute(64, 64, 17, 1)
    pos, neg = [[torch.zeros(1, 3, 32), {}]], [[torch.zeros(1, 2, 32), {}]]
    image = torch.rand(1, 48, 80, 3)
    _, _, plain = LTXVAddGuide.execute(pos, neg, vae, latent, image, 0, 1.0)
    _, _, same = LTXVAddGuide.execute(pos, neg, vae, latent, image, 0, 1.0, {"reference_downscale_factor": 1})
    assert torch.equal(plain["samples"], same["samples"]) and torch.equal(plain["noise_mask"], same["noise_mask"])
    with pytest.raises(ValidationError, match="iclora_parameters.*not supported"):
        LTXVAddGuide.execute(pos, neg, vae, latent, image, 0, 1.0, {"reference_downscale_factor": 2})
    (odd,) = EmptyLTXVLatentVideo.execute(96, 64, 17, 1)  # 3 latent columns: not divisible by 2
    with pytest.raises(ValidationError, match="`latent`.*divisible"):
        LTXVAddGuide.execute(pos, neg, vae, odd, image, 0, 1.0, {"reference_downscale_factor": 2})
