"""CLIPVisionLoader + CLIPVisionEncode through the engine, on a real photo."""

import pytest
import torch
from skimage import data

from nodeloom.diffusion.clip_vision import ClipVisionOutput, load_clip_vision
from nodeloom.ops.clip_preprocess import clip_preprocess
from nodeloom.testing.tiny_clip_vision import save_vision_file, tiny_vision_model
from tests.nodes.conftest import run_prompt


@pytest.fixture(scope="module")
def clip_files(models_dir):
    folder = models_dir / "clip_vision"
    models = {"clip_vision_h.safetensors": tiny_vision_model("clip_h", seed=7),
              "sigclip_vision_patch14_384.safetensors": tiny_vision_model("siglip", seed=8)}
    for name, model in models.items():
        save_vision_file(model, folder / name)
    return models


def _prompt(name, key, crop):
    return {
        "1": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": name}},
        "2": {"class_type": "TestTensor", "inputs": {"key": key}},
        "3": {"class_type": "CLIPVisionEncode", "inputs": {"clip_vision": ["1", 0], "image": ["2", 0], "crop": crop}},
    }


def _photo():
    return torch.from_numpy(data.chelsea()).float().div(255)[None]  # 300 x 451 cat


def test_files_are_listed(vision_engine, clip_files):
    choices = vision_engine.object_info()["CLIPVisionLoader"]["input"]["required"]["clip_name"][0]
    assert set(clip_files) <= set(choices)


@pytest.mark.parametrize("name,tokens", [("clip_vision_h.safetensors", 17), ("sigclip_vision_patch14_384.safetensors", 16)])
def test_a_photo_encodes_like_the_transformers_model(vision_engine, clip_files, name, tokens):
    photo = _photo()
    result = run_prompt(vision_engine, _prompt(name, f"photo-{name}", "center"), {f"photo-{name}": photo}, sinks=[["3", 0]])
    assert result.ok, result.errors
    out = result.value("3")
    assert isinstance(out, ClipVisionOutput)
    assert out.last_hidden_state.shape == (1, tokens, 32)
    mean, std = ([0.5] * 3, [0.5] * 3) if "sig" in name else ([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711])
    with torch.no_grad():
        ref = clip_files[name](pixel_values=clip_preprocess(photo, 28, mean, std, crop=True), output_hidden_states=True)
    torch.testing.assert_close(out.last_hidden_state, ref.last_hidden_state, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.penultimate_hidden_states, ref.hidden_states[-2], atol=1e-5, rtol=0)


def test_crop_none_sees_the_whole_photo(vision_engine, clip_files):
    photo = _photo()
    name = "clip_vision_h.safetensors"
    center = run_prompt(vision_engine, _prompt(name, "c", "center"), {"c": photo}, sinks=[["3", 0]]).value("3")
    whole = run_prompt(vision_engine, _prompt(name, "w", "none"), {"w": photo}, sinks=[["3", 0]]).value("3")
    assert not torch.allclose(center.image_embeds, whole.image_embeds)
    direct = load_clip_vision(vision_engine.services.paths.get_full_path("clip_vision", name)).encode_image(photo, crop=False)
    torch.testing.assert_close(whole.image_embeds, direct.image_embeds)


def test_an_unknown_crop_value_is_a_validation_error(vision_engine, clip_files):
    prompt = {**_prompt("clip_vision_h.safetensors", "x", "top"), "s": {"class_type": "TestSink", "inputs": {"value": ["3", 0]}}}
    result = vision_engine.validate(prompt)
    assert not result.ok
    assert result.node_errors["3"]["errors"][0]["type"] == "value_not_in_list"
