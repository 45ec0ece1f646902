"""Wan 2.2 TI2V 5B end to end on tiny random weights: the 48-channel model and the Wan 2.2 VAE
saved in ComfyUI's layouts, the video_wan2_2_5B_ti2v template's graph (Wan22ImageToVideoLatent with
and without a start image) through the Engine, written with SaveVideo, and parity with diffusers'
WanPipeline / WanImageToVideoPipeline (``expand_timesteps``, the 5B's per-token times) on the latents.

Noise convention (both sides): a CPU float32 ``torch.randn`` of the latent's shape seeded with the
seed; the pipelines' scheduler is FlowMatchEulerDiscreteScheduler handed our ``simple`` sigmas.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from nodeloom.diffusion.flow import FlowSampling
from nodeloom.diffusion.schedules import calculate_sigmas
from nodeloom.testing.tiny_wan import WAN22_5B_TI2V_WORKFLOW, build_tiny_wan22
from tests.nodes.diffusion.family_helpers import engine_for, input_photo, run_ok, sigmas_scheduler

TI2V = WAN22_5B_TI2V_WORKFLOW


@pytest.fixture(scope="module")
def wan22(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return root, build_tiny_wan22(root)


def _start_image(base: Path) -> Path:
    return input_photo(base, "wan_start.png", 64)


def _model_space(raw: torch.Tensor) -> torch.Tensor:
    from nodeloom.diffusion.families.wan import latent_stats

    mean, std = latent_stats(48)
    return (raw - mean) / std


def _prompt(start: bool) -> dict:
    prompt = copy.deepcopy(TI2V)
    prompt["3"]["inputs"]["sampler_name"] = "euler"
    if not start:
        del prompt["55"]["inputs"]["start_image"], prompt["56"]
    return prompt


def test_vae_file_loads_back_exactly_and_encodes_48_channels(wan22):
    from nodeloom.diffusion.wan_vae import WanVae, read_wan_vae

    models, parts = wan22
    vae = read_wan_vae(models / "vae" / parts["vae_file"])
    theirs = parts["vae"].state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in vae.state_dict().items())
    value = WanVae(vae)
    assert (value.latent_channels, value.downscale_ratio) == (48, 16)
    latent = value.encode(torch.rand(5, 64, 64, 3))
    assert latent.shape == (1, 48, 2, 4, 4)
    assert value.decode(latent).shape == (5, 64, 64, 3)


def test_ti2v_template_runs_and_saves_a_video(tmp_path, wan22):
    _start_image(tmp_path)
    with engine_for(tmp_path, wan22[0]) as engine:
        result = run_ok(engine, copy.deepcopy(TI2V))
        latent = result.value("55")
        assert latent["samples"].shape == (1, 48, 3, 4, 4)
        assert latent["noise_mask"][0, 0, :, 0, 0].tolist() == [0.0, 1.0, 1.0]
        out = result.value("3")["samples"]
        assert torch.allclose(out[:, :, :1], latent["samples"][:, :, :1], atol=1e-5)  # the start frame stays as encoded
        frames = result.value("8")
        assert frames.shape == (9, 64, 64, 3) and frames.std() > 0.01
        saved = result.outputs["58"]["images"][0]
        assert saved["filename"].startswith("wan22_5b") and saved["filename"].endswith(".mp4")


def test_t2v_latents_match_the_diffusers_pipeline(tmp_path, wan22):
    from diffusers import WanPipeline

    models, parts = wan22
    with engine_for(tmp_path, models) as engine:
        ours = _model_space(run_ok(engine, _prompt(start=False)).value("3")["samples"])
    sigmas = calculate_sigmas(FlowSampling(shift=8.0, multiplier=1000.0), "simple", 4)
    pipe = WanPipeline(tokenizer=parts["tokenizer"], text_encoder=parts["text_encoder"], vae=parts["vae"],
                       transformer=parts["ti2v"], scheduler=sigmas_scheduler(sigmas), expand_timesteps=True)
    theirs = pipe(prompt=TI2V["6"]["inputs"]["text"], negative_prompt=TI2V["7"]["inputs"]["text"], height=64, width=64,
                  num_frames=9, num_inference_steps=4, guidance_scale=5.0, output_type="latent",
                  generator=torch.Generator().manual_seed(7)).frames
    assert theirs.shape == ours.shape == (1, 48, 3, 4, 4)
    assert (ours - theirs).abs().max() < 1e-4


def test_i2v_latents_match_the_diffusers_pipeline(tmp_path, wan22, monkeypatch):
    """The start image held in the first latent frame at time 0 (per-token times), against
    WanImageToVideoPipeline with ``expand_timesteps`` (the 5B's image-to-video)."""
    from diffusers import WanImageToVideoPipeline
    from diffusers.pipelines.wan import pipeline_wan, pipeline_wan_i2v
    from PIL import Image

    monkeypatch.setattr(pipeline_wan_i2v, "prompt_clean", pipeline_wan.prompt_clean)
    models, parts = wan22
    image = _start_image(tmp_path)
    with engine_for(tmp_path, models) as engine:
        ours = _model_space(run_ok(engine, _prompt(start=True)).value("3")["samples"])
    sigmas = calculate_sigmas(FlowSampling(shift=8.0, multiplier=1000.0), "simple", 4)
    pipe = WanImageToVideoPipeline(tokenizer=parts["tokenizer"], text_encoder=parts["text_encoder"], vae=parts["vae"],
                                   transformer=parts["ti2v"], scheduler=sigmas_scheduler(sigmas), expand_timesteps=True)
    theirs = pipe(image=Image.open(image).convert("RGB"), prompt=TI2V["6"]["inputs"]["text"],
                  negative_prompt=TI2V["7"]["inputs"]["text"], height=64, width=64, num_frames=9,
                  num_inference_steps=4, guidance_scale=5.0, output_type="latent",
                  generator=torch.Generator().manual_seed(7)).frames
    assert theirs.shape == ours.shape
    assert (ours - theirs).abs().max() < 1e-4


def test_latent_node_needs_the_wan22_vae(wan22):
    from nodeloom.diffusion.wan_vae import WanVae
    from nodeloom.node_api import ValidationError
    from nodeloom.nodes.diffusion.wan22_nodes import Wan22ImageToVideoLatent
    from nodeloom.testing.tiny_wan import tiny_wan_vae

    with pytest.raises(ValidationError, match="48 channels"):
        Wan22ImageToVideoLatent.execute(WanVae(tiny_wan_vae()), 64, 64, 9, 1, start_image=torch.rand(1, 64, 64, 3))
    with pytest.raises(ValidationError, match="`vae` must be a Wan video VAE"):
        Wan22ImageToVideoLatent.execute(object(), 64, 64, 9, 1)
    with pytest.raises(ValidationError, match="`length` 8"):
        Wan22ImageToVideoLatent.execute(WanVae(wan22[1]["vae"]), 64, 64, 8, 1)
    empty = Wan22ImageToVideoLatent.execute(WanVae(wan22[1]["vae"]), 64, 32, 5, 2)[0]
    assert empty["samples"].shape == (2, 48, 2, 2, 4) and "noise_mask" not in empty


def _fun_prompt(node: dict, unet: str, vae: str) -> dict:
    """The 5B Fun templates' graph around ``node`` (its inputs wired to the loaders and prompts)."""
    prompt = {key: copy.deepcopy(TI2V[key]) for key in ("37", "38", "39", "48", "6", "7", "56", "8", "57", "58")}
    prompt["37"]["inputs"]["unet_name"] = unet
    prompt["39"]["inputs"]["vae_name"] = vae
    node["inputs"].update(positive=["6", 0], negative=["7", 0], vae=["39", 0], width=64, height=64, length=9,
                          batch_size=1)
    prompt["73"] = node
    prompt["3"] = {"class_type": "KSampler", "inputs": {
        "model": ["48", 0], "seed": 3, "steps": 2, "cfg": 5.0, "sampler_name": "euler", "scheduler": "simple",
        "positive": ["73", 0], "negative": ["73", 1], "latent_image": ["73", 2], "denoise": 1.0}}
    return prompt


def test_fun_inpaint_5b_template_runs(tmp_path, wan22):
    """video_wan2_2_5B_fun_inpaint: WanFunInpaintToVideo with the Wan 2.2 VAE (start and end frame)."""
    _start_image(tmp_path)
    models, parts = wan22
    node = {"class_type": "WanFunInpaintToVideo", "inputs": {"start_image": ["56", 0], "end_image": ["56", 0]}}
    with engine_for(tmp_path, models) as engine:
        result = run_ok(engine, _fun_prompt(node, parts["files"]["fun_inpaint"], parts["vae_file"]))
        cond = result.value("73")[0][1]
        assert cond["concat_latent_image"].shape == (1, 48, 3, 4, 4)
        assert result.value("3")["samples"].shape == (1, 48, 3, 4, 4)
        assert result.value("8").shape == (9, 64, 64, 3)


def _group(conds: list, x: torch.Tensor):
    from nodeloom.diffusion.sampling import ModelCall, _entries

    entries = _entries(conds, x.shape[0], (64, 64))
    return ModelCall(entries, torch.cat([e.context for e in entries]), None)


def _captured(module, fn):
    """What the patch embedding saw, and the tokens the first block saw, while ``fn`` ran."""
    seen = {}

    def embedding(_m, inputs):
        seen["in"] = inputs[0].detach().clone()

    def block(_m, args, kwargs):
        seen["tokens"] = (args[0] if args else kwargs["hidden_states"]).detach().clone()

    handles = [module.patch_embedding.register_forward_pre_hook(embedding),
               module.blocks[0].register_forward_pre_hook(block, with_kwargs=True)]
    try:
        result = fn()
    finally:
        for handle in handles:
            handle.remove()
    return result, seen


def test_fun_control_5b_channels_and_reference_frame(tmp_path, wan22):
    """Wan22FunControlToVideo's conditioning as the Fun control 5B reads it: control latent, 4 mask
    channels, the (empty) start latent, in that order; the reference image's ``ref_conv`` tokens as
    an extra first frame (placed by the rotary positions before the video's), dropped from the output."""
    from nodeloom.diffusion.families.wan import FAMILY, latent_stats
    from nodeloom.diffusion.split_models import load_diffusion_model
    from nodeloom.diffusion.wan_vae import WanVae, read_wan_vae
    from nodeloom.nodes.diffusion.wan22_nodes import Wan22FunControlToVideo

    models, parts = wan22
    module, family = load_diffusion_model(models / "diffusion_models" / parts["files"]["fun_control"])
    assert family is FAMILY and module.ref_conv.weight.shape == (128, 48, 2, 2)
    vae = WanVae(read_wan_vae(models / "vae" / parts["vae_file"]))
    control, ref = torch.rand(9, 64, 64, 3), torch.rand(1, 64, 64, 3)
    cond = [[torch.randn(1, 6, 32), {}]]
    pos, neg, latent = Wan22FunControlToVideo.execute(cond, cond, vae, 64, 64, 9, 1, ref_image=ref,
                                                      control_video=control)
    extra = pos[0][1]
    assert extra["concat_latent_image"].shape == (1, 96, 3, 4, 4) and extra["concat_mask_index"] == 48
    assert len(extra["reference_latents"]) == 1 and latent["samples"].shape == (1, 48, 3, 4, 4)
    mean, std = latent_stats(48)
    x, sigma = torch.randn(1, 48, 3, 4, 4), torch.tensor(0.7)
    with torch.no_grad():
        out, seen = _captured(module, lambda: FAMILY.adapter(module, x, sigma, _group(pos, x)))
        assert out.shape == x.shape
        fed = seen["in"]
        assert fed.shape == (1, 148, 4, 4, 4)  # one extra (reference) frame before the video's three
        assert torch.allclose(fed[:, 48:96, 1:], (vae.encode(control) - mean) / std, atol=1e-5)
        assert torch.equal(fed[:, 96:100], torch.zeros_like(fed[:, 96:100]))  # no frame is known
        assert torch.allclose(fed[:, 100:, 1:], torch.zeros_like(fed[:, 100:, 1:]), atol=1e-6)  # empty start
        reference = module.ref_conv((vae.encode(ref) - mean)[:, :, 0] / std[:, :, 0]).flatten(2).transpose(1, 2)
        assert seen["tokens"].shape == (1, 4 * 2 * 2, 128)  # reference frame + three video frames of 2×2 tokens
        assert torch.allclose(seen["tokens"][:, :4], reference, atol=1e-5)
        plain = [[cond[0][0], {k: v for k, v in extra.items() if k != "reference_latents"}]]
        without = FAMILY.adapter(module, x, sigma, _group(plain, x))
    assert (out - without).abs().max() > 1e-4  # the reference steers the video


def test_fun_control_5b_template_runs_and_refs_need_ref_conv(tmp_path, wan22):
    _start_image(tmp_path)
    models, parts = wan22
    node = {"class_type": "Wan22FunControlToVideo", "inputs": {"ref_image": ["56", 0], "control_video": ["56", 0]}}
    with engine_for(tmp_path, models) as engine:
        result = run_ok(engine, _fun_prompt(copy.deepcopy(node), parts["files"]["fun_control"], parts["vae_file"]))
        assert result.value("3")["samples"].shape == (1, 48, 3, 4, 4)
        prompt = _fun_prompt(copy.deepcopy(node), parts["files"]["ti2v"], parts["vae_file"])
        failed = engine.run(prompt)
    assert failed.status == "error"
    assert any("no reference input (`ref_conv`)" in e["exception_message"] for e in failed.errors)


def test_wan21_fun_control_takes_control_and_start_latents_without_a_mask(tmp_path, wan22):
    """WanFunControlToVideo with the Wan 2.1 VAE: control latent then start latent, 32 channels the
    Fun control model (16 + 32 inputs) takes as they are."""
    from nodeloom.diffusion.families.wan import FAMILY, latent_stats
    from nodeloom.diffusion.split_models import load_diffusion_model
    from nodeloom.diffusion.wan_vae import WanVae
    from nodeloom.nodes.diffusion.wan22_nodes import WanFunControlToVideo

    models, parts = wan22
    module, _ = load_diffusion_model(models / "diffusion_models" / parts["files"]["fun_control21"])
    vae = WanVae(parts["vae21"])
    start, control = torch.rand(1, 32, 32, 3), torch.rand(5, 32, 32, 3)
    cond = [[torch.randn(1, 6, 32), {}]]
    pos, _, latent = WanFunControlToVideo.execute(cond, cond, vae, 32, 32, 5, 1, start_image=start,
                                                  control_video=control)
    concat = pos[0][1]["concat_latent_image"]
    assert concat.shape == (1, 32, 2, 4, 4) and latent["samples"].shape == (1, 16, 2, 4, 4)
    mean, std = latent_stats(16)
    x = torch.randn(1, 16, 2, 4, 4)
    with torch.no_grad():
        _, seen = _captured(module, lambda: FAMILY.adapter(module, x, torch.tensor(0.5), _group(pos, x)))
    fed = seen["in"]
    assert fed.shape == (1, 48, 2, 4, 4)
    assert torch.allclose(fed[:, 16:32], (vae.encode(control) - mean) / std, atol=1e-5)
    assert torch.allclose(fed[:, 32:, :1], (vae.encode(start) - mean) / std, atol=1e-5)
    assert torch.allclose(fed[:, 32:, 1:], torch.zeros_like(fed[:, 32:, 1:]), atol=1e-6)


def test_fun_camera_adds_the_camera_adapter_to_the_patch_embedding(tmp_path, wan22):
    """WanCameraEmbedding → WanCameraImageToVideo → a Fun camera model: the adapter's output (the
    Plücker rays pixel-unshuffled, patchified, refined) is added to the video's patch embedding."""
    from nodeloom.diffusion.families.wan import FAMILY
    from nodeloom.diffusion.split_models import load_diffusion_model
    from nodeloom.diffusion.wan_vae import WanVae
    from nodeloom.nodes.diffusion.wan_camera_nodes import WanCameraEmbedding, WanCameraImageToVideo

    models, parts = wan22
    module, _ = load_diffusion_model(models / "diffusion_models" / parts["files"]["camera"])
    assert module.control_adapter.conv.weight.shape == (128, 24 * 64, 2, 2)
    camera, width, height, length = WanCameraEmbedding.execute("Pan Left", 32, 32, 9, speed=1.5)
    assert camera.shape == (1, 24, 3, 32, 32) and (width, height, length) == (32, 32, 9)
    cond = [[torch.randn(1, 6, 32), {}]]
    pos, _, latent = WanCameraImageToVideo.execute(cond, cond, WanVae(parts["vae21"]), 32, 32, 9, 1,
                                                   start_image=torch.rand(1, 32, 32, 3), camera_conditions=camera)
    assert pos[0][1]["camera_conditions"] is camera and pos[0][1]["concat_mask"].shape == (1, 4, 3, 4, 4)
    x, sigma = latent["samples"] + torch.randn(1, 16, 3, 4, 4), torch.tensor(0.6)
    with torch.no_grad():
        out, seen = _captured(module, lambda: FAMILY.adapter(module, x, sigma, _group(pos, x)))
        plain = [[cond[0][0], {k: v for k, v in pos[0][1].items() if k != "camera_conditions"}]]
        _, base = _captured(module, lambda: FAMILY.adapter(module, x, sigma, _group(plain, x)))
        added = module.control_adapter(camera).flatten(2).transpose(1, 2)
    assert out.shape == x.shape
    assert torch.allclose(seen["tokens"], base["tokens"] + added, atol=1e-5)
    with pytest.raises(Exception, match="connect WanCameraEmbedding's width, height and length"):
        WanCameraImageToVideo.execute(cond, cond, WanVae(parts["vae21"]), 64, 32, 9, 1, camera_conditions=camera)


def test_fun_camera_graph_runs_and_a_camera_needs_the_adapter(tmp_path, wan22):
    models, parts = wan22
    input_photo(tmp_path, "wan_start.png", 32)
    prompt = {key: copy.deepcopy(TI2V[key]) for key in ("37", "38", "39", "48", "6", "7", "56", "8", "57", "58")}
    prompt["37"]["inputs"]["unet_name"] = parts["files"]["camera"]
    prompt["39"]["inputs"]["vae_name"] = parts["vae21_file"]
    prompt["60"] = {"class_type": "WanCameraEmbedding", "inputs": {"camera_pose": "Zoom In", "width": 32, "height": 32,
                                                                   "length": 9, "speed": 1.0}}
    prompt["73"] = {"class_type": "WanCameraImageToVideo", "inputs": {
        "positive": ["6", 0], "negative": ["7", 0], "vae": ["39", 0], "width": ["60", 1], "height": ["60", 2],
        "length": ["60", 3], "batch_size": 1, "start_image": ["56", 0], "camera_conditions": ["60", 0]}}
    prompt["3"] = {"class_type": "KSampler", "inputs": {
        "model": ["48", 0], "seed": 3, "steps": 2, "cfg": 5.0, "sampler_name": "euler", "scheduler": "simple",
        "positive": ["73", 0], "negative": ["73", 1], "latent_image": ["73", 2], "denoise": 1.0}}
    with engine_for(tmp_path, models) as engine:
        result = run_ok(engine, copy.deepcopy(prompt))
        assert result.value("3")["samples"].shape == (1, 16, 3, 4, 4)
        assert result.value("8").shape == (9, 32, 32, 3)
        prompt["37"]["inputs"]["unet_name"] = parts["files"]["fun_control21"]
        prompt["73"]["inputs"]["positive"] = ["6", 0]
        failed = engine.run(prompt)
    assert failed.status == "error"
    assert any("no camera adapter (`control_adapter`)" in e["exception_message"] for e in failed.errors)


def test_our_camera_move_drives_the_fun_camera_model_through_the_graph(tmp_path, wan22):
    """SemanticCamera (a push-in) → CameraToWanEmbedding → WanCameraImageToVideo → a Fun camera
    model on the Engine: the embedding reaches the model's conditioning, and a different move
    gives a different video."""
    from nodeloom.nodes.diffusion.wan_camera_nodes import CameraToWanEmbedding
    from nodeloom.nodes.video.camera_nodes import SemanticCamera

    models, parts = wan22
    input_photo(tmp_path, "wan_start.png", 32)
    prompt = {key: copy.deepcopy(TI2V[key]) for key in ("37", "38", "39", "48", "6", "7", "56", "8", "57", "58")}
    prompt["37"]["inputs"]["unet_name"] = parts["files"]["camera"]
    prompt["39"]["inputs"]["vae_name"] = parts["vae21_file"]
    prompt["59"] = {"class_type": "SemanticCamera", "inputs": {
        "frames": 24, "preset": "zoom in", "horizontal": 0.0, "vertical": 0.0, "pan": 0.0, "tilt": 0.0, "roll": 0.0,
        "zoom": 0.0, "strength": 1.0, "easing": "ease_in_out", "fov": 60.0}}
    prompt["60"] = {"class_type": "CameraToWanEmbedding", "inputs": {"camera": ["59", 0], "width": 32, "height": 32,
                                                                     "length": 9, "scale": 4.0}}
    prompt["73"] = {"class_type": "WanCameraImageToVideo", "inputs": {
        "positive": ["6", 0], "negative": ["7", 0], "vae": ["39", 0], "width": ["60", 1], "height": ["60", 2],
        "length": ["60", 3], "batch_size": 1, "start_image": ["56", 0], "camera_conditions": ["60", 0]}}
    prompt["3"] = {"class_type": "KSampler", "inputs": {
        "model": ["48", 0], "seed": 3, "steps": 2, "cfg": 5.0, "sampler_name": "euler", "scheduler": "simple",
        "positive": ["73", 0], "negative": ["73", 1], "latent_image": ["73", 2], "denoise": 1.0}}
    (move,) = SemanticCamera.execute(24, preset="zoom in")
    expected = CameraToWanEmbedding.execute(move, 32, 32, 9, scale=4.0)[0]
    with engine_for(tmp_path, models) as engine:
        result = run_ok(engine, copy.deepcopy(prompt))
        assert torch.equal(result.value("73")[0][1]["camera_conditions"], expected)
        pushed = result.value("3")["samples"]
        assert pushed.shape == (1, 16, 3, 4, 4) and result.value("8").shape == (9, 32, 32, 3)
        prompt["59"]["inputs"]["preset"] = "static"
        still = run_ok(engine, prompt).value("3")["samples"]
    assert not torch.allclose(pushed, still)


def test_script_to_film_example_moves_each_shot_with_its_storyboard_camera(tmp_path, wan22):
    """examples/workflows/video_script_to_film_wan_camera.json on the tiny files (linked under the
    real names, 32² and 2 steps; the tiny Fun camera model has no CLIP image embedding, so the
    CLIP-vision nodes are left out): each storyboard shot's camera move (static, push in, track
    left) becomes its Wan camera embedding at its length rounded down to 4k + 1 frames (16 fps:
    16, 24, 32 → 13, 21, 29), reaches the model's conditioning, and the film comes out."""
    import json

    from nodeloom.nodes.diffusion.wan_camera_nodes import WanCameraEmbedding

    models, parts = wan22
    example = json.loads((Path(__file__).parents[3] / "examples" / "workflows" / "video_script_to_film_wan_camera.json")
                         .read_text(encoding="utf-8"))
    links = {("diffusion_models", example["20"]["inputs"]["unet_name"]): parts["files"]["camera"],
             ("text_encoders", example["21"]["inputs"]["clip_name"]): TI2V["38"]["inputs"]["clip_name"],
             ("vae", example["22"]["inputs"]["vae_name"]): parts["vae21_file"]}
    for (folder, name), tiny in links.items():
        if not (models / folder / name).exists():
            (models / folder / name).symlink_to(models / folder / tiny)
    del example["31"], example["32"], example["34"]["inputs"]["clip_vision_output"]
    example["33"]["inputs"].update(width=32, height=32)
    example["28"]["inputs"]["steps"] = 2
    with engine_for(tmp_path, models) as engine:
        result = run_ok(engine, example)
    static, push, track = result.value("33")
    assert result.value("33", 3) == [13, 21, 29] and result.value("13", 1) == "13, 21, 29"
    assert torch.equal(static, WanCameraEmbedding.execute("Static", 32, 32, 13)[0])
    for embedding, preset in ((push, "Zoom In"), (track, "Pan Left")):  # moments point the preset's way
        theirs = WanCameraEmbedding.execute(preset, 32, 32, embedding.shape[2] * 4 - 3)[0]
        cosine = torch.nn.functional.cosine_similarity(embedding[:, :12].flatten(), theirs[:, :12].flatten(), dim=0)
        assert cosine > 0.9
    conditioned = result.value("34")
    assert [c[0][1]["camera_conditions"].shape[2] for c in conditioned] == [4, 6, 8]
    assert result.outputs["15"]["images"] and result.outputs["16"]["images"]
