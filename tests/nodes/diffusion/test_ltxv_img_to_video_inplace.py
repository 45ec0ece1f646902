"""LTXVImgToVideoInplace on tiny LTX-Video weights: the image placed into a given latent equals
what LTXVImgToVideo builds (whose sampling matches LTXImageToVideoPipeline), the image-to-video
graph rewired through it samples the same clip through the Engine, ``bypass`` and the errors."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import torch

from nodeloom.diffusion.ltxv_vae import LtxvVae
from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion.ltx_nodes import LTXVImgToVideo, LTXVImgToVideoInplace
from nodeloom.testing.tiny_ltx import LTXV_T2V_WORKFLOW, build_tiny_ltxv
from tests.nodes.diffusion.family_helpers import engine_for, run_ok


@pytest.fixture(scope="module")
def ltxv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return root, build_tiny_ltxv(root)


def _image(seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 48, 80, 3, generator=torch.Generator().manual_seed(seed))


def test_inplace_equals_img_to_video_on_an_empty_latent(ltxv: tuple[Path, dict]) -> None:
    _, parts = ltxv
    vae, image = LtxvVae(parts["vae"]), _image()
    _, _, made = LTXVImgToVideo.execute([], [], vae, image, 64, 64, 17, 1, 0.8)
    empty = {"samples": torch.zeros(1, 128, 3, 2, 2)}
    placed = LTXVImgToVideoInplace.execute(vae, image, empty, 0.8)[0]
    assert (placed["samples"] - made["samples"]).abs().max() == 0
    assert placed["noise_mask"].flatten().tolist() == pytest.approx([0.2, 1.0, 1.0])
    assert not empty["samples"].any()  # the input latent is not changed in place
    assert LTXVImgToVideoInplace.execute(vae, image, empty, 0.8, True)[0] is empty


def _graph(inplace: bool) -> dict:
    prompt = copy.deepcopy(LTXV_T2V_WORKFLOW)
    prompt["80"] = {"class_type": "LoadImage", "inputs": {"image": "astronaut.png"}}
    if inplace:
        prompt["77"] = {"class_type": "LTXVImgToVideoInplace", "inputs": {
            "vae": ["44", 2], "image": ["80", 0], "latent": ["70", 0], "strength": 1.0, "bypass": False}}
        start = ["77", 0]
    else:
        prompt["77"] = {"class_type": "LTXVImgToVideo", "inputs": {
            "positive": ["6", 0], "negative": ["7", 0], "vae": ["44", 2], "image": ["80", 0], "width": 64,
            "height": 64, "length": 9, "batch_size": 1, "strength": 1.0}}
        prompt["69"]["inputs"].update(positive=["77", 0], negative=["77", 1])
        start = ["77", 2]
    prompt["71"]["inputs"]["latent"] = start
    prompt["72"]["inputs"]["latent_image"] = start
    return prompt


def test_image_to_video_graph_through_inplace_samples_the_same_clip(ltxv: tuple[Path, dict], tmp_path: Path) -> None:
    from skimage import data
    from PIL import Image

    models, _ = ltxv
    samples = []
    for inplace in (False, True):
        base = tmp_path / str(inplace)
        (base / "input").mkdir(parents=True)
        Image.fromarray(data.astronaut()).save(base / "input" / "astronaut.png")
        with engine_for(base, models) as engine:
            result = run_ok(engine, _graph(inplace))
        samples.append(result.value("72")["samples"])
        assert tuple(result.value("8").shape) == (9, 64, 64, 3)
    assert (samples[0] - samples[1]).abs().max().item() <= 1e-6
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_bad_inputs_say_what_was_expected(ltxv: tuple[Path, dict]) -> None:
    _, parts = ltxv
    vae = LtxvVae(parts["vae"])
    with pytest.raises(ValidationError, match=r"`latent` must be a video latent"):
        LTXVImgToVideoInplace.execute(vae, _image(), {"samples": torch.zeros(1, 4, 8, 8)}, 1.0)
