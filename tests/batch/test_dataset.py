"""Sources and decoding: listing, draft-mode JPEG shrink, video frames, bad files as failed items."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nodeloom.batch.dataset import BatchDataset, DecodeOptions, open_source, parse_size
from nodeloom.errors import ValidationError

from .conftest import write_images


def test_folder_lists_media_in_order_and_skips_other_files(tmp_path):
    write_images(tmp_path / "a", 3)
    write_images(tmp_path / "a" / "sub", 1)
    (tmp_path / "a" / "notes.txt").write_text("x")
    refs = open_source(str(tmp_path / "a"))
    assert [r.id for r in refs] == ["im00.png", "im01.png", "im02.png", "sub/im00.png"]
    assert [r.index for r in refs] == [0, 1, 2, 3]


def test_items_decode_to_uint8_tensors_with_fields(image_folder):
    ds = BatchDataset(open_source(str(image_folder)))
    item = ds[1]
    assert item["ok"] and item["id"] == "im01.png"
    image = item["fields"]["image"]
    assert image.dtype == torch.uint8 and tuple(image.shape) == (32, 32, 3)
    assert item["fields"]["name"] == "im01" and item["fields"]["index"] == 1
    expected = np.asarray(Image.open(image_folder / "im01.png").convert("RGB"))
    assert np.array_equal(image.numpy(), expected)


def test_bad_files_come_back_as_failed_items(tmp_path):
    folder = tmp_path / "mixed"
    write_images(folder, 1)
    (folder / "text.jpg").write_text("this is not a JPEG")
    good = folder / "im00.png"
    (folder / "truncated.png").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    (folder / "empty.webp").write_bytes(b"")
    refs = open_source(str(folder))
    ds = BatchDataset(refs)
    results = {r.id: ds[r.index] for r in refs}
    assert results["im00.png"]["ok"]
    for name in ("text.jpg", "truncated.png", "empty.webp"):
        assert not results[name]["ok"], name
        assert results[name]["reason"]
    (folder / "im00.png").unlink()  # vanished after listing
    gone = ds[[r.id for r in refs].index("im00.png")]
    assert not gone["ok"] and "not found" in gone["reason"]


def test_glob_includes_wrong_types_as_failures(tmp_path):
    write_images(tmp_path / "g", 2)
    (tmp_path / "g" / "readme.md").write_text("# hi")
    refs = open_source(str(tmp_path / "g" / "*"))
    ds = BatchDataset(refs)
    by_id = {r.id: ds[r.index] for r in refs}
    assert set(by_id) == {"im00.png", "im01.png", "readme.md"}
    assert not by_id["readme.md"]["ok"] and "not a readable image" in by_id["readme.md"]["reason"]


def test_jpeg_draft_decoding_shrinks_to_max_side(tmp_path):
    from skimage import data

    path = tmp_path / "astronaut.jpg"
    Image.fromarray(data.astronaut()).save(path, quality=90)  # 512×512
    item = BatchDataset(open_source(str(path)), DecodeOptions(max_side=100))[0]
    assert tuple(item["fields"]["image"].shape) == (100, 100, 3)
    full = np.asarray(Image.open(path).convert("RGB").resize((100, 100), Image.Resampling.BILINEAR), dtype=np.float32)
    assert np.abs(item["fields"]["image"].numpy().astype(np.float32) - full).mean() < 6.0


def test_resize_covers_and_centre_crops(tmp_path):
    write_images(tmp_path / "r", 1, sizes=(40,))
    item = BatchDataset(open_source(str(tmp_path / "r")), DecodeOptions(size=(20, 10)))[0]
    assert tuple(item["fields"]["image"].shape) == (10, 20, 3)
    assert parse_size("64x32") == (64, 32)
    with pytest.raises(ValidationError, match="WIDTHxHEIGHT"):
        parse_size("64")


def test_video_frames_are_items(tmp_path):
    import cv2

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for k in range(5):
        writer.write(np.full((24, 32, 3), 40 * k, dtype=np.uint8))
    writer.release()
    refs = open_source(str(tmp_path), frame_step=2)
    assert [r.id for r in refs] == ["clip.avi#000000", "clip.avi#000002", "clip.avi#000004"]
    ds = BatchDataset(refs)
    means = [float(ds[i]["fields"]["image"].float().mean()) for i in (2, 0, 1)]  # out of order: seeks
    assert means[1] < means[2] < means[0]
    assert ds[1]["fields"]["frame"] == 2


def test_rows_and_seeds(tmp_path):
    csv_path = tmp_path / "p.csv"
    csv_path.write_text("prompt,steps\na cat,4\na dog,5\n")
    refs = open_source(str(csv_path))
    assert [r.id for r in refs] == ["p.csv:2", "p.csv:3"]
    assert BatchDataset(refs)[1]["fields"]["prompt"] == "a dog"
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text(json.dumps({"prompt": "x"}) + "\n{broken\n" + json.dumps([1]) + "\n")
    items = [BatchDataset(open_source(str(jsonl)))[i] for i in range(3)]
    assert items[0]["ok"] and not items[1]["ok"] and "invalid JSON" in items[1]["reason"]
    assert not items[2]["ok"] and "JSON object" in items[2]["reason"]
    seeds = open_source("seeds:3:9:2")
    assert [r.row["seed"] for r in seeds] == [3, 5, 7] and seeds[0].id == "seed:3"
    with pytest.raises(ValidationError, match="seed range"):
        open_source("seeds:a")


def test_unknown_source_is_a_clear_error(tmp_path):
    with pytest.raises(ValidationError, match="not a folder, file, glob"):
        open_source(str(tmp_path / "missing"))
    with pytest.raises(ValidationError, match="matches no file"):
        open_source(str(tmp_path / "*.png"))


def test_dataset_pickles_without_open_videos(image_folder):
    import pickle

    ds = BatchDataset(open_source(str(image_folder)))
    ds._captures["x"] = [object(), 0]
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._captures == {} and len(clone) == len(ds) == 6
    assert isinstance(clone[0]["fields"]["image"], torch.Tensor)
    assert Path(clone[0]["fields"]["path"]).name == "im00.png"
