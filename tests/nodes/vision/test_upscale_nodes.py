"""UpscaleModelLoader + ImageUpscaleWithModel through the engine: sizes, progress, interrupt, errors."""

import json
from pathlib import Path

import pytest
import torch
from PIL import Image as PILImage
from safetensors.torch import save_file
from skimage import data

from nodeloom import Engine

from nodeloom.diffusion.upscale import load_upscale_model
from nodeloom.testing.tiny_upscale import rrdbnet_basicsr, srvgg_compact
from tests.nodes.conftest import TENSORS, run_prompt


def _prompt(model_name):
    return {
        "1": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": model_name}},
        "2": {"class_type": "TestTensor", "inputs": {"key": "image"}},
        "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["1", 0], "image": ["2", 0]}},
    }


@pytest.fixture(scope="module")
def files(models_dir):
    folder = models_dir / "upscale_models"
    save_file(rrdbnet_basicsr(2, seed=1), str(folder / "RealESRGAN_x2plus.safetensors"))
    torch.save(srvgg_compact(4, seed=2), folder / "realesr-general-x4v3.pth")
    save_file({"model.diffusion_model.out.2.weight": torch.zeros(4, 4)}, str(folder / "not_upscale.safetensors"))
    return folder


def _astronaut(size):
    img = torch.from_numpy(data.astronaut()).float().div(255)[None]
    return torch.nn.functional.interpolate(img.movedim(-1, 1), size=size, mode="area").movedim(1, -1)


def test_model_files_are_listed(vision_engine, files):
    choices = vision_engine.object_info()["UpscaleModelLoader"]["input"]["required"]["model_name"][0]
    assert {"RealESRGAN_x2plus.safetensors", "realesr-general-x4v3.pth"} <= set(choices)


@pytest.mark.parametrize("name,scale", [("RealESRGAN_x2plus.safetensors", 2), ("realesr-general-x4v3.pth", 4)])
def test_a_photo_is_upscaled_by_the_models_factor(vision_engine, files, name, scale):
    img = _astronaut((48, 40))
    result = run_prompt(vision_engine, _prompt(name), {"image": img}, sinks=[["3", 0]])
    assert result.ok, result.errors
    out = result.value("3")
    assert out.shape == (1, 48 * scale, 40 * scale, 3) and out.dtype == torch.float32
    direct = load_upscale_model(files / name)(img.movedim(-1, 1)).movedim(1, -1)
    torch.testing.assert_close(out, direct, atol=1e-6, rtol=0)


def _run_with_events(engine, name, key, image, on_event):
    """Run with events; ``key`` names the image so that no earlier run's cache answers."""
    TENSORS[key] = image
    prompt = {**_prompt(name), "s": {"class_type": "TestSink", "inputs": {"value": ["3", 0]}}}
    prompt["2"] = {"class_type": "TestTensor", "inputs": {"key": key}}
    return engine.run(prompt, on_event=on_event)


def test_progress_is_reported_per_tile(vision_engine, files):
    events = []
    result = _run_with_events(vision_engine, "realesr-general-x4v3.pth", "wide-photo", _astronaut((40, 1100)), events.append)
    ticks = [(e.data["value"], e.data["max"]) for e in events if e.type == "progress" and e.data["node"] == "3"]
    assert ticks == [(0, 3), (1, 3), (2, 3), (3, 3)]  # three 512-pixel tiles across
    assert result.value("3").shape == (1, 160, 4400, 3)


def test_an_interrupt_stops_between_tiles(vision_engine, files):
    ticks = []

    def on_event(event):
        if event.type == "progress" and event.data["node"] == "3":
            ticks.append(event.data["value"])
            if event.data["value"] == 1:
                vision_engine.interrupt()

    result = _run_with_events(vision_engine, "realesr-general-x4v3.pth", "wide-noise", torch.rand(1, 40, 1600, 3), on_event)
    assert result.status == "interrupted"
    assert ticks == [0, 1]


def test_a_file_that_is_not_an_upscale_model_fails_its_node_with_the_name(vision_engine, files):
    result = run_prompt(vision_engine, _prompt("not_upscale.safetensors"), {"image": torch.rand(1, 8, 8, 3)}, sinks=[["3", 0]])
    assert not result.ok
    message = str(result.errors)
    assert "not_upscale.safetensors" in message and "not an upscale model" in message


def test_the_example_workflow_runs_with_a_model_in_the_real_esrgan_layout(tmp_path):
    workflow = Path(__file__).resolve().parents[3] / "examples" / "workflows" / "upscale_esrgan.json"
    (tmp_path / "models" / "upscale_models").mkdir(parents=True)
    torch.save(rrdbnet_basicsr(4, seed=4), tmp_path / "models" / "upscale_models" / "RealESRGAN_x4plus.pth")
    (tmp_path / "input").mkdir()
    PILImage.fromarray(data.astronaut()).resize((40, 32)).save(tmp_path / "input" / "astronaut.png")
    with Engine(base_dir=tmp_path, load_custom_nodes=False, device="cpu") as engine:
        result = engine.run(json.loads(workflow.read_text()))
    assert result.ok, result.errors
    saved = result.outputs["5"]["images"][0]
    assert PILImage.open(tmp_path / "output" / saved["subfolder"] / saved["filename"]).size == (80, 64)
