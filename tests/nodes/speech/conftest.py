"""`vision_engine` (the vision tests' engine) over a models folder whose models/speech holds a
tiny random Whisper."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeloom.testing.tiny_whisper import build_tiny_whisper
from nodeloom.testing.diffusion_fixtures import no_network, single_thread  # noqa: F401
from tests.nodes.vision.conftest import _guards, vision_engine  # noqa: F401



@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    build_tiny_whisper(root / "speech" / "whisper-tiny-random")
    return root
