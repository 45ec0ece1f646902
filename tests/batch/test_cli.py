"""``nodeloom batch`` and ``nodeloom bench bandwidth`` through the real command entry point."""

from __future__ import annotations

import json

from nodeloom.cli.main import main

from .conftest import manifest


def _batch(tmp_path, image_folder, workflow_file, *extra):
    return main(["batch", str(workflow_file), "--input", str(image_folder), "--bind", "2.image=image",
                 "--out", str(tmp_path / "out"), "--base-dir", str(tmp_path / "base"), "--num-workers", "0", *extra])


def test_batch_command_json_events_and_exit_codes(tmp_path, image_folder, workflow_file, capsys):
    args = ("--json", "--score", "3.scores", "--top-k", "2", "--batch-size", "2")
    assert _batch(tmp_path, image_folder, workflow_file, *args) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in events][:1] == ["start"] and events[-1]["event"] == "summary"
    assert len(events[-1]["top_k"]) == 2
    items, _ = manifest(tmp_path / "out" / "manifest.jsonl")
    assert len(items) == 6
    # nothing left: the same command again does nothing and still succeeds
    assert _batch(tmp_path, image_folder, workflow_file, *args) == 0
    again = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert again[0]["todo"] == 0 and not any(e["event"] == "item" for e in again)
    assert again[-1]["top_k"] == events[-1]["top_k"]
    # another workflow into the same folder is refused
    assert _batch(tmp_path, image_folder, workflow_file, "--json") == 1
    assert "another batch" in capsys.readouterr().out


def test_batch_command_reports_failures_and_bad_options(tmp_path, image_folder, workflow_file, capsys):
    (image_folder / "bad.png").write_text("no")
    assert _batch(tmp_path, image_folder, workflow_file) == 1  # an item failed
    err = capsys.readouterr().err
    assert "bad.png" in err and "1 failed" in err
    assert _batch(tmp_path, image_folder, workflow_file, "--shard", "3/2") == 2
    assert "--shard" in capsys.readouterr().err
    assert _batch(tmp_path, image_folder, workflow_file, "--bind", "9.x=image") == 1
    assert "neither a node id" in capsys.readouterr().err


def test_batch_command_names_a_node_by_title(tmp_path, image_folder):
    wf = {"s": {"class_type": "ImageScale", "_meta": {"title": "Resize"},
                "inputs": {"upscale_method": "area", "width": 8, "height": 8, "crop": "center"}},
          "v": {"class_type": "SaveImage", "inputs": {"images": ["s", 0], "filename_prefix": "t"}}}
    path = tmp_path / "titled.json"
    path.write_text(json.dumps(wf))
    code = main(["batch", str(path), "--input", str(image_folder), "--bind", "Resize.image=image", "--out",
                 str(tmp_path / "t"), "--base-dir", str(tmp_path / "base"), "--num-workers", "0", "--json"])
    assert code == 0


def test_bench_bandwidth_is_registered(capsys):
    assert main(["bench", "bandwidth", "--size-mb", "1", "--trials", "1", "--no-disk", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows][:2] == ["copy", "triad"] and rows[0]["effective_gbps"] > 0
