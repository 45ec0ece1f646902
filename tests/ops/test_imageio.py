"""Tensor <-> PIL/PNG conversions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nodeloom.ops import imageio


def test_tensor_to_pil_truncates_like_comfyui_and_round_trips() -> None:
    image = torch.tensor([[[[0.25, 0.5, 1.0]]]])
    pil = imageio.tensor_to_pils(image)[0]
    assert pil.mode == "RGB" and pil.getpixel((0, 0)) == (63, 127, 255)
    rgba = imageio.image_to_pil(torch.ones(2, 4, 5, 4), index=1)
    assert rgba.mode == "RGBA" and rgba.size == (5, 4)
    back = imageio.pil_to_image(pil)
    assert back.shape == (1, 1, 1, 3) and back.dtype == torch.float32
    with pytest.raises(ValueError, match="C in"):
        imageio.tensor_to_pils(torch.zeros(1, 2, 2, 2))


def test_mask_is_one_minus_alpha(tmp_path: Path) -> None:
    arr = np.zeros((4, 6, 4), dtype=np.uint8)
    arr[..., 3] = 255
    arr[0, 0, 3] = 0
    Image.fromarray(arr, "RGBA").save(tmp_path / "a.png")
    image, mask = imageio.load_image_file(tmp_path / "a.png")
    assert image.shape == (1, 4, 6, 3) and mask.shape == (1, 4, 6)
    assert mask[0, 0, 0] == 1.0 and mask[0, 1, 1] == 0.0
    Image.fromarray(arr[..., :3]).save(tmp_path / "b.jpg")
    _, no_alpha = imageio.load_image_file(tmp_path / "b.jpg")
    assert no_alpha.shape == (1, 4, 6) and not no_alpha.any()


def test_animated_file_gives_one_item_per_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (5, 3), (i * 60, 0, 0)) for i in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    image, mask = imageio.load_image_file(tmp_path / "anim.gif")
    assert image.shape == (3, 3, 5, 3) and mask.shape == (3, 3, 5)


def test_png_text_chunks_and_sha(tmp_path: Path) -> None:
    info = imageio.png_text_chunks({"1": {"class_type": "X"}}, {"workflow": {"nodes": []}})
    path = imageio.save_png(Image.new("RGB", (2, 2)), tmp_path / "x.png", info)
    text = Image.open(path).text
    assert json.loads(text["prompt"]) == {"1": {"class_type": "X"}}
    assert json.loads(text["workflow"]) == {"nodes": []}
    assert len(imageio.file_sha256(path)) == 64
