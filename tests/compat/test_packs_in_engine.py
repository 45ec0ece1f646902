"""Custom-node packs through the Engine: our fixture pack, and ComfyUI's own testing pack.

ComfyUI's ``tests/execution/testing_nodes/testing-pack`` is read from a local git copy of the
ComfyUI repository named by ``$COMFY_MIRROR`` (a clone or a bare mirror; skipped when unset) and
copied to a temp folder. It is never stored in this repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from nodeloom.core.graph_builder import GraphBuilder
from nodeloom.engine import Engine

COMFY_MIRROR = Path(os.environ["COMFY_MIRROR"]) if os.environ.get("COMFY_MIRROR") else None
TESTING_PACK = "tests/execution/testing_nodes/testing-pack"
PACK_FILES = ("__init__.py", "api_test_nodes.py", "async_test_nodes.py", "conditions.py", "flow_control.py",
              "specific_tests.py", "stubs.py", "tools.py", "util.py")


def test_fixture_pack_runs_in_the_engine(custom_nodes_dir: Path, tmp_path: Path) -> None:
    engine = Engine(base_dir=tmp_path / "base", custom_nodes_dirs=[custom_nodes_dir])
    events: list[Any] = []
    g = GraphBuilder(prefix="")
    empty = g.node("EmptyImage", width=8, height=8, batch_size=2, color=0)
    bright = g.node("StubBrighten", image=empty.out(0), amount=0.5)
    twice = g.node("StubInvertTwice", image=bright.out(0))
    half = g.node("StubHalfSize", image=twice.out(0))
    save = g.node("SaveImage", images=half.out(0), filename_prefix="stub")
    gate = g.node("StubGate", value=empty.out(0), open=False)
    g.node("PreviewImage", images=gate.out(0))
    unsubscribe = engine.subscribe(events.append)  # custom pack events go to the engine's bus
    result = engine.run(g.finalize())
    unsubscribe()
    assert result.status == "success", result.errors
    assert torch.allclose(result.value(half.id), torch.full((2, 4, 4, 3), 0.5))
    saved = result.outputs[save.id]["images"]
    assert [s["filename"] for s in saved] == ["stub_00001_.png", "stub_00002_.png"]
    assert Image.open(tmp_path / "base" / "output" / saved[0]["filename"]).size == (4, 4)
    types = [e.type for e in events]
    assert "stub.brightened" in types and "progress" in types
    custom = next(e for e in events if e.type == "stub.brightened")
    assert custom.data == {"node": bright.id, "items": 2}
    assert engine.registry.get("StubOutputDir") is not None
    engine.close()


def _copy_testing_pack(target: Path) -> Path:
    pack = target / "testing-pack"
    pack.mkdir(parents=True)
    for name in PACK_FILES:
        text = subprocess.run(
            ["git", "-C", str(COMFY_MIRROR), "show", f"HEAD:{TESTING_PACK}/{name}"],
            check=True, capture_output=True, text=True,
        ).stdout
        (pack / name).write_text(text)
    return pack


@pytest.fixture(scope="module")
def comfy_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    if shutil.which("git") is None or COMFY_MIRROR is None or not COMFY_MIRROR.exists():
        pytest.skip("no local git copy of the ComfyUI repository (set COMFY_MIRROR)")
    root = tmp_path_factory.mktemp("comfy_pack")
    _copy_testing_pack(root / "custom_nodes")
    engine = Engine(base_dir=root / "base", custom_nodes_dirs=[root / "custom_nodes"])
    yield engine
    engine.close()


def test_comfyui_testing_pack_loads_unchanged(comfy_engine: Engine) -> None:
    pack = next(p for p in comfy_engine.registry.packs if p.name == "testing-pack")
    assert pack.error is None
    assert len(pack.node_ids) >= 50
    for name in ("TestLazyMixImages", "TestForLoopOpen", "TestExecutionBlocker", "TestSyncProgressUpdate",
                 "TestAsyncProgressUpdate", "StubImage"):
        assert name in pack.node_ids
    info = comfy_engine.object_info("TestLazyMixImages")["TestLazyMixImages"]
    assert info["python_module"] == "custom_nodes.testing-pack"


def _grey_levels(path: Path) -> tuple[int, int]:
    arr = np.asarray(Image.open(path))
    return int(arr.min()), int(arr.max())


def test_testing_pack_lazy_input_runs_only_what_is_needed(comfy_engine: Engine) -> None:
    g = GraphBuilder(prefix="")
    black = g.node("StubImage", content="BLACK", height=16, width=16, batch_size=1)
    white = g.node("StubImage", content="WHITE", height=16, width=16, batch_size=1)
    mask = g.node("StubMask", value=0.0, height=16, width=16, batch_size=1)
    mix = g.node("TestLazyMixImages", image1=black.out(0), image2=white.out(0), mask=mask.out(0))
    save = g.node("SaveImage", images=mix.out(0), filename_prefix="lazy")
    result = comfy_engine.run(g.finalize())
    assert result.status == "success", result.errors
    assert black.id in result.node_runs and white.id not in result.node_runs
    image = result.outputs[save.id]["images"][0]
    assert _grey_levels(comfy_engine.paths.output_dir / image["subfolder"] / image["filename"]) == (0, 0)


def test_testing_pack_for_loop_and_progress_api(comfy_engine: Engine) -> None:
    g = GraphBuilder(prefix="")
    black = g.node("StubImage", content="BLACK", height=8, width=8, batch_size=1)
    white = g.node("StubImage", content="WHITE", height=8, width=8, batch_size=1)
    changed = g.node("TestCustomIsChanged", should_change=True, image=white.out(0))
    loop_open = g.node("TestForLoopOpen", remaining=2, initial_value1=changed.out(0))
    average = g.node("TestVariadicAverage", input1=black.out(0), input2=loop_open.out(2))
    loop_close = g.node("TestForLoopClose", flow_control=loop_open.out(0), initial_value1=average.out(0))
    progress = g.node("TestSyncProgressUpdate", value=loop_close.out(0), sleep_seconds=0.05)
    save = g.node("SaveImage", images=progress.out(0), filename_prefix="loop")
    events: list[Any] = []
    result = comfy_engine.run(g.finalize(), on_event=events.append)
    assert result.status == "success", result.errors
    image = result.outputs[save.id]["images"][0]
    assert _grey_levels(comfy_engine.paths.output_dir / image["subfolder"] / image["filename"]) == (255 // 4, 255 // 4)
    assert any(e.type == "progress" and e.data.get("node") == progress.id for e in events)
