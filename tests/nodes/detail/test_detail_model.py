"""The detail pass with the tiny random SD model through the diffusion pack's nodes.

Skipped where the diffusion pack or its tiny-model builder is not installed.
"""

import pytest
import torch

from nodeloom import Engine
from tests.nodes.detail.detail_stubs import register_stubs

tiny_sd = pytest.importorskip("nodeloom.testing.tiny_sd")
diffusion = pytest.importorskip("nodeloom.nodes.diffusion")
NEEDED = ("CheckpointLoaderSimple", "CLIPTextEncode", "KSampler", "VAEEncode", "VAEDecode", "SetLatentNoiseMask")
if any(n not in getattr(diffusion, "NODE_CLASS_MAPPINGS", {}) for n in NEEDED):
    pytest.skip("the diffusion pack lacks the nodes the detailer drives", allow_module_level=True)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    base = tmp_path_factory.mktemp("detail_model")
    eng = Engine(base_dir=base)
    register_stubs(eng)
    eng.ckpt_name = tiny_sd.build_tiny_checkpoint(base / "models", "sd1")
    yield eng
    eng.close()


def _prompt(ckpt, wildcard="", **extra):
    detail = {
        "image": ["1", 0], "segs": ["2", 0], "model": ["3", 0], "clip": ["3", 1], "vae": ["3", 2],
        "positive": ["4", 0], "negative": ["5", 0], "guide_size": 64, "guide_size_for": True, "max_size": 128,
        "seed": 5, "steps": 2, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 0.8,
        "feather": 2, "noise_mask": True, "force_inpaint": True, "cycle": 1, "wildcard": wildcard,
    }
    detail.update(extra)
    return {
        "1": {"class_type": "DetailTestPhoto", "inputs": {"name": "two_patches"}},
        "2": {"class_type": "MaskToSEGS", "inputs": {"mask": ["1", 1], "combined": False, "crop_factor": 1.5, "bbox_fill": False, "drop_size": 4}},
        "3": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "a photo", "clip": ["3", 1]}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["3", 1]}},
        "6": {"class_type": "SEGSDetail", "inputs": detail},
        "7": {"class_type": "DetailTestSink", "inputs": {"value": ["6", 1]}},
    }


def _run(engine, **kw):
    result = engine.run(_prompt(engine.ckpt_name, **kw))
    assert result.status == "success", result.errors
    return result.value("1", 0)[0], result.value("6", 1)[0], result.value("6", 4)[0], result.value("6", 5)


def _changed(a, b, cols):
    return float((a[16:40, cols] - b[16:40, cols]).abs().mean())


def test_model_inpaint_changes_inside_only(engine):
    source, out, mask, notes = _run(engine)
    assert "backend: model" in notes
    outside = mask == 0
    assert torch.equal(out[outside], source[outside])
    assert _changed(out, source, slice(12, 36)) > 1e-3 and _changed(out, source, slice(88, 112)) > 1e-3


def test_skip_routing_leaves_that_region_alone(engine):
    source, out, mask, notes = _run(engine, wildcard="[SKIP] [SEP] a red apple")
    assert torch.equal(out[:, :64], source[:, :64])  # left segment skipped
    assert _changed(out, source, slice(88, 112)) > 1e-3
    assert "[SKIP]" in notes


def test_sep_routing_changes_only_the_routed_region(engine):
    _, same, _, _ = _run(engine, wildcard="a cat [SEP] a cat")
    _, diff, _, _ = _run(engine, wildcard="a cat [SEP] a dog")
    assert torch.equal(same[:, :64], diff[:, :64])  # left: same prompt, same box seed
    assert not torch.equal(same[:, 64:], diff[:, 64:])  # right: its own prompt changed


def test_controlnet_and_cycles_run(engine):
    if "ControlNetApplyAdvanced" not in diffusion.NODE_CLASS_MAPPINGS or "ControlNetLoader" not in diffusion.NODE_CLASS_MAPPINGS:
        pytest.skip("the diffusion pack has no ControlNet nodes")
    name = tiny_sd.build_tiny_controlnet(engine.services.paths.models_dir, "sd1")
    prompt = _prompt(engine.ckpt_name, cycle=2, control_net=["8", 0], control_mode="canny")
    prompt["8"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": name}}
    result = engine.run(prompt)
    assert result.status == "success", result.errors
    assert "backend: model" in result.value("6", 5)


def test_inpainting_checkpoint_runs(engine):
    name = tiny_sd.build_tiny_checkpoint(engine.services.paths.models_dir, "sd1_inpaint")
    result = engine.run(_prompt(name))
    assert result.status == "success", result.errors
    source, out, mask = result.value("1", 0)[0], result.value("6", 1)[0], result.value("6", 4)[0]
    assert torch.equal(out[mask == 0], source[mask == 0])
    assert _changed(out, source, slice(12, 36)) > 1e-3
