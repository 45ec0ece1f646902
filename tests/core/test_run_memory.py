"""Peak memory per run in the run's metrics: the process's resident-set peak, reset each run."""

from __future__ import annotations

import sys

import pytest

from nodeloom import Engine

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the per-run reset needs Linux's /proc")


def _image(size: int, batch: int) -> dict:
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": size, "height": size, "batch_size": batch, "color": 0}},
            "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
            "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}


def test_a_run_reports_its_own_peak_resident_memory(tmp_path):
    with Engine(base_dir=tmp_path, cache="none") as engine:
        big = engine.run(_image(1024, 8))  # two 1024²×8 float32 images (≈ 100 MB each) alive at once
        small = engine.run(_image(16, 1))
    for result in (big, small):
        assert result.ok, result.errors
        mem = result.memory
        assert mem["cpu_peak_scope"] == "run" and mem["cuda_max_allocated"] is None
        assert mem["cpu_rss_peak"] >= mem["cpu_rss_start"] > 0
    image_bytes = 1024 * 1024 * 3 * 8 * 4
    assert big.memory["cpu_rss_peak"] - big.memory["cpu_rss_start"] >= 1.5 * image_bytes
    # the peak was reset between the runs: the small run's peak is not the big one's
    assert small.memory["cpu_rss_peak"] - small.memory["cpu_rss_start"] < image_bytes / 2
    assert small.to_dict()["memory"] == small.memory
