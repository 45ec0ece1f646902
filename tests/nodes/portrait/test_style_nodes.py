"""StyleModelLoader / StyleModelApply (Flux Redux) on tiny random weights: the image's tokens,
projected, are appended to the conditioning; strength scales them; a tiny Flux runs with them."""

import copy

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from skimage import data

from nodeloom.diffusion.style_model import ReduxEncoder
from nodeloom.testing.tiny_clip_vision import save_vision_file, tiny_vision_model
from nodeloom.testing.tiny_families import FLUX_DEV_WORKFLOW, build_tiny_flux
from tests.nodes.conftest import run_prompt

TEXT_DIM = 32  # the tiny Flux's joint_attention_dim


@pytest.fixture(scope="module")
def redux(models_dir):
    torch.manual_seed(5)
    enc = ReduxEncoder(vision_dim=32, text_dim=TEXT_DIM).eval()
    (models_dir / "style_models").mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in enc.state_dict().items()}, str(models_dir / "style_models" / "tiny_redux.safetensors"))
    save_file({"style_embedding": torch.zeros(1, 8, 768)}, str(models_dir / "style_models" / "t2i_style.safetensors"))
    save_vision_file(tiny_vision_model("siglip", seed=8), models_dir / "clip_vision" / "sigclip_vision_patch14_384.safetensors")
    build_tiny_flux(models_dir)
    return enc


def _photo():
    return torch.from_numpy(data.chelsea()[::4, ::4].astype(np.float32) / 255.0)[None]


def _apply(key, strength, strength_type="multiply", style="tiny_redux.safetensors"):
    return {
        "1": {"class_type": "TestTensor", "inputs": {"key": f"{key}-cond"}},
        "2": {"class_type": "TestTensor", "inputs": {"key": f"{key}-image"}},
        "3": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "sigclip_vision_patch14_384.safetensors"}},
        "4": {"class_type": "CLIPVisionEncode", "inputs": {"clip_vision": ["3", 0], "image": ["2", 0], "crop": "center"}},
        "5": {"class_type": "StyleModelLoader", "inputs": {"style_model_name": style}},
        "6": {"class_type": "StyleModelApply", "inputs": {"conditioning": ["1", 0], "style_model": ["5", 0],
                                                           "clip_vision_output": ["4", 0], "strength": strength,
                                                           "strength_type": strength_type}},
    }


def test_redux_tokens_are_appended_and_scaled(vision_engine, redux):
    cond = [[torch.randn(1, 5, TEXT_DIM), {"pooled_output": torch.randn(1, 32)}]]
    for strength in (1.0, 0.5):
        key = f"s{strength}"
        result = run_prompt(vision_engine, _apply(key, strength), {f"{key}-cond": cond, f"{key}-image": _photo()},
                            sinks=[["6", 0], ["4", 0]])
        assert result.ok, result.errors
        (out, opts), = result.value("6", 0)
        vision = result.value("4", 0)["last_hidden_state"]
        with torch.no_grad():
            expected = redux(vision) * strength
        assert out.shape == (1, 5 + vision.shape[1], TEXT_DIM)
        assert torch.equal(out[:, :5], cond[0][0]) and torch.allclose(out[:, 5:], expected, atol=1e-5)
        assert torch.equal(opts["pooled_output"], cond[0][1]["pooled_output"])
    assert cond[0][0].shape == (1, 5, TEXT_DIM)  # the input is untouched


def test_attn_bias_other_than_one_and_other_style_files_are_clear_errors(vision_engine, redux):
    cond = [[torch.randn(1, 5, TEXT_DIM), {}]]
    result = run_prompt(vision_engine, _apply("bias", 0.5, "attn_bias"), {"bias-cond": cond, "bias-image": _photo()},
                        sinks=[["6", 0]])
    assert not result.ok and "`strength_type`" in str(result.errors)
    result = run_prompt(vision_engine, _apply("t2i", 1.0, style="t2i_style.safetensors"),
                        {"t2i-cond": cond, "t2i-image": _photo()}, sinks=[["6", 0]])
    assert not result.ok and "T2I style adapter" in str(result.errors)


def test_a_tiny_flux_samples_with_the_redux_conditioning(vision_engine, redux):
    plain = {k: v for k, v in copy.deepcopy(FLUX_DEV_WORKFLOW).items() if k != "11"}
    styled = copy.deepcopy(plain) | {
        "s2": {"class_type": "TestTensor", "inputs": {"key": "flux-image"}},
        "s3": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "sigclip_vision_patch14_384.safetensors"}},
        "s4": {"class_type": "CLIPVisionEncode", "inputs": {"clip_vision": ["s3", 0], "image": ["s2", 0], "crop": "center"}},
        "s5": {"class_type": "StyleModelLoader", "inputs": {"style_model_name": "tiny_redux.safetensors"}},
        "s6": {"class_type": "StyleModelApply", "inputs": {"conditioning": ["5", 0], "style_model": ["s5", 0],
                                                            "clip_vision_output": ["s4", 0], "strength": 1.0,
                                                            "strength_type": "multiply"}},
    }
    styled["6"]["inputs"]["conditioning"] = ["s6", 0]
    result = run_prompt(vision_engine, styled, {"flux-image": _photo()}, sinks=[["10", 0]])
    assert result.ok, (result.errors, result.node_errors)
    base = run_prompt(vision_engine, plain, sinks=[["10", 0]])
    assert base.ok, base.errors
    assert (result.value("10", 0) - base.value("10", 0)).abs().max() > 1e-4


def test_the_portrait_example_runs_landmarks_to_guided_portrait_to_style(vision_engine, redux):
    """The example with tiny files in place of the real ones: landmarks → pose drawing →
    ControlNet-guided SD1 portrait → Flux img2img with Redux style tokens."""
    import json
    from pathlib import Path

    from PIL import Image

    example = Path(__file__).resolve().parents[3] / "examples" / "workflows" / "portrait_landmarks_to_style.json"
    prompt = json.loads(example.read_text())
    Image.fromarray(data.astronaut()[::2, ::2]).save(vision_engine.paths.input_dir / "portrait.png")
    Image.fromarray(data.chelsea()[::4, ::4]).save(vision_engine.paths.input_dir / "style.png")
    swaps = {"2": {"model_name": "tiny_face68.onnx"}, "4": {"width": 64, "height": 64},
             "5": {"ckpt_name": "tiny_sd1.safetensors"}, "8": {"control_net_name": "tiny_controlnet"},
             "10": {"width": 64, "height": 64}, "11": {"steps": 2}, "13": {"unet_name": "tiny_flux_dev.safetensors"},
             "14": {"clip_name1": "tiny_clip_l.safetensors", "clip_name2": "tiny_t5xxl.safetensors"},
             "15": {"vae_name": "tiny_ae.safetensors"}, "19": {"style_model_name": "tiny_redux.safetensors"},
             "24": {"width": 64, "height": 64}, "26": {"steps": 2}}
    for node, values in swaps.items():
        prompt[node]["inputs"].update(values)
    result = vision_engine.run(prompt)
    assert result.ok, [e.get("exception_message", e) for e in result.errors]
    assert result.value("2", 2) == 1  # the astronaut's face was found
    styled = result.value("27", 0)
    assert styled.shape == (1, 64, 64, 3) and styled.std() > 0.01
