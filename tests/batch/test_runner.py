"""End-to-end batch runs through the engine: outputs, manifest, failures, scores, rows, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from nodeloom.batch.journal import Journal
from nodeloom.batch.progress import JsonProgress
from nodeloom.batch.runner import BatchOptions, run_batch
from nodeloom.errors import ValidationError
from nodeloom.ops.score import score_images

from .conftest import manifest, score_workflow, write_images


def _options(tmp_path, source, **kw):
    base = dict(prompt=score_workflow(), input=str(source), out=tmp_path / "out", binds=["2.image=image"],
                num_workers=0, engine={"base_dir": str(tmp_path / "base")})
    base.update(kw)
    return BatchOptions(**base)


def _quiet(tmp_path):
    return JsonProgress(open(tmp_path / "events.jsonl", "w"))


def test_folder_of_images_runs_through_the_workflow(tmp_path, image_folder):
    summary = run_batch(_options(tmp_path, image_folder, num_workers=2, batch_size=4, score="3", top_k=3),
                        _quiet(tmp_path))
    out = tmp_path / "out"
    items, last = manifest(out / "manifest.jsonl")
    assert [r["item"] for r in items] == [f"im{i:02d}.png" for i in range(6)]
    assert all(r["status"] == "done" for r in items) and summary["done"] == 6 == last["done"]
    for rec in items:
        (path,) = rec["outputs"]["4"]
        saved = np.asarray(Image.open(out / path))
        assert saved.shape == (16, 16, 3)
        assert rec["metrics"]["nodes"]["2"]["class_type"] == "ImageScale"
        assert "bandwidth_gbps" in rec["metrics"]["nodes"]["2"]
    # the score recorded for an item is ImageScore of that very output image
    rec = items[4]
    saved = torch.from_numpy(np.asarray(Image.open(out / rec["outputs"]["4"][0]), dtype=np.float32)[None] / 255)
    expected = score_images(saved, "sharpness")  # of the 8-bit PNG: close to the float score
    assert rec["scores"]["score"] == pytest.approx(float(expected[0]), rel=0.02)
    ranked = sorted(items, key=lambda r: -r["scores"]["score"])[:3]
    assert [t["item"] for t in last["top_k"]] == [r["item"] for r in ranked]
    assert sorted(p.name for p in (out / "outputs").iterdir()) == sorted(
        r["outputs"]["4"][0].split("/")[-1] for r in items)
    assert (out / "summary.png").stat().st_size > 0 and json.loads((out / "summary.json").read_text())["done"] == 6
    report = (out / "summary.md").read_text()
    assert "6 done, 0 failed" in report and f"| 1 | {last['top_k'][0]['item']} |" in report and "ImageScale" in report
    assert last["nodes"]["3"]["runs"] == pytest.approx(4.0)  # runs: two of 2 images (24 px, 32 px), two of 1
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "start" and events[-1]["event"] == "summary"
    assert sum(e["event"] == "item" for e in events) == 6


def test_corrupt_files_are_recorded_and_the_run_continues(tmp_path, image_folder):
    (image_folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (image_folder / "zz.jpg").write_text("not an image")
    summary = run_batch(_options(tmp_path, image_folder, num_workers=1, batch_size=3), _quiet(tmp_path))
    items, _ = manifest(tmp_path / "out" / "manifest.jsonl")
    status = {r["item"]: r for r in items}
    assert status["broken.png"]["status"] == "failed" and status["broken.png"]["reason"]
    assert status["zz.jpg"]["status"] == "failed"
    assert sum(r["status"] == "done" for r in items) == 6
    assert summary["failed"] == 2 and summary["done"] == 6
    # a retry run only touches the failed ones (still failing), done items are kept
    again = run_batch(_options(tmp_path, image_folder, retry_failed=True), _quiet(tmp_path))
    assert again["failed"] == 2 and again["done"] == 6
    rows = Journal(tmp_path / "out" / "journal.sqlite", "x" * 0 or _fp(tmp_path)).items()
    assert {r["item_id"]: r["attempts"] for r in rows}["zz.jpg"] == 2
    assert all(r["completions"] == 1 for r in rows if r["state"] == "done")


def _fp(tmp_path):
    import sqlite3

    db = sqlite3.connect(tmp_path / "out" / "journal.sqlite")
    return db.execute("SELECT value FROM meta WHERE key='fingerprint'").fetchone()[0]


def test_two_save_nodes_and_a_named_score_slot(tmp_path):
    folder = tmp_path / "mixed"
    write_images(folder, 4, sizes=(24,))
    write_images(folder / "big", 1, sizes=(64,))
    wf = score_workflow()
    wf["5"] = {"class_type": "ImageCrop", "inputs": {"image": ["2", 0], "width": 8, "height": 8, "x": 0, "y": 0}}
    wf["6"] = {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "crop"}}
    summary = run_batch(_options(tmp_path, folder, prompt=wf, score="3.mean"), _quiet(tmp_path))
    items, last = manifest(tmp_path / "out" / "manifest.jsonl")
    assert summary["done"] == 5
    assert all(set(r["outputs"]) == {"4", "6"} for r in items)
    assert last["score_stats"]["count"] == 5


def test_rows_bind_scalar_fields_and_batch_input_nodes(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"w": w, "tag": f"t{w}"}) + "\n" for w in (8, 12)))
    wf = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 4, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "nearest-exact",
                                                      "width": 4, "height": 4, "crop": "disabled"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "row"}},
        "7": {"class_type": "BatchInput", "inputs": {"field": "w", "kind": "float", "item": "", "default": "0"}},
        "8": {"class_type": "BatchScore", "inputs": {"score": ["7", 0], "name": "width"}},
    }
    run_batch(_options(tmp_path, rows, prompt=wf, binds=["2.width=w", "2.height=w"], score="8", top_k=1),
              _quiet(tmp_path))
    items, last = manifest(tmp_path / "out" / "manifest.jsonl")
    sizes = [Image.open(tmp_path / "out" / r["outputs"]["3"][0]).size for r in items]
    assert sizes == [(8, 8), (12, 12)]
    assert [r["scores"]["width"] for r in items] == [8.0, 12.0]
    assert last["top_k"][0]["item"] == "rows.jsonl:2"


def test_a_failing_run_fails_its_items_only(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"w": w}) + "\n" for w in (8, "wide", -3, 12)))
    wf = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 4, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "nearest-exact",
                                                      "width": 4, "height": 4, "crop": "disabled"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "row"}},
    }
    summary = run_batch(_options(tmp_path, rows, prompt=wf, binds=["2.width=w"]), _quiet(tmp_path))
    items, _ = manifest(tmp_path / "out" / "manifest.jsonl")
    assert [r["status"] for r in items] == ["done", "failed", "failed", "done"]
    assert "width" in items[1]["reason"] and items[1]["outputs"] == {}
    assert summary["failed"] == 2 and summary["done"] == 2


def test_one_score_for_several_items_fails_them_with_a_hint(tmp_path, image_folder):
    summary = run_batch(_options(tmp_path, image_folder, batch_size=2, resize=(16, 16), score="3.mean"), _quiet(tmp_path))
    items, _ = manifest(tmp_path / "out" / "manifest.jsonl")
    assert summary["failed"] == 6 and "--batch-size 1" in items[0]["reason"]


def test_bad_options_are_refused_before_running(tmp_path, image_folder):
    with pytest.raises(ValidationError, match="no field"):
        run_batch(_options(tmp_path, image_folder, binds=["2.image=picture"]), _quiet(tmp_path))
    with pytest.raises(ValidationError, match=r"node 2 \(ImageScale\) has no input `imgae`"):
        run_batch(_options(tmp_path, image_folder, binds=["2.imgae=image"]), _quiet(tmp_path))
    with pytest.raises(ValidationError, match="has no input `widht`"):
        run_batch(_options(tmp_path, image_folder, binds=["2.image=image", "2.widht=index"]), _quiet(tmp_path))
    with pytest.raises(ValidationError, match="neither a node id nor a node title"):
        run_batch(_options(tmp_path, image_folder, binds=["99.image=image"]), _quiet(tmp_path))
    with pytest.raises(ValidationError, match="--batch-size 1"):
        run_batch(_options(tmp_path, image_folder, binds=["2.image=image", "4.filename_prefix=name"], batch_size=2),
                  _quiet(tmp_path))
    with pytest.raises(ValidationError, match="has no output `nope`"):
        run_batch(_options(tmp_path, image_folder, score="3.nope"), _quiet(tmp_path))
    wf = score_workflow()
    wf["2"]["inputs"]["width"] = "wide"
    with pytest.raises(ValidationError) as info:
        run_batch(_options(tmp_path, image_folder, prompt=wf), _quiet(tmp_path))
    assert "2" in info.value.node_errors
    assert not (tmp_path / "out" / "outputs").exists()


def test_shards_in_one_folder_each_run_their_own_items(tmp_path, image_folder):
    done = []
    for i in range(3):
        summary = run_batch(_options(tmp_path, image_folder, shard=(i, 3), shuffle=True, seed=5), _quiet(tmp_path))
        items, _ = manifest(tmp_path / "out" / f"manifest-{i}-of-3.jsonl")
        done += [r["item"] for r in items]
        assert summary["total"] == 2
    assert sorted(done) == [f"im{i:02d}.png" for i in range(6)]


def test_a_second_run_of_the_same_shard_is_refused(tmp_path, image_folder):
    import fcntl

    (tmp_path / "out").mkdir()
    with open(tmp_path / "out" / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running `nodeloom batch` holds it
        with pytest.raises(ValidationError, match="another run of shard 0/1"):
            run_batch(_options(tmp_path, image_folder), _quiet(tmp_path))
    assert run_batch(_options(tmp_path, image_folder), _quiet(tmp_path))["done"] == 6


def test_one_file_for_a_whole_run_is_given_to_each_item(tmp_path):
    folder = tmp_path / "same"
    write_images(folder, 3, sizes=(16,))
    wf = {"2": {"class_type": "ImageScale", "inputs": {"image": None, "upscale_method": "area", "width": 8,
                                                        "height": 8, "crop": "disabled"}},
          "5": {"class_type": "TopKSelect", "inputs": {"images": ["2", 0], "k": 1, "metric": "sharpness", "best": "auto",
                                                       "labels": "", "max_per_label": 0, "min_distance": 0.0}},
          "4": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "best"}}}
    summary = run_batch(_options(tmp_path, folder, prompt=wf, batch_size=3), _quiet(tmp_path))
    items, _ = manifest(tmp_path / "out" / "manifest.jsonl")
    assert summary["done"] == 3
    files = [tmp_path / "out" / r["outputs"]["4"][0] for r in items]
    assert len(set(files)) == 3 and len({f.read_bytes() for f in files}) == 1  # one best image, a copy per item


def test_pad_collate_hands_the_mask_to_the_graph(tmp_path, image_folder):
    wf = {"1": {"class_type": "BatchInput", "inputs": {"field": "image", "kind": "image", "item": "", "default": ""}},
          "2": {"class_type": "MaskToImage", "inputs": {"mask": ["1", 1]}},
          "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "mask"}}}
    run_batch(_options(tmp_path, image_folder, prompt=wf, binds=[], batch_size=2, collate="pad"), _quiet(tmp_path))
    items, _ = manifest(tmp_path / "out" / "manifest.jsonl")
    assert all(r["metrics"]["batch_size"] == 2 for r in items)  # 24 and 32 px images share runs
    small = np.asarray(Image.open(tmp_path / "out" / items[0]["outputs"]["3"][0]).convert("L"))
    large = np.asarray(Image.open(tmp_path / "out" / items[1]["outputs"]["3"][0]).convert("L"))
    assert small.shape == large.shape == (32, 32)
    assert small[:24, :24].min() == 255 and small[24:, :].max() == 0 and small[:, 24:].max() == 0
    assert large.min() == 255


def test_csv_rows_with_an_image_column(tmp_path, image_folder):
    rows = tmp_path / "products.csv"
    rows.write_text("sku,file\nA-1,photos/im00.png\nB-2,photos/missing.png\nC-3,\nD-4,photos/im03.png\n")
    wf = score_workflow()
    summary = run_batch(_options(tmp_path, rows, prompt=wf, image_column="file",
                                 binds=["2.image=image", "4.filename_prefix=sku"]), _quiet(tmp_path))
    items, _ = manifest(tmp_path / "out" / "manifest.jsonl")
    assert [r["status"] for r in items] == ["done", "failed", "failed", "done"]
    assert "not found" in items[1]["reason"] and "no `file` value" in items[2]["reason"]
    assert summary["done"] == 2
    assert Image.open(tmp_path / "out" / items[3]["outputs"]["4"][0]).size == (16, 16)


def test_video_frames_run_through_the_workflow(tmp_path):
    import cv2

    folder = tmp_path / "clips"
    folder.mkdir()
    writer = cv2.VideoWriter(str(folder / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for k in range(5):
        writer.write(np.full((24, 32, 3), 50 * k, dtype=np.uint8))
    writer.release()
    summary = run_batch(_options(tmp_path, folder, frame_step=2, batch_size=3, num_workers=1, score="3"),
                        _quiet(tmp_path))
    items, _ = manifest(tmp_path / "out" / "manifest.jsonl")
    assert [r["item"] for r in items] == ["clip.avi#000000", "clip.avi#000002", "clip.avi#000004"]
    assert summary["done"] == 3 and all(r["metrics"]["batch_size"] == 3 for r in items)
    means = [np.asarray(Image.open(tmp_path / "out" / r["outputs"]["4"][0])).mean() for r in items]
    assert means[0] < means[1] < means[2]
