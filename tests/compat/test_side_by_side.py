"""Pack workflows give ComfyUI's results: ``tools/packs/side_by_side.py`` against a reference ComfyUI.

Opt-in, like the ComfyUI suite tests: set ``COMFY_SRC`` (a ComfyUI tree), ``COMFY_VENV`` (its
virtual environment) and ``NODELOOM_PACKS_DIR`` (a folder of pack checkouts); optionally
``NODELOOM_PACK_DEPS`` (the packs' requirements installed with ``pip install --target``). Skipped
without them. Every workflow whose packs load in both engines must give equal outputs.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _tool() -> object:
    spec = importlib.util.spec_from_file_location("side_by_side", ROOT / "tools" / "packs" / "side_by_side.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.mark.skipif(not all(os.environ.get(k) for k in ("COMFY_SRC", "COMFY_VENV", "NODELOOM_PACKS_DIR")),
                    reason="set COMFY_SRC, COMFY_VENV and NODELOOM_PACKS_DIR to compare pack workflows with ComfyUI")
def test_pack_workflows_match_comfyui(tmp_path: Path) -> None:
    import json

    report_path = tmp_path / "report.json"
    status = _tool().main(["--json", str(report_path)])  # type: ignore[attr-defined]
    report = json.loads(report_path.read_text())
    ran = [r for r in report["workflows"] if r["result"] != "skipped"]
    assert ran, "no workflow's packs loaded in both engines"
    assert status == 0 and all(r["result"] == "equal" for r in ran), report["workflows"]


def test_output_comparison_reports_text_and_shape_differences() -> None:
    tool = _tool()
    same = {"4": {"text": ["7"]}}
    assert tool.compare_outputs(None, same, None, same) == []  # type: ignore[attr-defined]
    assert tool.compare_outputs(None, same, None, {"4": {"text": ["8"]}}) == ["node 4.text: ['7'] vs ['8']"]  # type: ignore[attr-defined]
    report = {"packs": {"ComfyMath": {"ComfyUI": 53, "nodeloom": 53}, "X": {"ComfyUI": 0, "nodeloom": 0}},
              "workflows": [{"workflow": "w", "result": "equal", "comfy_s": 0.1, "nodeloom_s": 0.2, "why": ""}]}
    table = tool.format_report(report)  # type: ignore[attr-defined]
    assert "| ComfyMath | 53 | 53 |" in table and "| X | fails | fails |" in table and "| w | equal | 0.1 | 0.2 |" in table
