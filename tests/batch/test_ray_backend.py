"""The same batch on a local Ray (two actors) gives the same manifest and files as the local backend."""

from __future__ import annotations

import pytest

from nodeloom.batch.progress import JsonProgress
from nodeloom.batch.runner import BatchOptions, run_batch

from .conftest import manifest, score_workflow

ray = pytest.importorskip("ray")


def _run(tmp_path, folder, backend):
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    out = tmp_path / backend
    options = BatchOptions(prompt=score_workflow(), input=str(folder), out=out, binds=["2.image=image"],
                           num_workers=2, batch_size=3, score="3", top_k=3, backend=backend,
                           engine={"base_dir": str(tmp_path / "base")})
    with open(tmp_path / f"{backend}.events", "w") as fh:
        summary = run_batch(options, JsonProgress(fh))
    return out, summary


def _comparable(out):
    items, summary = manifest(out / "manifest.jsonl")
    for rec in items:
        rec.pop("metrics")
    keep = ("total", "done", "failed", "pending", "score", "score_stats", "top_k")
    return items, {k: summary[k] for k in keep}


def test_ray_backend_matches_the_local_backend(tmp_path, image_folder):
    local_out, _ = _run(tmp_path, image_folder, "local")
    ray_out, summary = _run(tmp_path, image_folder, "ray")
    assert not ray.is_initialized()  # the run started its own Ray and shut it down
    assert summary["done"] == 6 and summary["failed"] == 1
    assert _comparable(ray_out) == _comparable(local_out)
    local_files = sorted((local_out / "outputs").iterdir())
    ray_files = sorted((ray_out / "outputs").iterdir())
    assert [p.name for p in local_files] == [p.name for p in ray_files]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(local_files, ray_files))
