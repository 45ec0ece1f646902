"""`image_engine`: an engine with the built-in packs plus two test-only nodes: a tensor source and a sink (the stub pack's Output)."""

from __future__ import annotations

from typing import Any

import pytest

from nodeloom import Engine
from nodeloom.core.registry import PackInfo
from nodeloom.core.types import ANY
from tests.fixtures.stub_pack import Output

#: built-in nodes that ComfyUI itself declares with an empty category (the frontend lists them at the
#: node library's root); the contract tests accept those without one
EMPTY_CATEGORY_IN_COMFYUI = frozenset({"FluxKVCache"})

TENSORS: dict[str, Any] = {}


class TestTensor:
    """Hands out a value that a test put in ``TENSORS`` (IMAGE, MASK or anything)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"key": ("STRING", {"default": ""})}}

    RETURN_TYPES = (ANY,)
    FUNCTION = "run"

    def run(self, key):
        return (TENSORS[key],)


@pytest.fixture(scope="session")
def image_engine(tmp_path_factory):
    eng = Engine(base_dir=tmp_path_factory.mktemp("engine"))
    eng.registry.register_pack(PackInfo("testing", "tests.nodes.conftest"), {"TestTensor": TestTensor, "TestSink": Output})
    yield eng
    eng.close()


def run_prompt(engine: Engine, prompt: dict[str, Any], tensors: dict[str, Any] | None = None, sinks: list[list] = ()):
    """Run ``prompt`` with ``tensors`` available to TestTensor nodes and a sink on each link."""
    TENSORS.clear()
    TENSORS.update(tensors or {})
    full = dict(prompt)
    for i, link in enumerate(sinks):
        full[f"sink{i}"] = {"class_type": "TestSink", "inputs": {"value": link}}
    return engine.run(full)
