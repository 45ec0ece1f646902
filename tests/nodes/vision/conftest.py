"""`vision_engine`: an engine whose models folder holds tiny random upscale and CLIP-vision files."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeloom import Engine
from nodeloom.core.registry import PackInfo
from nodeloom.testing.diffusion_fixtures import no_network, single_thread  # noqa: F401
from tests.fixtures.stub_pack import Output
from tests.nodes.conftest import TestTensor


@pytest.fixture(autouse=True)
def _guards(no_network, single_thread):  # noqa: F811
    yield


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    for folder in ("upscale_models", "clip_vision"):
        (root / folder).mkdir()
    return root


@pytest.fixture(scope="module")
def vision_engine(models_dir, tmp_path_factory):
    eng = Engine(base_dir=tmp_path_factory.mktemp("engine"), models_dir=models_dir, load_custom_nodes=False,
                 device="cpu")
    eng.registry.register_pack(PackInfo("testing", "tests.nodes.conftest"), {"TestTensor": TestTensor, "TestSink": Output})
    yield eng
    eng.close()
