"""IP-Adapter on tiny random weights: a tiny SD1 checkpoint, a tiny CLIP-vision model and a tiny
IP-Adapter written in the released files' key layout. The adapter changes the result; weight 0
and a window outside the run equal no adapter; an all-black attention mask equals no adapter and an
all-white one no mask; the MODEL is cloned, its UNet left as it was."""

import numpy as np
import pytest
import torch
from skimage import data

from nodeloom.testing import tiny_sd
from nodeloom.testing.tiny_clip_vision import save_vision_file, tiny_vision_model
from nodeloom.testing.tiny_ip_adapter import save_tiny_ip_adapter
from tests.nodes.conftest import run_prompt

ADAPTER = "ip-adapter_sd15.safetensors"


@pytest.fixture(scope="module")
def ipa_files(models_dir):
    vision = tiny_vision_model("clip_h", seed=3)
    save_vision_file(vision, models_dir / "clip_vision" / "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors")
    unet = tiny_sd.tiny_components("sd1")["unet"]
    embed = int(vision.config.projection_dim)
    save_tiny_ip_adapter(unet, models_dir / "ipadapter" / ADAPTER, embed, seed=1)
    save_tiny_ip_adapter(unet, models_dir / "ipadapter" / "ip-adapter_sd15_copy.bin", embed, seed=1)
    hidden = int(vision.config.hidden_size)  # Plus reads the penultimate hidden states
    save_tiny_ip_adapter(unet, models_dir / "ipadapter" / "ip-adapter-plus_sd15.safetensors", hidden, seed=4, plus=True)
    return models_dir


def _photo():
    return torch.from_numpy(data.astronaut()[::8, ::8].astype(np.float32) / 255.0)[None]


def _workflow(apply=None, loader=None, steps=4):
    wf = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sd1.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "an astronaut"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "img": {"class_type": "TestTensor", "inputs": {"key": "image"}},
        "k": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": 3, "steps": steps, "cfg": 5.0,
                                                   "sampler_name": "euler", "scheduler": "normal", "positive": ["2", 0],
                                                   "negative": ["3", 0], "latent_image": ["4", 0], "denoise": 1.0}},
    }
    if apply is not None:
        wf["u"] = loader or {"class_type": "IPAdapterUnifiedLoader",
                             "inputs": {"model": ["1", 0], "preset": "STANDARD (medium strength)"}}
        wf["a"] = {"class_type": apply[0], "inputs": {"model": ["u", 0], "ipadapter": ["u", 1], "image": ["img", 0],
                                                      **apply[1]}}
        wf["k"]["inputs"]["model"] = ["a", 0]
    return wf


def _sample(engine, apply=None, loader=None):
    result = run_prompt(engine, _workflow(apply, loader), {"image": _photo()}, sinks=[["k", 0]])
    assert result.ok, [(e.get("exception_type"), e.get("exception_message")) for e in result.errors]
    return result.value("k", 0)["samples"]


def _simple(weight=1.0, start=0.0, end=1.0, weight_type="standard"):
    return "IPAdapter", {"weight": weight, "start_at": start, "end_at": end, "weight_type": weight_type}


def test_the_adapter_changes_the_result_and_weight_zero_or_an_outside_window_does_not(vision_engine, ipa_files):
    plain = _sample(vision_engine)
    steered = _sample(vision_engine, _simple())
    assert (steered - plain).abs().max() > 1e-3
    assert torch.equal(_sample(vision_engine, _simple(weight=0.0)), plain)
    assert torch.equal(_sample(vision_engine, _simple(start=1.0, end=1.0)), plain)
    half = _sample(vision_engine, _simple(start=0.5))  # acts on the later steps only
    assert (half - plain).abs().max() > 1e-4 and (half - steered).abs().max() > 1e-4
    assert torch.equal(_sample(vision_engine), plain)  # the shared UNet came back as it was


def test_advanced_with_the_model_loader_and_a_bin_file(vision_engine, ipa_files):
    loader = {"class_type": "IPAdapterModelLoader", "inputs": {"ipadapter_file": "ip-adapter_sd15_copy.bin"}}
    wf_apply = ("IPAdapterAdvanced", {"weight": 1.0, "weight_type": "linear", "combine_embeds": "concat",
                                      "start_at": 0.0, "end_at": 1.0, "embeds_scaling": "V only",
                                      "clip_vision": ["cv", 0]})
    wf = _workflow(wf_apply, loader)
    wf["cv"] = {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"}}
    wf["a"]["inputs"]["model"] = ["1", 0]
    wf["a"]["inputs"]["ipadapter"] = ["u", 0]
    result = run_prompt(vision_engine, wf, {"image": _photo()}, sinks=[["k", 0]])
    assert result.ok, result.errors
    # the same weights as the .safetensors file through the simple node give the same latent
    assert torch.allclose(result.value("k", 0)["samples"], _sample(vision_engine, _simple()), atol=1e-6)


def _masked(engine, value, key):
    wf = _workflow(_simple())
    wf["a"]["inputs"]["attn_mask"] = ["m", 0]
    wf["m"] = {"class_type": "TestTensor", "inputs": {"key": key}}  # a key per mask: outputs are cached by inputs
    result = run_prompt(engine, wf, {"image": _photo(), key: value}, sinks=[["k", 0]])
    assert result.ok, [(e.get("exception_type"), e.get("exception_message")) for e in result.errors]
    return result.value("k", 0)["samples"]


def test_attn_mask_limits_where_the_image_acts(vision_engine, ipa_files):
    plain, steered = _sample(vision_engine), _sample(vision_engine, _simple())
    assert torch.equal(_masked(vision_engine, torch.zeros(1, 64, 64), "zeros"), plain)
    assert torch.equal(_masked(vision_engine, torch.ones(1, 64, 64), "ones"), steered)
    left = torch.zeros(1, 64, 64)
    left[..., :32] = 1.0
    half = _masked(vision_engine, left, "left")
    assert (half - plain).abs().max() > 1e-4 and (half - steered).abs().max() > 1e-4


def test_clear_errors(vision_engine, ipa_files):
    wf = _workflow(_simple(), {"class_type": "IPAdapterUnifiedLoader",
                               "inputs": {"model": ["1", 0], "preset": "PLUS FACE (portraits)"}})
    result = run_prompt(vision_engine, wf, {"image": _photo()}, sinks=[["k", 0]])
    assert not result.ok and "plus.face.sd15" in str(result.errors)
    wf = _workflow(_simple())
    wf["a"]["inputs"]["attn_mask"] = ["m", 0]
    wf["m"] = {"class_type": "TestTensor", "inputs": {"key": "two masks"}}
    result = run_prompt(vision_engine, wf, {"image": _photo(), "two masks": torch.ones(2, 64, 64)}, sinks=[["k", 0]])
    assert not result.ok and "`attn_mask`" in str(result.errors)


def test_a_plus_adapter_and_a_negative_image(vision_engine, ipa_files):
    plain = _sample(vision_engine)
    plus = {"class_type": "IPAdapterUnifiedLoader", "inputs": {"model": ["1", 0], "preset": "PLUS (high strength)"}}
    steered = _sample(vision_engine, _simple(), plus)
    assert (steered - plain).abs().max() > 1e-3
    advanced = ("IPAdapterAdvanced", {"weight": 1.0, "weight_type": "linear", "combine_embeds": "concat", "start_at": 0.0,
                                      "end_at": 1.0, "embeds_scaling": "K+V", "image_negative": ["img", 0]})
    # the reference image as its own negative (cond and uncond tokens alike) and K+V scaling change the result
    negative = _sample(vision_engine, advanced, plus)
    assert (negative - steered).abs().max() > 1e-3


@pytest.fixture(scope="module")
def sdxl_files(ipa_files):
    tiny_sd.build_tiny_checkpoint(ipa_files, "sdxl")
    unet = tiny_sd.tiny_components("sdxl")["unet"]
    save_tiny_ip_adapter(unet, ipa_files / "ipadapter" / "ip-adapter_sdxl_vit-h.safetensors", 24, seed=7)
    return ipa_files


def test_style_and_composition_on_sdxl_and_its_refusal_on_sd15(vision_engine, sdxl_files):
    inputs = {"image_style": ["img", 0], "image_composition": ["img2", 0], "weight_style": 1.0,
              "weight_composition": 1.0, "expand_style": False, "combine_embeds": "average", "start_at": 0.0,
              "end_at": 1.0, "embeds_scaling": "V only"}
    wf = _workflow(("IPAdapterStyleComposition", inputs))
    del wf["a"]["inputs"]["image"]
    wf["img2"] = {"class_type": "TestTensor", "inputs": {"key": "image2"}}
    tensors = {"image": _photo(), "image2": _photo().flip(2)}
    result = run_prompt(vision_engine, wf, tensors, sinks=[["k", 0]])
    assert not result.ok and "SDXL models only" in str(result.errors)
    wf["1"]["inputs"]["ckpt_name"] = "tiny_sdxl.safetensors"
    steered = run_prompt(vision_engine, wf, tensors, sinks=[["k", 0]])
    plain = run_prompt(vision_engine, _workflow() | {"1": wf["1"]}, tensors, sinks=[["k", 0]])
    assert steered.ok and plain.ok, (steered.errors, plain.errors)
    assert (steered.value("k", 0)["samples"] - plain.value("k", 0)["samples"]).abs().max() > 1e-4
