"""Wan 2.1 / 2.2 end to end on tiny random weights: the split files in the layouts ComfyUI users
download, the official templates' graphs (2.1 text-to-video; 2.2 image-to-video with the
high/low-noise expert pair on KSamplerAdvanced) through the Engine and a live server, written with
SaveVideo and read back with PyAV, and parity with diffusers' WanPipeline and
WanImageToVideoPipeline on the latents.

Noise convention (both sides): the initial noise is a CPU float32 ``torch.randn`` of the latent's
shape ``[1,16,t,h,w]`` from a generator seeded with the seed; the pipelines' scheduler is
FlowMatchEulerDiscreteScheduler handed our ``simple`` sigmas (shift 1, so they are not shifted
again); their ``guidance_scale`` is ComfyUI's cfg.
"""

from __future__ import annotations

import copy
from pathlib import Path

import av
import pytest
import torch

from nodeloom.diffusion.flow import FlowSampling
from nodeloom.diffusion.schedules import calculate_sigmas
from nodeloom.testing.tiny_wan import WAN21_T2V_WORKFLOW, WAN22_I2V_WORKFLOW, build_tiny_wan
from tests.nodes.diffusion.family_helpers import engine_for, run_ok, run_served

T2V, I2V = WAN21_T2V_WORKFLOW, WAN22_I2V_WORKFLOW


@pytest.fixture(scope="module")
def wan(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return root, build_tiny_wan(root)


def _start_image(base: Path) -> Path:
    """A 32² start frame from scikit-image's shipped photo, in the engine's input folder."""
    from PIL import Image
    from skimage import data

    (base / "input").mkdir(parents=True, exist_ok=True)
    path = base / "input" / "wan_start.png"
    Image.fromarray(data.astronaut()).resize((32, 32)).save(path)
    return path


def _read_back(engine, saved: dict) -> tuple[int, float]:
    path = engine.paths.output_dir / saved["subfolder"] / saved["filename"]
    with av.open(str(path)) as box:
        stream = box.streams.video[0]
        return sum(1 for _ in box.decode(stream)), float(stream.average_rate)


def test_t2v_template_runs_and_saves_a_video(tmp_path, wan):
    with engine_for(tmp_path, wan[0]) as engine:
        result = run_ok(engine, copy.deepcopy(T2V))
        assert result.value("3")["samples"].shape == (1, 16, 3, 4, 4)
        frames = result.value("8")
        assert frames.shape == (9, 32, 32, 3) and frames.std() > 0.01
        assert _read_back(engine, result.outputs["50"]["images"][0]) == (9, 16.0)


def _sigmas(shift: float, steps: int) -> torch.Tensor:
    return calculate_sigmas(FlowSampling(shift=shift, multiplier=1000.0), "simple", steps)


def _scheduler(sigmas: torch.Tensor):
    """A FlowMatchEuler scheduler that takes our sigmas whatever step count the pipeline asks for."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler(shift=1.0)
    plain = sched.set_timesteps
    sched.set_timesteps = lambda *args, device=None, **kw: plain(sigmas=sigmas[:-1].tolist(), device=device)
    return sched


def _model_space(raw: torch.Tensor) -> torch.Tensor:
    from nodeloom.diffusion.families.wan import latent_stats

    mean, std = latent_stats()
    return (raw - mean) / std


def test_t2v_latents_match_the_diffusers_pipeline(tmp_path, wan):
    from diffusers import WanPipeline

    models, parts = wan
    prompt = copy.deepcopy(T2V)
    prompt["3"]["inputs"].update(sampler_name="euler", cfg=6.0)
    with engine_for(tmp_path, models) as engine:
        ours = _model_space(run_ok(engine, prompt).value("3")["samples"])
    pipe = WanPipeline(tokenizer=parts["tokenizer"], text_encoder=parts["text_encoder"], vae=parts["vae"],
                       transformer=parts["t2v"], scheduler=_scheduler(_sigmas(8.0, 4)))
    theirs = pipe(prompt=T2V["6"]["inputs"]["text"], negative_prompt=T2V["7"]["inputs"]["text"], height=32, width=32,
                  num_frames=9, num_inference_steps=4, guidance_scale=6.0, output_type="latent",
                  generator=torch.Generator().manual_seed(5)).frames
    assert theirs.shape == ours.shape
    assert (ours - theirs).abs().max() < 1e-4


def test_wan22_two_expert_i2v_matches_the_diffusers_pipeline(tmp_path, wan, monkeypatch):
    """High-noise expert for steps 0–2, low-noise for 2–4 (the template's KSamplerAdvanced pair) against
    WanImageToVideoPipeline with ``transformer_2`` and a boundary between the second and third timestep.
    (diffusers' image-to-video module calls ftfy unguarded; its text-to-video twin's cleaner is used.)"""
    from diffusers import WanImageToVideoPipeline
    from diffusers.pipelines.wan import pipeline_wan, pipeline_wan_i2v
    from PIL import Image

    monkeypatch.setattr(pipeline_wan_i2v, "prompt_clean", pipeline_wan.prompt_clean)

    models, parts = wan
    image = _start_image(tmp_path)
    with engine_for(tmp_path, models) as engine:
        result = run_ok(engine, copy.deepcopy(I2V))
        ours = _model_space(result.value("85")["samples"])
        assert _read_back(engine, result.outputs["108"]["images"][0]) == (9, 16.0)
    sigmas = _sigmas(5.0, 4)
    pipe = WanImageToVideoPipeline(tokenizer=parts["tokenizer"], text_encoder=parts["text_encoder"], vae=parts["vae"],
                                   transformer=parts["i2v_high"], transformer_2=parts["i2v_low"],
                                   scheduler=_scheduler(sigmas), boundary_ratio=float(sigmas[1] + sigmas[2]) / 2)
    theirs = pipe(image=Image.open(image).convert("RGB"), prompt=I2V["93"]["inputs"]["text"],
                  negative_prompt=I2V["89"]["inputs"]["text"], height=32, width=32, num_frames=9, num_inference_steps=4,
                  guidance_scale=3.5, guidance_scale_2=3.5, output_type="latent",
                  generator=torch.Generator().manual_seed(21)).frames
    assert theirs.shape == ours.shape
    assert (ours - theirs).abs().max() < 1e-4


def test_t2v_template_runs_through_a_live_server(tmp_path, wan):
    entry = run_served(tmp_path, wan[0], copy.deepcopy(T2V))
    saved = entry["outputs"]["50"]["images"][0]
    assert saved["filename"].startswith("wan_t2v") and saved["filename"].endswith(".mp4")


def _error(engine, prompt: dict, node: str) -> str:
    result = engine.run(prompt)
    assert result.status == "error"
    errors = [e for e in result.errors if e.get("node_id") == node]
    assert errors, result.errors
    return errors[0]["exception_message"]


def test_bad_frame_counts_and_unsupported_variants_are_explained(tmp_path, wan):
    from safetensors.torch import load_file, save_file

    models, parts = wan
    src = models / "diffusion_models" / parts["files"]["t2v"]
    sd = load_file(str(src))
    sd["model.diffusion_model.control_adapter.conv.weight"] = torch.zeros(4, 4, 1, 1)
    save_file(sd, str(models / "diffusion_models" / "tiny_wan_fun_camera.safetensors"))
    with engine_for(tmp_path, models) as engine:
        prompt = copy.deepcopy(T2V)
        prompt["40"]["inputs"]["length"] = 8
        message = _error(engine, prompt, "40")
        assert "`length` 8" in message and "4k + 1" in message and "5 and 9" in message
        prompt = copy.deepcopy(T2V)
        prompt["37"]["inputs"]["unet_name"] = "tiny_wan_fun_camera.safetensors"
        assert "Fun camera" in _error(engine, prompt, "37")


def test_image_to_video_needs_a_video_vae(tmp_path, wan):
    from nodeloom.nodes.diffusion.wan_nodes import WanImageToVideo
    from nodeloom.node_api import ValidationError

    with pytest.raises(ValidationError, match="video VAE"):
        WanImageToVideo.execute([], [], object(), 32, 32, 9, 1, start_image=torch.rand(1, 32, 32, 3))


def _panning_clip(frames: int = 17, size: int = 64, step: int = 2) -> torch.Tensor:
    """A camera pan over scikit-image's astronaut photo: ``[frames, size, size, 3]``."""
    import torch.nn.functional as F
    from skimage import data

    img = torch.from_numpy(data.astronaut()).float().movedim(-1, 0)[None] / 255
    still = F.interpolate(img, size=(size, size), mode="bilinear")[0].movedim(0, -1)
    return torch.stack([torch.roll(still, shifts=step * i, dims=1) for i in range(frames)])


def test_tiled_decode_agrees_with_the_whole_decode(wan):
    """In time the streamed decode equals the whole one (the causal cache carries over); spatial
    tiles of 6 latent pixels overlapping by 2 stay far closer to it than a neighbouring frame is."""
    from nodeloom.diffusion.wan_vae import WanVae

    vae = WanVae(wan[1]["vae"])
    latent = vae.encode(_panning_clip())
    assert latent.shape == (1, 16, 5, 8, 8)
    whole = vae.decode(latent)
    assert whole.shape == (17, 64, 64, 3)
    assert torch.allclose(vae.decode_tiled(latent, tile=64, overlap=8, temporal_size=8, temporal_overlap=4), whole,
                          atol=1e-5)
    tiled = vae.decode_tiled(latent, tile=6, overlap=2, temporal_size=8, temporal_overlap=4)
    neighbour = (whole[1:] - whole[:-1]).abs().mean()
    assert (tiled - whole).abs().mean() < 0.5 * neighbour


def test_first_last_frame_with_clip_vision_runs(tmp_path, wan):
    """The Wan 2.1 first–last-frame graph: both frames through CLIPVisionEncode (their states joined
    for the model's image embedder) and WanFirstLastFrameToVideo; the last frame's latent is known."""
    from nodeloom.testing.tiny_clip_vision import save_vision_file, tiny_vision_model

    models, parts = wan
    save_vision_file(tiny_vision_model("clip_h"), models / "clip_vision" / "tiny_clip_vision_h.safetensors")
    from PIL import Image

    Image.open(_start_image(tmp_path)).transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(tmp_path / "input" / "wan_end.png")
    prompt = {k: v for k, v in copy.deepcopy(T2V).items() if k != "40"}
    prompt["37"]["inputs"]["unet_name"] = parts["files"]["flf2v"]
    prompt.update({
        "60": {"class_type": "LoadImage", "inputs": {"image": "wan_start.png"}},
        "61": {"class_type": "LoadImage", "inputs": {"image": "wan_end.png"}},
        "62": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "tiny_clip_vision_h.safetensors"}},
        "63": {"class_type": "CLIPVisionEncode", "inputs": {"clip_vision": ["62", 0], "image": ["60", 0], "crop": "none"}},
        "64": {"class_type": "CLIPVisionEncode", "inputs": {"clip_vision": ["62", 0], "image": ["61", 0], "crop": "none"}},
        "65": {"class_type": "WanFirstLastFrameToVideo", "inputs": {
            "positive": ["6", 0], "negative": ["7", 0], "vae": ["39", 0], "width": 32, "height": 32, "length": 9,
            "batch_size": 1, "clip_vision_start_image": ["63", 0], "clip_vision_end_image": ["64", 0],
            "start_image": ["60", 0], "end_image": ["61", 0]}},
    })
    prompt["3"]["inputs"].update(positive=["65", 0], negative=["65", 1], latent_image=["65", 2])
    with engine_for(tmp_path, models) as engine:
        result = run_ok(engine, prompt)
        cond = result.value("65")[0][1]  # the positive conditioning's first entry
        assert cond["clip_vision_output"]["penultimate_hidden_states"].shape == (1, 34, 32)
        assert cond["concat_mask"].shape == (1, 4, 3, 4, 4)
        mask = cond["concat_mask"][0, :, :, 0, 0]  # [4 sub-frames, 3 latent frames], 0 = known video frame
        assert mask.tolist() == [[0, 1, 1], [0, 1, 1], [0, 1, 1], [0, 1, 0]]
        assert result.value("8").shape == (9, 32, 32, 3)


def test_long_clip_in_overlapping_windows(tmp_path, wan):
    """WanContextWindowsManual: 17 frames (5 latent) in windows of 9 frames (3 latent) overlapping by
    one latent frame; a window as long as the clip changes nothing."""
    models, _ = wan
    long_clip = copy.deepcopy(T2V)
    long_clip["40"]["inputs"]["length"] = 17
    windowed = copy.deepcopy(long_clip)
    windowed["70"] = {"class_type": "WanContextWindowsManual", "inputs": {
        "model": ["48", 0], "context_length": 9, "context_overlap": 4, "context_schedule": "standard_static",
        "context_stride": 1, "closed_loop": False, "fuse_method": "pyramid"}}
    windowed["3"]["inputs"]["model"] = ["70", 0]
    whole_window = copy.deepcopy(windowed)
    whole_window["70"]["inputs"]["context_length"] = 17
    with engine_for(tmp_path, models) as engine:
        plain = run_ok(engine, long_clip).value("3")["samples"]
        ours = run_ok(engine, windowed).value("3")["samples"]
        same = run_ok(engine, whole_window).value("3")["samples"]
        assert run_ok(engine, windowed).value("8").shape == (17, 32, 32, 3)
    assert ours.shape == plain.shape == (1, 16, 5, 4, 4)
    assert torch.isfinite(ours).all() and (ours - plain).abs().max() > 1e-3
    assert torch.allclose(same, plain, atol=1e-4)  # one window: only the weighting's rounding


def test_wan_lora_in_the_release_layout_equals_its_merged_weights(tmp_path, wan):
    """A LoRA keyed as Wan's speed-up LoRAs ship (``diffusion_model.blocks.N.<layer>.lora_down``/``lora_up``
    with an alpha) at strength 0.7 equals the weights merged into the file."""
    from safetensors.torch import save_file

    from nodeloom.testing.tiny_wan import transformer_to_original
    from tests.nodes.diffusion.family_helpers import lora_pair

    models, parts = wan
    base = {k: v.clone() for k, v in transformer_to_original(parts["t2v"].state_dict()).items()}
    down1, up1 = lora_pair(base, "blocks.0.self_attn.q.weight", seed=1)
    down2, up2 = lora_pair(base, "blocks.1.ffn.0.weight", seed=2)
    (models / "loras").mkdir(exist_ok=True)
    save_file({"diffusion_model.blocks.0.self_attn.q.lora_down.weight": down1,
               "diffusion_model.blocks.0.self_attn.q.lora_up.weight": up1,
               "diffusion_model.blocks.0.self_attn.q.alpha": torch.tensor(2.0),
               "diffusion_model.blocks.1.ffn.0.lora_down.weight": down2,
               "diffusion_model.blocks.1.ffn.0.lora_up.weight": up2,
               "diffusion_model.blocks.1.ffn.0.alpha": torch.tensor(4.0)}, str(models / "loras" / "wan_lora.safetensors"))
    merged = {k: v for k, v in base.items()}
    merged["blocks.0.self_attn.q.weight"] = base["blocks.0.self_attn.q.weight"] + 0.7 * 0.5 * up1 @ down1
    merged["blocks.1.ffn.0.weight"] = base["blocks.1.ffn.0.weight"] + 0.7 * up2 @ down2
    save_file({"model.diffusion_model." + k: v.contiguous() for k, v in merged.items()},
              str(models / "diffusion_models" / "wan_merged.safetensors"))
    with_lora = copy.deepcopy(T2V)
    with_lora["80"] = {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["37", 0], "lora_name": "wan_lora.safetensors",
                                                                       "strength_model": 0.7}}
    with_lora["48"]["inputs"]["model"] = ["80", 0]
    merged_prompt = copy.deepcopy(T2V)
    merged_prompt["37"]["inputs"]["unet_name"] = "wan_merged.safetensors"
    with engine_for(tmp_path / "a", models) as engine:
        a = run_ok(engine, with_lora).value("3")["samples"]
        plain = run_ok(engine, copy.deepcopy(T2V)).value("3")["samples"]
    with engine_for(tmp_path / "b", models) as engine:
        b = run_ok(engine, merged_prompt).value("3")["samples"]
    assert (a - b).abs().max() < 1e-3 * b.abs().max()
    assert (a - plain).abs().max() > 1e-3


def test_script_to_film_example_generates_each_shot_with_wan(tmp_path, wan):
    """examples/workflows/video_script_to_film_wan.json on the tiny files (linked under the real
    names, 32² and 2 steps): each storyboard shot is generated at its length rounded down to 4k + 1
    frames (16 fps: 24, 16, 32 → 21, 13, 29), smoothed across shots and assembled with the cut and
    the 4-frame fade; the MP4 and the drift report come out."""
    import json

    models, parts = wan
    example = json.loads((Path(__file__).parents[3] / "examples" / "workflows" / "video_script_to_film_wan.json")
                         .read_text(encoding="utf-8"))
    links = {("diffusion_models", example["20"]["inputs"]["unet_name"]): parts["files"]["t2v"],
             ("text_encoders", example["21"]["inputs"]["clip_name"]): parts["clip"],
             ("vae", example["22"]["inputs"]["vae_name"]): parts["vae_file"]}
    for (folder, name), tiny in links.items():
        if not (models / folder / name).exists():
            (models / folder / name).symlink_to(models / folder / tiny)
    example["27"]["inputs"].update(width=32, height=32)
    example["28"]["inputs"]["steps"] = 2
    with engine_for(tmp_path, models) as engine:
        result = run_ok(engine, example)
        assert result.value("13", 1) == "21, 13, 29"
        report = json.loads(result.value("13", 2))
        assert len(report["shots"] if isinstance(report, dict) else report) >= 2
        assert _read_back(engine, result.outputs["15"]["images"][0]) == (21 + 13 + 29 - 4, 16.0)
        assert result.outputs["16"]["images"]


def test_fun_inpaint_is_first_last_frame_with_the_start_image_vision(wan):
    from nodeloom.diffusion.wan_vae import WanVae
    from nodeloom.nodes.diffusion.wan_nodes import WanFirstLastFrameToVideo, WanFunInpaintToVideo

    vae = WanVae(wan[1]["vae"])
    start, end = torch.rand(1, 40, 40, 3), torch.rand(1, 40, 40, 3)
    vision = {"penultimate_hidden_states": torch.randn(1, 17, 32)}
    cond = [[torch.zeros(1, 4, 32), {}]]
    fun = WanFunInpaintToVideo.execute(cond, cond, vae, 32, 32, 9, 1, start_image=start, end_image=end,
                                       clip_vision_output=vision)
    flf = WanFirstLastFrameToVideo.execute(cond, cond, vae, 32, 32, 9, 1, start_image=start, end_image=end,
                                           clip_vision_start_image=vision)
    assert fun[2]["samples"].shape == (1, 16, 3, 4, 4)
    for key in ("concat_latent_image", "concat_mask"):
        assert torch.equal(fun[0][0][1][key], flf[0][0][1][key])
    assert fun[0][0][1]["clip_vision_output"] is vision


def test_vace_reference_to_video_template_runs(tmp_path, wan):
    """The VACE graph (video_wan_vace_14B_ref2v shape): a control video with a mask and a reference
    image → WanVaceToVideo (the reference adds a latent frame) → KSampler → TrimVideoLatent by
    `trim_latent` → VAE Decode; the control steers the result (strength 0 vs 1 differ)."""
    models, parts = wan
    _start_image(tmp_path)
    prompt = copy.deepcopy(T2V)
    prompt["37"]["inputs"]["unet_name"] = parts["files"]["vace"]
    del prompt["40"]
    prompt.update({
        "60": {"class_type": "LoadImage", "inputs": {"image": "wan_start.png"}},
        "61": {"class_type": "RepeatImageBatch", "inputs": {"image": ["60", 0], "amount": 9}},
        "62": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 32, "height": 32}},
        "63": {"class_type": "WanVaceToVideo", "inputs": {
            "positive": ["6", 0], "negative": ["7", 0], "vae": ["39", 0], "width": 32, "height": 32, "length": 9,
            "batch_size": 1, "strength": 1.0, "control_video": ["61", 0], "control_masks": ["62", 0],
            "reference_image": ["60", 0]}},
        "64": {"class_type": "TrimVideoLatent", "inputs": {"samples": ["3", 0], "trim_amount": ["63", 3]}},
    })
    prompt["3"]["inputs"].update(positive=["63", 0], negative=["63", 1], latent_image=["63", 2])
    prompt["8"]["inputs"]["samples"] = ["64", 0]
    weak = copy.deepcopy(prompt)
    weak["63"]["inputs"]["strength"] = 0.0
    with engine_for(tmp_path, models) as engine:
        result = run_ok(engine, prompt)
        assert result.value("63", 3) == 1
        assert result.value("3")["samples"].shape == (1, 16, 4, 4, 4)
        assert result.value("8").shape == (9, 32, 32, 3)
        cond = result.value("63")[0][1]
        assert cond["vace_frames"][0].shape == (1, 32, 4, 4, 4) and cond["vace_mask"][0].shape == (1, 64, 4, 4, 4)
        other = run_ok(engine, weak).value("64")["samples"]
    assert (other - result.value("64")["samples"]).abs().max() > 1e-3
