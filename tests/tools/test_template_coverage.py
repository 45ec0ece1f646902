"""The template-coverage tool: which templates count as local, which types as known, the rankings."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "template_coverage", Path(__file__).resolve().parents[2] / "tools" / "templates" / "coverage.py")
coverage = importlib.util.module_from_spec(_SPEC)
sys.modules["template_coverage"] = coverage  # dataclasses look their module up by name
_SPEC.loader.exec_module(coverage)


def _ui(*types: str, subgraphs: dict[str, list[str]] | None = None) -> dict:
    nodes = [{"id": i, "type": t} for i, t in enumerate(types, 1)]
    defs = [{"id": sid, "nodes": [{"id": 1, "type": t} for t in inner]} for sid, inner in (subgraphs or {}).items()]
    return {"nodes": nodes, "links": [], "definitions": {"subgraphs": defs}}


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    files = {
        "t_known": _ui("LoadImage", "SaveImage", "Note"),
        "t_one_missing": _ui("LoadImage", "GetImageSize", "MarkdownNote"),
        "t_two_missing": _ui("GetImageSize", "ImageStitch", "SaveImage"),
        "t_subgraph": _ui("LoadImage", "abc-123", subgraphs={"abc-123": ["ImageStitch", "Reroute"]}),
        "api_cloud": _ui("CloudNode", "SaveImage"),
        "t_paid": _ui("LoadImage", "SaveImage"),
        "t_uses_cloud": _ui("CloudNode", "LoadImage"),
    }
    for name, wf in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(wf))
    index = [{"templates": [{"name": "t_paid", "openSource": False}, {"name": "t_known", "openSource": True}]}]
    (tmp_path / "index.json").write_text(json.dumps(index))
    (tmp_path / "fuse_options.json").write_text(json.dumps({"keys": []}))
    return tmp_path


def test_local_templates_drop_api_names_paid_marks_and_cloud_nodes(folder: Path) -> None:
    local = coverage.local_templates(coverage.load_templates(folder))
    assert sorted(t.name for t in local) == ["t_known", "t_one_missing", "t_subgraph", "t_two_missing"]


def test_subgraph_ids_and_frontend_nodes_count_as_known(folder: Path) -> None:
    templates = {t.name: t for t in coverage.load_templates(folder)}
    assert templates["t_subgraph"].missing({"LoadImage"}) == {"ImageStitch"}
    assert templates["t_known"].missing({"LoadImage", "SaveImage"}) == set()


def test_measure_ranks_alone_and_greedy(folder: Path) -> None:
    local = coverage.local_templates(coverage.load_templates(folder))
    cov = coverage.measure(local, {"LoadImage", "SaveImage"})
    assert (cov.total, cov.covered) == (4, ["t_known"])
    assert cov.uses == {"GetImageSize": 2, "ImageStitch": 2}
    assert cov.alone == {"GetImageSize": 1, "ImageStitch": 1}
    # both unlock one template alone and are used twice: the tie goes by name, then the pair
    # unlocks the template that needs both
    assert cov.greedy == [("ImageStitch", 2), ("GetImageSize", 4)]


def test_main_prints_the_figure(folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coverage, "known_node_types", lambda: {"LoadImage", "SaveImage", "GetImageSize"})
    assert coverage.main(["--templates", str(folder), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["covered"], result["total"]) == (2, 4)
    assert result["greedy"][0] == {"type": "ImageStitch", "covered": 4}


def test_assumed_types_count_as_known(folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coverage, "known_node_types", lambda: {"LoadImage", "SaveImage"})
    assert coverage.main(["--templates", str(folder), "--json", "--assume", "GetImageSize,ImageStitch"]) == 0
    assert json.loads(capsys.readouterr().out)["covered"] == 4
