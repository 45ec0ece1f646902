"""What a new user meets first: every unknown node named at once, missing models with the
folders searched and their URL, `models`, text outputs printed by `run`, and `demo`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nodeloom.cli import demo
from nodeloom.cli import main as cli

ROOT = Path(__file__).resolve().parents[2]
URL = "https://example.invalid/models/tiny_sd15.safetensors"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _ui_node(node_id: int, kind: str, *, widgets=None, inputs=(), outputs=(), core: bool = False, models=None) -> dict:
    props = {"Node name for S&R": kind, **({"cnr_id": "comfy-core"} if core else {})}
    if models:
        props["models"] = models
    return {"id": node_id, "type": kind, "pos": [0, 0], "size": [200, 100], "flags": {}, "order": node_id, "mode": 0,
            "inputs": list(inputs), "outputs": list(outputs), "properties": props, "widgets_values": widgets or []}


def _checkpoint_workflow() -> dict:
    loader = _ui_node(1, "CheckpointLoaderSimple", widgets=["tiny_sd15.safetensors"], core=True,
                      outputs=[{"name": "MODEL", "type": "MODEL", "links": [1]}, {"name": "CLIP", "type": "CLIP", "links": []},
                               {"name": "VAE", "type": "VAE", "links": []}],
                      models=[{"name": "tiny_sd15.safetensors", "url": URL, "directory": "checkpoints"}])
    show = _ui_node(2, "PreviewAny", inputs=[{"name": "source", "type": "*", "link": 1}], core=True)
    return {"last_node_id": 2, "last_link_id": 1, "nodes": [loader, show], "links": [[1, 1, 0, 2, 0, "MODEL"]],
            "groups": [], "config": {}, "extra": {}, "version": 0.4}


def test_validate_names_every_unknown_node_type_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wf = _checkpoint_workflow()
    wf["nodes"] += [_ui_node(3, "FutureCoreSampler", core=True), _ui_node(4, "KlingTryOnNode"), _ui_node(5, "VHS_SomethingNew"),
                    _ui_node(6, "VHS_SomethingNew"), _ui_node(7, "Note")]
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(wf))
    for command in ("validate", "convert"):
        code, _, err = run_cli(capsys, command, str(path), "--base-dir", str(tmp_path))
        assert code == 1 and "3 unknown node type(s)" in err, err
        assert "`FutureCoreSampler` (node #3): a ComfyUI core node nodeloom does not have yet" in err
        assert "`KlingTryOnNode` (node #4): a ComfyUI core node nodeloom does not have yet" in err
        assert "`VHS_SomethingNew` (node #5, #6): not a node nodeloom knows: is its custom-node pack installed?" in err
        assert "Note" not in err


def test_missing_model_names_folders_and_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(_checkpoint_workflow()))
    code, out, _ = run_cli(capsys, "validate", str(path), "--base-dir", str(tmp_path))
    folder = tmp_path / "models" / "checkpoints"
    assert code == 1 and "Value not in list" in out
    assert f"`tiny_sd15.safetensors` is not in the `checkpoints` model folder (searched: {folder}" in out
    assert f"the workflow says it comes from {URL}" in out
    code, out, _ = run_cli(capsys, "validate", str(path), "--base-dir", str(tmp_path), "--json")
    (err,) = json.loads(out)["node_errors"]["1"]["errors"]
    assert err["extra_info"]["url"] == URL and err["extra_info"]["model_folder"] == "checkpoints"


def test_models_lists_files_urls_and_presence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wf = _checkpoint_workflow()
    wf["models"] = [{"name": "extra_lora.safetensors", "url": "https://example.invalid/l.safetensors", "directory": "loras"}]
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(wf))
    code, out, _ = run_cli(capsys, "models", str(path), "--base-dir", str(tmp_path))
    assert code == 1 and "MISSING  checkpoints/tiny_sd15.safetensors" in out and URL in out
    assert f"put it in {tmp_path / 'models' / 'checkpoints' / 'tiny_sd15.safetensors'}" in out
    assert "0 present, 2 missing" in out
    (tmp_path / "models" / "checkpoints").mkdir(parents=True)  # `models` only reads, it creates no folder
    (tmp_path / "models" / "checkpoints" / "tiny_sd15.safetensors").write_bytes(b"x")
    code, out, _ = run_cli(capsys, "models", str(path), "--base-dir", str(tmp_path), "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 1 and rows["tiny_sd15.safetensors"]["present"] and rows["tiny_sd15.safetensors"]["nodes"] == ["1"]
    assert not rows["extra_lora.safetensors"]["present"] and rows["extra_lora.safetensors"]["url"].endswith("l.safetensors")
    code, out, _ = run_cli(capsys, "models", str(path), "--base-dir", str(tmp_path), "--missing")
    assert code == 1 and "tiny_sd15" not in out and "extra_lora" in out


def test_models_of_an_api_prompt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "models", str(ROOT / "examples" / "workflows" / "invert_scale.json"), "--base-dir", str(tmp_path))
    assert code == 0 and "names no model files" in out


def test_run_prints_text_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "text.json"
    path.write_text(json.dumps({
        "1": {"class_type": "PrimitiveString", "inputs": {"value": "hello there"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }))
    code, out, _ = run_cli(capsys, "run", str(path), "--base-dir", str(tmp_path))
    assert code == 0 and "  2 text: hello there" in out


def test_demo_keeps_serving_on_a_terminal_until_ctrl_c(capsys: pytest.CaptureFixture[str]) -> None:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    demo.keep_serving(done, "http://127.0.0.1:1", interactive=False)
    assert capsys.readouterr().out == ""
    demo.keep_serving(done, "http://127.0.0.1:1", interactive=True)  # returns once the server is gone
    assert "graph editor is at http://127.0.0.1:1/" in capsys.readouterr().out

    class Interrupted:
        def wait(self) -> None:
            raise KeyboardInterrupt

    demo.keep_serving(Interrupted(), "http://127.0.0.1:1", interactive=True)  # type: ignore[arg-type]
    assert "stopping the server" in capsys.readouterr().out


def test_demo_runs_a_workflow_and_stops_off_a_terminal(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "nodeloom.cli.main", "demo", "--base-dir", str(tmp_path),
         "--workflow", str(ROOT / "examples" / "workflows" / "invert_scale.json")],
        capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wrote = [line for line in proc.stdout.splitlines() if " wrote " in line]
    assert len(wrote) == 1 and "demo: success" in proc.stdout and "graph editor" not in proc.stdout


def test_survey_tolerates_malformed_workflows() -> None:
    from nodeloom.workflows.survey import model_files, node_types

    bad = {"nodes": [{"id": 1, "type": "X", "properties": ["not", "a", "dict"]}, "junk"],
           "definitions": {"subgraphs": "nope"}, "models": {"name": "x"}}
    assert model_files(bad) == [] and node_types(bad) == {"X": {"ids": ["1"], "core": False}}
    assert model_files({"1": {"class_type": "SaveImage", "inputs": {}}}) == []


def test_a_file_listed_under_two_ui_keys_is_printed_once(tmp_path: Path) -> None:
    from nodeloom.cli.run import output_files, output_texts
    from nodeloom.paths import FolderPaths

    class FakeEngine:
        paths = FolderPaths(tmp_path)

    item = {"filename": "clip_00001_.mp4", "subfolder": "", "type": "output"}
    files = output_files(FakeEngine(), {"7": {"gifs": [item], "images": [item], "animated": [True]}})
    assert files == {"7": [str(tmp_path / "output" / "clip_00001_.mp4")]}
    assert output_texts({"3": {"text": ["a", "b"]}, "4": {"images": []}}) == {"3": "a\nb"}
