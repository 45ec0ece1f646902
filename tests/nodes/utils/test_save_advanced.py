"""Save Image (Advanced): PNG 8/16-bit with metadata, scene-linear EXR, AVIF stills and animations."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nodeloom.core.context import activate_services
from nodeloom.core.workflow_ui import to_api
from nodeloom.errors import ValidationError
from nodeloom.nodes.utils import NODE_CLASS_MAPPINGS as NODES
from nodeloom.paths import FolderPaths
from nodeloom.services import Services

SAVE = NODES["SaveImageAdvanced"]


@pytest.fixture
def out_dir(tmp_path: Path):
    paths = FolderPaths(tmp_path)
    paths.ensure()
    with activate_services(Services(paths)):
        yield tmp_path / "output"


def save(images: torch.Tensor, fmt: str, **opts):
    return SAVE().execute(images=images, filename_prefix="adv", format=fmt, prompt={"1": {"class_type": "X"}},
                          extra_pnginfo={"workflow": {"nodes": []}}, **{f"format.{k}": v for k, v in opts.items()}).to_v1()


def _gradient(batch: int = 2) -> torch.Tensor:
    return torch.linspace(0, 1, batch * 8 * 12 * 3).reshape(batch, 8, 12, 3)


def test_png_8_and_16_bit_keep_the_workflow(out_dir: Path) -> None:
    images = _gradient()
    out = save(images, "png", bit_depth="8-bit", input_color_space="sRGB")
    assert out["result"][0] is images and [i["filename"] for i in out["ui"]["images"]] == ["adv_00001_.png", "adv_00002_.png"]
    with Image.open(out_dir / "adv_00001_.png") as img:
        assert img.mode == "RGB" and json.loads(img.text["workflow"]) == {"nodes": []}
    out = save(images, "png", bit_depth="16-bit", input_color_space="sRGB")
    path = out_dir / out["ui"]["images"][1]["filename"]
    with Image.open(path) as img:
        assert json.loads(img.text["prompt"]) == {"1": {"class_type": "X"}}
    import cv2

    back = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert back.dtype == np.uint16
    assert np.abs(back / 65535.0 - images[1].numpy()).max() < 1 / 65535 + 1e-6


def test_exr_is_scene_linear(out_dir: Path) -> None:
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    import cv2

    images = _gradient(1)
    out = save(images, "exr", bit_depth="32-bit float", input_color_space="sRGB")
    back = cv2.imread(str(out_dir / out["ui"]["images"][0]["filename"]), cv2.IMREAD_UNCHANGED)[..., ::-1]
    v = images[0].numpy()
    expect = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    assert back.dtype == np.float32 and np.allclose(back, expect, atol=1e-6)
    out = save(images, "exr", bit_depth="16-bit float", input_color_space="linear")
    half = cv2.imread(str(out_dir / out["ui"]["images"][0]["filename"]), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert np.allclose(half, v, atol=1e-3)
    with pytest.raises(ValidationError, match="'HDR' is not supported"):
        save(images, "exr", bit_depth="16-bit float", input_color_space="HDR")


def test_avif_stills_and_animation(out_dir: Path) -> None:
    pytest.importorskip("PIL.AvifImagePlugin", reason="this Pillow has no AVIF support")
    images = _gradient(3)
    out = save(images, "avif", bit_depth="auto", input_color_space="sRGB", crf=18, save_mode="still images")
    assert len(out["ui"]["images"]) == 3 and "animated" not in out["ui"]
    out = save(images, "avif", bit_depth="8-bit YUV420", input_color_space="sRGB", crf=30, save_mode="animated",
               **{"save_mode.fps": 10.0, "save_mode.loop_count": 0})
    assert out["ui"]["animated"] == (True,) and len(out["ui"]["images"]) == 1
    with Image.open(out_dir / out["ui"]["images"][0]["filename"]) as img:
        assert img.n_frames == 3 and img.size == (12, 8)
    with pytest.raises(ValidationError, match="10-bit YUV420"):
        save(images, "avif", bit_depth="10-bit YUV420", input_color_space="sRGB", crf=18, save_mode="still images")
    with pytest.raises(ValidationError, match="4 channels cannot be saved as AVIF"):
        save(torch.zeros(1, 4, 4, 4), "avif", bit_depth="auto", input_color_space="sRGB", crf=18, save_mode="still images")


def test_template_widgets_convert(image_engine) -> None:
    ui = {"last_node_id": 2, "last_link_id": 1, "links": [[1, 1, 0, 2, 0, "IMAGE"]], "nodes": [
        {"id": 1, "type": "EmptyImage", "mode": 0, "inputs": [], "widgets_values": [16, 8, 1, 0],
         "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}]},
        {"id": 2, "type": "SaveImageAdvanced", "mode": 0, "widgets_values": ["front_view", "png", "8-bit", "sRGB"],
         "inputs": [{"name": "images", "type": "IMAGE", "link": 1}], "outputs": [{"name": "images", "type": "IMAGE", "links": []}]},
    ]}
    prompt = to_api(ui, lambda t: image_engine.registry.get(t).INPUT_TYPES() if image_engine.registry.get(t) else None)
    assert prompt["2"]["inputs"] == {"filename_prefix": "front_view", "format": "png", "format.bit_depth": "8-bit",
                                     "format.input_color_space": "sRGB", "images": ["1", 0]}
    result = image_engine.run(prompt)
    assert result.ok, result.errors
    (saved,) = result.outputs["2"]["images"]
    assert saved["filename"].startswith("front_view_") and saved["filename"].endswith(".png")

