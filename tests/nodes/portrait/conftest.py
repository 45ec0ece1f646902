"""`vision_engine` (the vision tests' engine) over a models folder holding a tiny synthetic ONNX
landmark model, a tiny SD1 checkpoint and a tiny ControlNet."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeloom.testing import tiny_sd
from nodeloom.testing.diffusion_fixtures import no_network, single_thread  # noqa: F401
from nodeloom.testing.tiny_landmarks import build_tiny_landmark_model
from tests.nodes.vision.conftest import _guards, vision_engine  # noqa: F401


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    build_tiny_landmark_model(root / "landmarks" / "tiny_face68.onnx")
    build_tiny_landmark_model(root / "landmarks" / "tiny_face68_3d.onnx", flat=False)
    tiny_sd.build_tiny_checkpoint(root, "sd1")
    tiny_sd.build_tiny_controlnet(root, "sd1")
    return root
