"""The ``nodeloom`` command, in-process and as a subprocess."""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from nodeloom.cli import main as cli
from nodeloom.cli.run import RichReporter
from nodeloom.core.events import Event

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "workflows"
FIXTURE_PACKS = ROOT / "tests" / "fixtures" / "custom_nodes"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_json_reports_files_nodes_and_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "run", str(EXAMPLES / "invert_scale.json"), "--base-dir", str(tmp_path), "--json")
    assert code == 0
    result = json.loads(out)
    assert result["status"] == "success"
    (files,) = [o["files"] for o in result["outputs"].values()]
    assert len(files) == 1 and Path(files[0]).is_file()
    assert set(result["nodes"]) == {"1", "2", "3", "4", "5"} and all(n["ran"] for n in result["nodes"].values())
    assert result["metrics"]["nodes_ran"] == 5 and result["metrics"]["nodes_cached"] == 0


def test_run_with_overrides_out_dir_and_sequential(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "renders"
    code, out, err = run_cli(capsys, "run", str(EXAMPLES / "invert_scale.json"), "--base-dir", str(tmp_path),
                             "--out", str(out_dir), "--sequential", "--set", "1.color=0", "--set", "Scale to 128 wide.width=32",
                             "--set", "5.filename_prefix=custom")
    assert code == 0, err
    saved = out_dir / "custom_00001_.png"
    assert str(saved) in out
    image = Image.open(saved)
    assert image.size == (32, 19) and min(image.getpixel((16, 10))) >= 250  # inverted black (bicubic)
    assert "running" in err  # plain progress lines when stderr is not a terminal


def test_run_errors_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "run", str(EXAMPLES / "invert_scale.json"), "--base-dir", str(tmp_path), "--set", "nope.x=1")
    assert code == 1 and "neither a node id nor a node title" in err
    code, _, err = run_cli(capsys, "run", str(tmp_path / "missing.json"), "--base-dir", str(tmp_path))
    assert code == 1 and "cannot read workflow" in err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"1": {"class_type": "EmptyImage", "inputs": {"width": 0, "height": 8, "batch_size": 1, "color": 0}},
                               "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}))
    code, out, _ = run_cli(capsys, "run", str(bad), "--base-dir", str(tmp_path), "--json")
    assert code == 1 and json.loads(out)["status"] == "invalid"


def test_run_failing_node_with_custom_nodes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    packs = tmp_path / "custom_nodes"
    shutil.copytree(FIXTURE_PACKS / "stub_v1_pack", packs / "stub_v1_pack")
    workflow = tmp_path / "fail.json"
    workflow.write_text(json.dumps({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "StubFail", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
        "4": {"class_type": "StubBrighten", "inputs": {"image": ["1", 0], "amount": 0.5}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
    }))
    code, out, _ = run_cli(capsys, "run", str(workflow), "--base-dir", str(tmp_path), "--json")  # BASE/custom_nodes
    result = json.loads(out)
    assert code == 1 and result["status"] == "error"
    assert any("stub failure on purpose" in e["exception_message"] for e in result["errors"])
    assert result["outputs"]["5"]["files"]  # the independent branch still ran
    code, _, err = run_cli(capsys, "run", str(workflow), "--base-dir", str(tmp_path), "--disable-all-custom-nodes")
    assert code == 1 and "StubFail" in err


def test_validate_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 0, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "a"}},
        "3": {"class_type": "ImageInvert", "inputs": {}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }))
    code, out, _ = run_cli(capsys, "validate", str(bad), "--base-dir", str(tmp_path))
    assert code == 1 and "node 1 (EmptyImage)" in out and "node 3 (ImageInvert)" in out
    code, out, _ = run_cli(capsys, "validate", str(bad), "--base-dir", str(tmp_path), "--json")
    assert code == 1 and set(json.loads(out)["node_errors"]) == {"1", "3"}
    code, out, _ = run_cli(capsys, "validate", str(EXAMPLES / "ui_subgraph_example.json"), "--base-dir", str(tmp_path))
    assert code == 0 and out.startswith("valid: 1 output node(s): 6")


def test_nodes_and_convert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "nodes", "--base-dir", str(tmp_path))
    assert code == 0 and "LoadImage" in out and "PrimitiveInt" in out
    code, out, _ = run_cli(capsys, "nodes", "ImagePadForOutpaint", "--base-dir", str(tmp_path))
    assert code == 0 and "feathering: INT [default=40" in out and "out MASK: MASK" in out
    code, out, _ = run_cli(capsys, "nodes", "SaveImage", "--json", "--base-dir", str(tmp_path))
    assert json.loads(out)["SaveImage"]["output_node"] is True
    code, _, err = run_cli(capsys, "nodes", "NoSuchNode", "--base-dir", str(tmp_path))
    assert code == 1 and "unknown node type" in err
    target = tmp_path / "api.json"
    code, _, _ = run_cli(capsys, "convert", str(EXAMPLES / "ui_subgraph_example.json"), "-o", str(target), "--base-dir", str(tmp_path))
    prompt = json.loads(target.read_text())
    assert code == 0 and sorted(prompt) == ["1", "5:1", "5:2", "6"]
    assert prompt["1"]["_meta"]["title"] == "EmptyImage" and prompt["5:2"]["_meta"]["title"] == "Upscale Image"


def test_run_accepts_a_saved_prompt_request_body(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = tmp_path / "body.json"
    prompt = json.loads((EXAMPLES / "invert_scale.json").read_text())
    body.write_text(json.dumps({"prompt": prompt, "client_id": "c", "extra_data": {"extra_pnginfo": {"workflow": {"nodes": [], "v": 7}}}}))
    code, out, _ = run_cli(capsys, "run", str(body), "--base-dir", str(tmp_path), "--json")
    (files,) = [o["files"] for o in json.loads(out)["outputs"].values()]
    assert code == 0 and json.loads(Image.open(files[0]).text["workflow"]) == {"nodes": [], "v": 7}


def test_run_reads_the_prompt_embedded_in_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "run", str(EXAMPLES / "branching.json"), "--base-dir", str(tmp_path), "--json")[0] == 0
    png = next((tmp_path / "output" / "nodeloom").glob("branch_single_*.png"))
    text = Image.open(png).text
    assert "prompt" in text
    laid_out = json.loads(text["workflow"])  # an API input still gets a UI workflow the editor can open
    assert laid_out["version"] == 0.4 and {n["type"] for n in laid_out["nodes"]} >= {"EmptyImage", "SaveImage"}
    code, out, _ = run_cli(capsys, "run", str(png), "--base-dir", str(tmp_path), "--json")
    result = json.loads(out)
    assert code == 0 and result["status"] == "success" and set(result["nodes"]) >= {"1", "3", "8", "9"}


def test_serve_without_server_module_explains(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "nodeloom.server.cli", None)
    code, _, err = run_cli(capsys, "serve", "--port", "1")
    assert code == 2 and "server is not available" in err


def test_bench_extension_point(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[Any] = []
    fake = types.ModuleType("nodeloom_fake_bench")

    def register_cli(sub: Any) -> None:
        p = sub.add_parser("echo")
        p.add_argument("--n", type=int, default=1)
        p.set_defaults(func=lambda a: calls.append(a.n) or 0)

    fake.register_cli = register_cli  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "nodeloom_fake_bench", fake)
    monkeypatch.setattr(cli, "BENCH_PROVIDERS", [("nodeloom_missing_bench_module", "register_cli"),
                                                 ("nodeloom_fake_bench", "register_cli")])
    assert run_cli(capsys, "bench", "echo", "--n", "3")[0] == 0 and calls == [3]
    monkeypatch.setattr(cli, "BENCH_PROVIDERS", [])
    code, _, err = run_cli(capsys, "bench")
    assert code == 2 and "no benchmarks" in err


def test_rich_reporter_draws_from_events() -> None:
    stream = io.StringIO()
    prompt = {"1": {"class_type": "A", "inputs": {}}, "2": {"class_type": "B", "inputs": {"x": ["1", 0]}}}
    reporter = RichReporter(prompt, ["2"], stream)
    for event in (Event("execution_cached", {"nodes": ["1"]}), Event("executing", {"node": "2"}),
                  Event("progress", {"node": "2", "value": 3, "max": 4}), Event("executing", {"node": "2.0.0.1"}),
                  Event("execution_error", {"exception_message": "boom"})):
        reporter(event)
    reporter.close()
    text = stream.getvalue()
    assert "workflow" in text and "3/3" in text and "boom" in text


def test_subprocess_run_prints_progress_and_writes_png(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "nodeloom.cli.main", "run", str(EXAMPLES / "invert_scale.json"), "--base-dir", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=240, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "running  5 Save" in proc.stderr and "success: 5 node(s) ran" in proc.stdout
    assert (tmp_path / "output" / "nodeloom" / "invert_scale_00001_.png").is_file()
    ui_run = subprocess.run(
        [sys.executable, "-m", "nodeloom.cli.main", "run", str(EXAMPLES / "ui_subgraph_example.json"), "--base-dir", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=240, check=False,
    )
    assert ui_run.returncode == 0, ui_run.stderr
    embedded = Image.open(tmp_path / "output" / "nodeloom" / "ui_example_00001_.png").text["workflow"]
    assert json.loads(embedded)["definitions"]["subgraphs"][0]["name"] == "Invert and scale"  # the original UI file
    bad = subprocess.run([sys.executable, "-m", "nodeloom.cli.main", "run"], capture_output=True, text=True, env=env,
                         timeout=120, check=False)
    assert bad.returncode == 2 and "workflow" in bad.stderr


def test_parser_lists_every_command() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"run", "validate", "nodes", "convert", "serve", "bench"} <= set(sub.choices)


def test_mcp_and_serve_commands_take_their_own_flags(capsys):
    import pytest as _pytest

    from nodeloom.cli.main import main as cli_main

    for command, flag in (("mcp", "--read-only"), ("serve", "--cache-lru")):
        with _pytest.raises(SystemExit) as exit_info:
            cli_main([command, "--help"])
        assert exit_info.value.code == 0
        assert flag in capsys.readouterr().out
