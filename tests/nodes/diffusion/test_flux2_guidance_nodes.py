"""Guidance nodes on tiny Flux.2 transformers through the Engine: the sampling part of the official
Ideogram 4 template (``image_ideogram4_t2i.json``: two UNETLoaders, CFGOverride (cfg 3 from 0.7 to
1.0) on the conditional model, DualModelGuider (cfg 7) and Ideogram4Scheduler feeding
SamplerCustomAdvanced, the template's widget values at tiny sizes), and SkipLayerGuidanceDiT /
SkipLayerGuidanceDiTSimple on Flux.2's double and single blocks through its family adapter."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from nodeloom.testing.tiny_flux2 import build_tiny_flux2
from tests.nodes.diffusion.family_helpers import engine_for, run_ok

#: the template's sampling subgraph, flattened (steps 20 → 4, 1024² → 256², the smallest size the scheduler takes)
IDEOGRAM_WORKFLOW = {
    "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_flux2_klein.safetensors", "weight_dtype": "default"}},
    "2": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_flux2_dev.safetensors", "weight_dtype": "default"}},
    "3": {"class_type": "CLIPLoader", "inputs": {"clip_name": "tiny_qwen3_flux2.safetensors", "type": "flux2",
                                                 "device": "default"}},
    "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["3", 0], "text": "a lighthouse at dusk"}},
    "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["3", 0], "text": ""}},
    "6": {"class_type": "CFGOverride", "inputs": {"model": ["1", 0], "cfg": 3.0, "start_percent": 0.7,
                                                  "end_percent": 1.0}},
    "7": {"class_type": "DualModelGuider", "inputs": {"model": ["6", 0], "positive": ["4", 0], "model_negative": ["2", 0],
                                                      "negative": ["5", 0], "cfg": 7.0}},
    "8": {"class_type": "Ideogram4Scheduler", "inputs": {"steps": 4, "width": 256, "height": 256, "mu": 0.5,
                                                         "std": 1.75}},
    "9": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
    "10": {"class_type": "RandomNoise", "inputs": {"noise_seed": 5}},
    "11": {"class_type": "EmptyFlux2LatentImage", "inputs": {"width": 256, "height": 256, "batch_size": 1}},
    "12": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["10", 0], "guider": ["7", 0], "sampler": ["9", 0],
                                                             "sigmas": ["8", 0], "latent_image": ["11", 0]}},
    "13": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny_flux2_vae.safetensors"}},
    "14": {"class_type": "VAEDecode", "inputs": {"samples": ["12", 0], "vae": ["13", 0]}},
    "15": {"class_type": "SaveImage", "inputs": {"images": ["14", 0], "filename_prefix": "Ideogram4"}},
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    build_tiny_flux2(root)
    return root


def test_ideogram_template_sampling_runs_and_one_model_equals_cfg_guider(tmp_path, models):
    with engine_for(tmp_path, models) as engine:
        dual = run_ok(engine, copy.deepcopy(IDEOGRAM_WORKFLOW)).value("12")["samples"]
        assert dual.shape == (1, 128, 16, 16) and bool(torch.isfinite(dual).all())
        assert len(list((tmp_path / "output").glob("Ideogram4*.png"))) == 1
        # the negative model through the same file: DualModelGuider is CFGGuider with the same patches
        same = copy.deepcopy(IDEOGRAM_WORKFLOW)
        same["7"]["inputs"]["model_negative"] = ["1", 0]
        one_model = run_ok(engine, same).value("12")["samples"]
        plain = copy.deepcopy(IDEOGRAM_WORKFLOW)
        plain["7"] = {"class_type": "CFGGuider", "inputs": {"model": ["6", 0], "positive": ["4", 0],
                                                            "negative": ["5", 0], "cfg": 7.0}}
        reference = run_ok(engine, plain).value("12")["samples"]
    assert (one_model - reference).abs().max() < 1e-4 * reference.abs().max()
    assert (dual - one_model).abs().max() > 1e-3 * reference.abs().max()  # the second model does act


def test_skip_layer_guidance_on_flux2_blocks_through_the_family_adapter(tmp_path, models):
    def prompt(node: dict | None) -> dict:
        graph = copy.deepcopy(IDEOGRAM_WORKFLOW)
        graph["7"] = {"class_type": "CFGGuider", "inputs": {"model": ["1", 0], "positive": ["4", 0],
                                                            "negative": ["5", 0], "cfg": 4.0}}
        if node is not None:
            graph["16"] = {"class_type": node["id"], "inputs": {"model": ["1", 0], **node["inputs"]}}
            graph["7"]["inputs"]["model"] = ["16", 0]
        return graph

    full = {"id": "SkipLayerGuidanceDiT", "inputs": {"double_layers": "0", "single_layers": "0", "scale": 3.0,
                                                     "start_percent": 0.0, "end_percent": 1.0, "rescaling_scale": 0.0}}
    off = copy.deepcopy(full)
    off["inputs"]["scale"] = 0.0
    simple = {"id": "SkipLayerGuidanceDiTSimple", "inputs": {"double_layers": "0", "single_layers": "0",
                                                             "start_percent": 0.0, "end_percent": 1.0}}
    with engine_for(tmp_path, models) as engine:
        plain = run_ok(engine, prompt(None)).value("12")["samples"]
        outs = {name: run_ok(engine, prompt(node)).value("12")["samples"]
                for name, node in (("full", full), ("off", off), ("simple", simple))}
    scale = plain.abs().max()
    assert (outs["off"] - plain).abs().max() < 1e-5 * scale
    for name in ("full", "simple"):
        assert bool(torch.isfinite(outs[name]).all()) and (outs[name] - plain).abs().max() > 1e-3 * scale, name
