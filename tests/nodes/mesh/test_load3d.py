"""Load3D through the engine: its declaration, the model list from input/3d, the viewer's rendered
passes (mask from the mask pass's alpha), camera and recording, and errors naming the input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.nodes.conftest import run_prompt


def _png(path, rgba) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(rgba, dtype=np.uint8)).save(path)


@pytest.fixture
def viewer_files(image_engine):
    paths = image_engine.services.paths
    model = paths.input_dir / "3d" / "props" / "cube.glb"
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_bytes(b"glTF")
    (paths.input_dir / "3d" / "notes.txt").write_text("not a model")
    (paths.input_dir / "3d" / "Tea.OBJ").write_text("v 0 0 0\n")
    temp = paths.temp_dir / "threed"
    image = np.zeros((6, 8, 3), np.uint8)
    image[:, :, 0] = 200
    _png(temp / "scene.png", image)
    mask = np.zeros((6, 8, 4), np.uint8)
    mask[..., 3] = 255
    mask[2:4, 3:6, 3] = 0  # where the model is: alpha 0 -> mask 1
    _png(temp / "scene_mask.png", mask)
    _png(temp / "scene_normal.png", np.full((6, 8, 3), 128, np.uint8))
    _png(temp / "scene_lineart.png", np.full((6, 8, 3), 255, np.uint8))
    return {"image": "threed/scene.png [temp]", "mask": "threed/scene_mask.png [temp]",
            "normal": "threed/scene_normal.png [temp]", "lineart": "threed/scene_lineart.png [temp]",
            "camera_info": {"position": {"x": 1.0, "y": 2.0, "z": 3.0}, "target": {"x": 0, "y": 0, "z": 0},
                            "zoom": 1, "cameraType": "perspective"},
            "recording": ""}


def test_declaration_and_model_list(image_engine, viewer_files):
    info = image_engine.object_info("Load3D")["Load3D"]
    assert info["display_name"] == "Load 3D" and info["category"] == "3d" and info["experimental"]
    required = info["input"]["required"]
    assert list(required) == ["model_file", "image", "width", "height"]
    assert required["model_file"][0] == ["3d/Tea.OBJ", "3d/props/cube.glb"]
    assert required["model_file"][1]["file_upload"] is True and required["image"][0] == "LOAD_3D"
    assert required["width"][1] == {"default": 1024, "min": 1, "max": 4096, "step": 1, "tooltip": required["width"][1]["tooltip"]}
    assert info["output"] == ["IMAGE", "MASK", "STRING", "IMAGE", "IMAGE", "LOAD3D_CAMERA", "VIDEO"]
    assert info["output_name"] == ["image", "mask", "mesh_path", "normal", "lineart", "camera_info", "recording_video"]


def test_rendered_passes_camera_and_path(image_engine, viewer_files):
    prompt = {"1": {"class_type": "Load3D", "inputs": {"model_file": "3d/props/cube.glb", "image": viewer_files,
                                                       "width": 8, "height": 6}}}
    result = run_prompt(image_engine, prompt, sinks=[["1", i] for i in range(7)])
    assert result.status == "success", result.errors
    image, mask, path, normal, lineart, camera, video = (result.value("1", i) for i in range(7))
    assert image.shape == (1, 6, 8, 3) and float(image[0, 0, 0, 0]) == pytest.approx(200 / 255)
    assert mask.shape == (1, 6, 8) and float(mask.sum()) == 6.0 and float(mask[0, 2, 3]) == 1.0
    assert float(normal[0, 0, 0, 2]) == pytest.approx(128 / 255) and float(lineart.min()) == 1.0
    assert path == "3d/props/cube.glb" and camera["position"]["z"] == 3.0 and video is None


def test_recording_becomes_a_video_value(image_engine, viewer_files):
    recording = image_engine.services.paths.temp_dir / "threed" / "take.webm"
    recording.write_bytes(b"\x1a\x45\xdf\xa3")
    value = dict(viewer_files, recording="threed/take.webm [temp]")
    prompt = {"1": {"class_type": "Load3D", "inputs": {"model_file": "3d/Tea.OBJ", "image": value,
                                                       "width": 8, "height": 6}}}
    result = run_prompt(image_engine, prompt, sinks=[["1", 6]])
    assert result.status == "success", result.errors
    assert type(result.value("1", 6)).__name__ == "VideoFromFile" and "take.webm" in repr(result.value("1", 6))


def test_bad_inputs_name_what_is_wrong(image_engine, viewer_files):
    missing = {"1": {"class_type": "Load3D", "inputs": {"model_file": "3d/absent.glb", "image": viewer_files,
                                                        "width": 8, "height": 6}},
               "sink": {"class_type": "TestSink", "inputs": {"value": ["1", 0]}}}
    checked = image_engine.validate(missing)
    assert not checked.ok and "3d/absent.glb" in str(checked.node_errors["1"])
    no_lineart = {k: v for k, v in viewer_files.items() if k != "lineart"}
    prompt = {"1": {"class_type": "Load3D", "inputs": {"model_file": "3d/props/cube.glb", "image": no_lineart,
                                                       "width": 8, "height": 6}}}
    result = run_prompt(image_engine, prompt, sinks=[["1", 0]])
    assert result.status != "success" and "lineart" in str(result.errors)
    gone = dict(viewer_files, normal="threed/nothing.png [temp]")
    prompt["1"]["inputs"]["image"] = gone
    result = run_prompt(image_engine, prompt, sinks=[["1", 0]])
    assert result.status != "success" and "nothing.png" in str(result.errors)
