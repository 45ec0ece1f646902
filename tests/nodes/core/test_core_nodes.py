"""Core nodes: called directly inside services, and end to end through the Engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from nodeloom.core.context import activate_services
from nodeloom.engine import Engine
from nodeloom.nodes.core import NODE_CLASS_MAPPINGS as NODES
from nodeloom.paths import FolderPaths
from nodeloom.services import Services

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "workflows"


@pytest.fixture
def services(tmp_path: Path) -> Services:
    paths = FolderPaths(tmp_path)
    paths.ensure()
    return Services(paths)


def call(class_type: str, **inputs: Any) -> Any:
    cls = NODES[class_type]
    return getattr(cls(), cls.FUNCTION)(**inputs)


def test_every_core_node_documents_itself_and_its_inputs() -> None:
    for class_type, cls in NODES.items():
        assert cls.DESCRIPTION, class_type
        for section in ("required", "optional"):
            for name, spec in (cls.INPUT_TYPES().get(section) or {}).items():
                assert len(spec) == 2 and spec[1].get("tooltip"), f"{class_type}.{name} has no tooltip"


def test_load_image_lists_input_files_and_reads_alpha(services: Services, tmp_path: Path) -> None:
    rgba = np.zeros((6, 8, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 255
    rgba[:3, :, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "input" / "red.png")
    (tmp_path / "input" / "notes.txt").write_text("x")
    assert NODES["LoadImage"].INPUT_TYPES()["required"]["image"][0] == []  # no engine active
    with activate_services(services):
        spec = NODES["LoadImage"].INPUT_TYPES()["required"]["image"]
        assert spec[0] == ["red.png"] and spec[1]["image_upload"] is True
        image, mask = call("LoadImage", image="red.png")
        assert image.shape == (1, 6, 8, 3) and torch.all(image[..., 0] == 1.0)
        assert torch.all(mask[0, :3] == 1.0) and torch.all(mask[0, 3:] == 0.0)
        first = NODES["LoadImage"].IS_CHANGED(image="red.png")
        Image.fromarray(rgba[..., :3]).save(tmp_path / "input" / "red.png")
        assert NODES["LoadImage"].IS_CHANGED(image="red.png") != first
        assert NODES["LoadImage"].VALIDATE_INPUTS(image="red.png") is True
        assert NODES["LoadImage"].VALIDATE_INPUTS(image="missing.png") == "Invalid image file: missing.png"
        assert "Invalid image file" in NODES["LoadImage"].VALIDATE_INPUTS(image="../escape.png")


def test_save_and_preview_write_pngs_with_metadata(services: Services, tmp_path: Path) -> None:
    images = torch.rand(2, 4, 5, 3, generator=torch.Generator().manual_seed(1))
    prompt = {"1": {"class_type": "SaveImage", "inputs": {}}}
    with activate_services(services):
        out = call("SaveImage", images=images, filename_prefix="run/pic", prompt=prompt, extra_pnginfo={"workflow": {"v": 1}})
        again = call("SaveImage", images=images[:1], filename_prefix="run/pic")
        preview = call("PreviewImage", images=images)
    saved = out["ui"]["images"]
    assert saved == [{"filename": "pic_00001_.png", "subfolder": "run", "type": "output"},
                     {"filename": "pic_00002_.png", "subfolder": "run", "type": "output"}]
    assert again["ui"]["images"][0]["filename"] == "pic_00003_.png"
    png = Image.open(tmp_path / "output" / "run" / "pic_00001_.png")
    assert png.size == (5, 4)
    assert json.loads(png.text["prompt"]) == prompt and json.loads(png.text["workflow"]) == {"v": 1}
    assert all(p["type"] == "temp" and p["filename"].startswith("ComfyUI_temp_") for p in preview["ui"]["images"])
    assert (tmp_path / "temp" / preview["ui"]["images"][0]["filename"]).exists()


def test_image_operations() -> None:
    image = torch.rand(2, 8, 12, 3, generator=torch.Generator().manual_seed(2))
    (inverted,) = call("ImageInvert", image=image)
    assert torch.allclose(inverted, 1 - image)
    (scaled,) = call("ImageScale", image=image, upscale_method="area", width=6, height=0, crop="disabled")
    assert scaled.shape == (2, 4, 6, 3)
    (by,) = call("ImageScaleBy", image=image, upscale_method="nearest-exact", scale_by=1.5)
    assert by.shape == (2, 12, 18, 3)
    (batch,) = call("ImageBatch", image1=image, image2=torch.rand(1, 4, 4, 3))
    assert batch.shape == (3, 8, 12, 3)
    (empty,) = call("EmptyImage", width=3, height=2, batch_size=2, color=0xFF8000)
    assert empty.shape == (2, 2, 3, 3) and torch.allclose(empty[0, 0, 0], torch.tensor([1.0, 128 / 255, 0.0]))
    (crop,) = call("ImageCrop", image=image, width=5, height=4, x=2, y=3)
    assert torch.equal(crop, image[:, 3:7, 2:7])
    padded, mask = call("ImagePadForOutpaint", image=image, left=0, top=8, right=0, bottom=0, feathering=0)
    assert padded.shape == (2, 16, 12, 3) and mask.shape == (1, 16, 12)
    (batches,) = call("RebatchImages", images=[image, image[:1]], batch_size=[2])
    assert [b.shape[0] for b in batches] == [2, 1]
    for class_type, value in (("PrimitiveInt", 3), ("PrimitiveFloat", 0.5), ("PrimitiveString", "a"),
                              ("PrimitiveStringMultiline", "a\nb"), ("PrimitiveBoolean", True)):
        assert call(class_type, value=value) == (value,)


def test_primitive_int_has_a_seed_style_control_widget() -> None:
    spec = NODES["PrimitiveInt"].INPUT_TYPES()["required"]["value"]
    assert spec[0] == "INT" and spec[1]["control_after_generate"] is True


@pytest.mark.parametrize("name", ["invert_scale.json", "branching.json"])
def test_example_workflows_run_without_models(name: str, tmp_path: Path) -> None:
    prompt = json.loads((EXAMPLES / name).read_text())
    with Engine(base_dir=tmp_path) as engine:
        result = engine.run(prompt)
    assert result.status == "success", result.errors
    files = [tmp_path / "output" / i["subfolder"] / i["filename"] for out in result.outputs.values() for i in out["images"]]
    assert files and all(f.exists() for f in files)
    if name == "invert_scale.json":
        assert Image.open(files[0]).size == (128, 75)  # 96x56 after padding, scaled to 128 wide
    else:
        assert len(result.outputs) == 2 and len(files) == 3 + 2


def test_load_image_through_the_engine_and_rerun_is_cached(tmp_path: Path) -> None:
    Image.new("RGBA", (6, 4), (10, 20, 30, 128)).save(tmp_path / "in.png")
    with Engine(base_dir=tmp_path) as engine:
        (engine.paths.input_dir / "in.png").write_bytes((tmp_path / "in.png").read_bytes())
        prompt = {
            "1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
            "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
        }
        first = engine.run(prompt)
        second = engine.run(prompt)
        bad = engine.validate({"1": {"class_type": "LoadImage", "inputs": {"image": "nope.png"}},
                               "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}})
    assert first.status == "success" and not first.node_runs["1"]["cached"]
    assert second.node_runs.get("1", {"cached": True})["cached"]
    assert not bad.ok and "1" in bad.node_errors
