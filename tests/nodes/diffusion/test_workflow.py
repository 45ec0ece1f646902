"""ComfyUI's default API workflow, unchanged but for ``ckpt_name``, run end to end through the Engine."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nodeloom import Engine
from nodeloom.testing.tiny_sd import DEFAULT_API_WORKFLOW

DEFAULT_WORKFLOW = DEFAULT_API_WORKFLOW


def make_engine(base: Path, models: Path) -> Engine:
    return Engine(base_dir=base, models_dir=models, load_custom_nodes=False)


def run_default(base: Path, models: Path, ckpt_name: str) -> np.ndarray:
    prompt = copy.deepcopy(DEFAULT_WORKFLOW)
    prompt["4"]["inputs"]["ckpt_name"] = ckpt_name
    with make_engine(base, models) as engine:
        result = engine.run(prompt)
        assert result.status == "success", result.errors
        saved = result.outputs["9"]["images"]
        assert len(saved) == 1 and saved[0]["type"] == "output"
        png = engine.paths.output_dir / saved[0]["subfolder"] / saved[0]["filename"]
    assert png.suffix == ".png" and png.is_file()
    pixels = np.asarray(Image.open(png))
    assert pixels.shape == (512, 512, 3)
    return pixels


def test_default_workflow_sd1_single_file_is_deterministic(tmp_path, tiny_models_dir):
    first = run_default(tmp_path / "a", tiny_models_dir, "tiny_sd1.safetensors")
    second = run_default(tmp_path / "b", tiny_models_dir, "tiny_sd1.safetensors")
    assert np.array_equal(first, second)
    assert first.std() > 1.0  # an actual picture, not a flat fill


@pytest.mark.parametrize("ckpt_name", ["tiny_sdxl.safetensors", "tiny_sd1_inpaint.safetensors", "tiny_sd1"])
def test_default_workflow_other_checkpoints(tmp_path, tiny_models_dir, ckpt_name):
    pixels = run_default(tmp_path, tiny_models_dir, ckpt_name)
    assert pixels.std() > 1.0


def test_diffusers_folder_and_single_file_give_the_same_image(tmp_path, tiny_models_dir):
    prompt = copy.deepcopy(DEFAULT_WORKFLOW)
    prompt["5"]["inputs"].update(width=64, height=64)
    prompt["3"]["inputs"]["steps"] = 4
    images = []
    for name in ("tiny_sd1.safetensors", "tiny_sd1"):
        prompt["4"]["inputs"]["ckpt_name"] = name
        with make_engine(tmp_path / name, tiny_models_dir) as engine:
            result = engine.run(prompt)
            assert result.status == "success", result.errors
            images.append(result.value("8"))
    assert (images[0] - images[1]).abs().max() < 1e-5


def test_missing_checkpoint_names_file_and_folders(tmp_path, tiny_models_dir):
    prompt = copy.deepcopy(DEFAULT_WORKFLOW)
    with make_engine(tmp_path, tiny_models_dir) as engine:
        with pytest.raises(Exception) as info:
            engine.run(prompt)
    text = str(getattr(info.value, "node_errors", "")) + str(info.value)
    assert "v1-5-pruned-emaonly.safetensors" in text


def _small(ckpt_name: str, steps: int) -> dict:
    prompt = copy.deepcopy(DEFAULT_WORKFLOW)
    prompt["4"]["inputs"]["ckpt_name"] = ckpt_name
    prompt["5"]["inputs"].update(width=64, height=64)
    prompt["3"]["inputs"]["steps"] = steps
    return prompt


def test_ksampler_reports_each_step_and_stops_when_interrupted(tmp_path, tiny_models_dir):
    with make_engine(tmp_path, tiny_models_dir) as engine:
        seen = []

        def watch(event):
            if event.type == "progress" and event.data.get("node") == "3":
                seen.append(event.data["value"])

        assert engine.run(_small("tiny_sd1.safetensors", 5), on_event=watch).status == "success"
        assert seen == [1, 2, 3, 4, 5]

        def stop_after_two(event):
            if event.type == "progress" and event.data.get("node") == "3" and event.data["value"] >= 2:
                engine.interrupt()

        prompt = _small("tiny_sd1.safetensors", 50)
        prompt["3"]["inputs"]["seed"] = 99
        assert engine.run(prompt, on_event=stop_after_two).status == "interrupted"


def test_sd2_single_file_runs_the_chain(tmp_path, tiny_models_dir):
    with make_engine(tmp_path, tiny_models_dir) as engine:
        result = engine.run(_small("tiny_sd2.safetensors", 3))
        assert result.status == "success", result.errors
        assert result.value("4", 0).family == "sd2"
        assert result.value("8").shape == (1, 64, 64, 3)


def test_previews_follow_the_image_when_enabled(tmp_path, tiny_models_dir):
    with Engine(base_dir=tmp_path, models_dir=tiny_models_dir, load_custom_nodes=False,
                settings={"diffusion_previews": True}) as engine:
        previews = []
        result = engine.run(_small("tiny_sd1.safetensors", 3),
                            on_event=lambda e: previews.append(e.preview) if e.preview is not None else None)
        assert result.status == "success", result.errors
    assert len(previews) == 3 and previews[-1].image.size == (8, 8)


@pytest.mark.parametrize(("sampler_name", "cfg"), [("euler_cfg_pp", 1.0), ("dpmpp_2m_cfg_pp", 4.0), ("res_multistep", 8.0),
                                                   ("sa_solver", 8.0), ("dpm_adaptive", 8.0), ("deis", 8.0),
                                                   ("dpmpp_2m_sde", 8.0), ("dpmpp_sde_gpu", 8.0)])
def test_samplers_added_for_comfyui_parity_run_through_the_ksampler(tmp_path, tiny_models_dir, sampler_name, cfg):
    """Each runs on a real (tiny) UNet (the SDE ones on a torchsde Brownian path); the adaptive
    solver too reports rising progress that ends at the step count."""
    prompt = _small("tiny_sd1.safetensors", 6)
    prompt["3"]["inputs"].update(sampler_name=sampler_name, cfg=cfg)
    seen = []

    def watch(event):
        if event.type == "progress" and event.data.get("node") == "3":
            seen.append(event.data["value"])

    with make_engine(tmp_path, tiny_models_dir) as engine:
        result = engine.run(prompt, on_event=watch)
        assert result.status == "success", result.errors
        image = result.value("8")
    assert torch.isfinite(image).all() and image.std() > 0.01
    assert seen == sorted(set(seen)) and seen[-1] == 6


def test_cfg_pp_at_cfg_1_still_steers_by_the_negative_prompt(tmp_path, tiny_models_dir):
    """At cfg 1 plain Euler never evaluates the negative prompt; Euler CFG++ must (its unguided
    estimate is the step direction), so the two images differ."""
    images = {}
    with make_engine(tmp_path, tiny_models_dir) as engine:
        for name in ("euler", "euler_cfg_pp"):
            prompt = _small("tiny_sd1.safetensors", 4)
            prompt["3"]["inputs"].update(sampler_name=name, cfg=1.0)
            result = engine.run(prompt)
            assert result.status == "success", result.errors
            images[name] = result.value("8")
    assert (images["euler"] - images["euler_cfg_pp"]).abs().max() > 1e-3
