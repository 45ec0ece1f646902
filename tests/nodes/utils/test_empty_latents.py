"""Empty latents of audio and image families: shapes, LATENT keys, declarations, and the Qwen
layered stack cut into layers the way its template does."""

from __future__ import annotations

import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.nodes.utils import NODE_CLASS_MAPPINGS as NODES
from nodeloom.nodes.utils.empty_latents import audio_latent_length
from tests.nodes.conftest import run_prompt


def call(class_type: str, **inputs):
    cls = NODES[class_type]
    return getattr(cls(), cls.FUNCTION)(**inputs)[0]


def test_stable_audio_latent_counts_even_frames_of_2048_samples():
    out = call("EmptyLatentAudio", seconds=47.6, batch_size=2)
    # 47.6 s · 44100 / 2048 = 1024.98 frames, rounded to an even count
    assert out["samples"].shape == (2, 64, 1024) and out["type"] == "audio" and out["downscale_ratio_temporal"] == 2048
    assert not out["samples"].any()
    assert call("EmptyLatentAudio", seconds=60, batch_size=1)["samples"].shape == (1, 64, 1292)  # 1291.99
    assert call("EmptyLatentAudio", seconds=1.0, batch_size=1)["samples"].shape == (1, 64, 22)  # 21.53 → 22


def test_ace_step_latents_have_their_families_shapes():
    v1 = call("EmptyAceStepLatentAudio", seconds=120.0, batch_size=1)
    assert v1["samples"].shape == (1, 8, 16, int(120 * 44100 / 512 / 8)) == (1, 8, 16, 1291) and v1["type"] == "audio"
    assert call("EmptyAceStepLatentAudio", seconds=30, batch_size=3)["samples"].shape == (3, 8, 16, 322)
    v15 = call("EmptyAceStep1.5LatentAudio", seconds=120.0, batch_size=2)
    assert v15["samples"].shape == (2, 64, 3000) and v15["downscale_ratio_temporal"] == 1764
    assert call("EmptyAceStep1.5LatentAudio", seconds=12.51, batch_size=1)["samples"].shape[-1] == round(12.51 * 25)


def test_yue2_latent_has_25_frames_a_second():
    out = call("EmptyYuE2LatentAudio", seconds=120.0, batch_size=2)
    assert out["samples"].shape == (2, 64, 3000) and out["type"] == "audio" and out["downscale_ratio_temporal"] == 1920
    assert not out["samples"].any()
    assert call("EmptyYuE2LatentAudio", seconds=12.34, batch_size=1)["samples"].shape == (1, 64, 308)  # 308.5 → 308
    assert call("EmptyYuE2LatentAudio", seconds=0.01, batch_size=1)["samples"].shape == (1, 64, 1)  # at least one


def test_minimax_music3_latent_converts_acoustic_frames_to_vae_frames():
    out = call("EmptyMiniMaxMusic3LatentAudio", seconds=120.0, batch_size=1)
    # 3000 acoustic frames of 960 samples at 24 kHz = 120 s = 5292000 samples at 44.1 kHz = 10335.9 frames of 512
    assert out["samples"].shape == (1, 128, 10335) and out["type"] == "audio"
    assert out["downscale_ratio_temporal"] == 512
    assert call("EmptyMiniMaxMusic3LatentAudio", seconds=1.0, batch_size=3)["samples"].shape == (3, 128, 86)
    # past 360 s the length stops at 9000 acoustic frames
    assert audio_latent_length(400.0, "minimax_music3") == audio_latent_length(360.0, "minimax_music3") == 31007


def test_pixel_space_and_layered_image_latents():
    hidream = call("EmptyHiDreamO1LatentImage", width=96, height=64, batch_size=2)
    assert hidream["samples"].shape == (2, 3, 64, 96) and not hidream["samples"].any()
    chroma = call("EmptyChromaRadianceLatentImage", width=48, height=32, batch_size=1)
    assert chroma["samples"].shape == (1, 3, 32, 48)
    layered = call("EmptyQwenImageLayeredLatentImage", width=64, height=48, layers=2, batch_size=1)
    assert layered["samples"].shape == (1, 16, 3, 6, 8)
    assert call("EmptyQwenImageLayeredLatentImage", width=64, height=64, layers=0, batch_size=2)["samples"].shape == (2, 16, 1, 8, 8)


def test_bad_sizes_are_refused_with_the_input_named():
    with pytest.raises(ValidationError, match="seconds"):
        audio_latent_length(0.0, "stable_audio")
    with pytest.raises(ValidationError, match="family"):
        audio_latent_length(1.0, "mp3")
    with pytest.raises(ValidationError, match="batch_size"):
        call("EmptyHiDreamO1LatentImage", width=64, height=64, batch_size=65)
    with pytest.raises(ValidationError, match="layers"):
        call("EmptyQwenImageLayeredLatentImage", width=64, height=64, layers=-1, batch_size=1)
    with pytest.raises(ValidationError, match="width"):
        call("EmptyChromaRadianceLatentImage", width=8, height=64, batch_size=1)


def test_declarations_match_comfyui(image_engine):
    info = image_engine.object_info()
    assert info["EmptyLatentAudio"]["input"]["required"]["seconds"][1] | {"tooltip": None} == {
        "default": 47.6, "min": 1.0, "max": 1000.0, "step": 0.1, "tooltip": None}
    assert info["EmptyLatentAudio"]["category"] == "latent/audio"
    assert info["EmptyAceStep1.5LatentAudio"]["input"]["required"]["seconds"][1]["step"] == 0.01
    hd = info["EmptyHiDreamO1LatentImage"]["input"]["required"]
    assert (hd["width"][1]["default"], hd["width"][1]["min"], hd["width"][1]["max"], hd["width"][1]["step"]) == (2048, 64, 4096, 32)
    assert hd["batch_size"][1]["max"] == 64
    assert info["EmptyQwenImageLayeredLatentImage"]["input_order"]["required"] == ["width", "height", "layers", "batch_size"]
    assert info["EmptyChromaRadianceLatentImage"]["input"]["required"]["width"][1]["step"] == 16
    yue = info["EmptyYuE2LatentAudio"]
    assert yue["category"] == "model/latent/yue2" and yue["display_name"] == "Empty YuE2 Latent Audio"
    assert yue["input"]["required"]["seconds"][1] | {"tooltip": None} == {
        "default": 120.0, "min": 0.04, "max": 1000.0, "step": 0.04, "tooltip": None}
    music = info["EmptyMiniMaxMusic3LatentAudio"]
    assert music["category"] == "model/latent/minimax music"
    assert music["input"]["required"]["seconds"][1]["max"] == 360.0
    assert music["input_order"]["required"] == ["seconds", "batch_size"]
    for node in ("EmptyLatentAudio", "EmptyAceStepLatentAudio", "EmptyQwenImageLayeredLatentImage",
                 "EmptyYuE2LatentAudio", "EmptyMiniMaxMusic3LatentAudio"):
        assert info[node]["output"] == ["LATENT"]


def test_layered_template_stack_cuts_into_picture_plus_layers(image_engine):
    # image_qwen_image_layered_control: EmptyQwenImageLayeredLatentImage [640, 640, 2, 1] → … → LatentCutToBatch (t)
    prompt = {"1": {"class_type": "EmptyQwenImageLayeredLatentImage",
                    "inputs": {"width": 64, "height": 64, "layers": 2, "batch_size": 1}},
              "2": {"class_type": "LatentCutToBatch", "inputs": {"samples": ["1", 0], "dim": "t", "slice_size": 1}}}
    result = run_prompt(image_engine, prompt, sinks=[["2", 0]])
    assert result.status == "success", result.errors
    assert result.value("2")["samples"].shape == (3, 16, 1, 8, 8)


def test_3d_latents_have_their_families_shapes_and_types():
    hunyuan = call("EmptyLatentHunyuan3Dv2", resolution=3072, batch_size=2)
    assert hunyuan["samples"].shape == (2, 64, 3072) and hunyuan["type"] == "hunyuan3dv2"
    assert hunyuan["samples"].dtype == torch.float32 and not hunyuan["samples"].any()
    assert call("EmptyLatentHunyuan3Dv2", resolution=5, batch_size=1)["samples"].shape == (1, 64, 5)
    trellis = call("EmptyTrellis2LatentStructure", batch_size=3)
    assert trellis["samples"].shape == (3, 32, 16, 16, 16) and trellis["type"] == "trellis2"
    assert set(trellis) == {"samples", "type"} and not trellis["samples"].any()
    with pytest.raises(ValidationError, match="resolution"):
        call("EmptyLatentHunyuan3Dv2", resolution=0, batch_size=1)
    with pytest.raises(ValidationError, match="batch_size"):
        call("EmptyTrellis2LatentStructure", batch_size=4097)


def test_3d_latent_declarations_follow_comfyui_and_the_templates():
    # ComfyUI (a125cd84) comfy_extras/nodes_hunyuan3d.py; the 3d_hunyuan3d_* templates carry [3072, 1]
    hunyuan = NODES["EmptyLatentHunyuan3Dv2"]
    required = hunyuan.INPUT_TYPES()["required"]
    assert list(required) == ["resolution", "batch_size"]
    resolution = {k: required["resolution"][1][k] for k in ("default", "min", "max")}
    assert resolution == {"default": 3072, "min": 1, "max": 8192}
    assert {k: required["batch_size"][1][k] for k in ("default", "min", "max")} == {"default": 1, "min": 1, "max": 4096}
    assert hunyuan.RETURN_TYPES == ("LATENT",) and hunyuan.CATEGORY == "latent/3d"
    # the embedded doc and 3d_pixal3d_trellis2_image_to_model's widgets [1]
    trellis = NODES["EmptyTrellis2LatentStructure"]
    batch = trellis.INPUT_TYPES()["required"]
    assert list(batch) == ["batch_size"] and batch["batch_size"][1]["default"] == 1
    assert batch["batch_size"][1]["max"] == 4096 and trellis.RETURN_TYPES == ("LATENT",)
    assert trellis.RETURN_NAMES == ("LATENT",)
