"""Fixtures for batch tests: a folder of seeded images (two sizes, one corrupt file) and a workflow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_images(folder: Path, count: int, sizes: tuple[int, ...] = (24, 32), seed: int = 0) -> list[Path]:
    """``count`` random PNGs named im00.png..., sizes cycling through ``sizes``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        s = sizes[i % len(sizes)]
        pixels = rng.integers(0, 255, (s, s, 3), dtype=np.uint8)
        pixels[:, : s // 2] //= 1 + i % 5  # vary sharpness so scores differ
        path = folder / f"im{i:02d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def score_workflow(size: int = 16, method: str = "bilinear") -> dict:
    """BatchInput (bound with --bind 2.image=image) → ImageScale → ImageScore, SaveImage."""
    return {
        "2": {"class_type": "ImageScale", "inputs": {"image": None, "upscale_method": method, "width": size,
                                                      "height": size, "crop": "disabled"}},
        "3": {"class_type": "ImageScore", "inputs": {"images": ["2", 0], "metric": "sharpness"}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "item"}},
    }


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    write_images(folder, 6)
    return folder


@pytest.fixture
def workflow_file(tmp_path: Path) -> Path:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(score_workflow()))
    return path


def manifest(path: Path) -> tuple[list[dict], dict]:
    """``(item records, summary)`` of a manifest file."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[-1]["type"] == "summary"
    return lines[:-1], lines[-1]
