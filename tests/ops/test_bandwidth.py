"""Bandwidth measurements: the effective-bandwidth formula and small real runs of each kernel."""

from __future__ import annotations

import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.ops.bandwidth import best_time, disk_read, effective_gbps, host_device, memory_copy, memory_triad


def test_effective_bandwidth_subtracts_latency():
    assert effective_gbps(10**9, 1.0, 0.0) == 1.0
    assert effective_gbps(10**9, 1.0, 0.5) == 2.0
    assert effective_gbps(10**9, 1.0, 2.0) == 1.0  # latency above the time: the raw figure
    with pytest.raises(ValidationError):
        effective_gbps(10, 0.0, 0.0)


def test_best_time_takes_the_minimum():
    calls = []
    assert best_time(lambda: calls.append(1), 3) >= 0 and len(calls) == 4  # one warm-up
    with pytest.raises(ValidationError, match="trials"):
        best_time(lambda: None, 0)


def test_stream_kernels_count_stream_bytes():
    copy = memory_copy(2**20, trials=2)
    triad = memory_triad(2**20, trials=2)
    assert copy.bytes == 2 * 2**20 and triad.bytes == 3 * 2**20
    for r in (copy, triad):
        assert r.best_s > 0 and r.raw_gbps > 0 and r.effective_gbps >= r.raw_gbps
    with pytest.raises(ValidationError, match="size_bytes"):
        memory_copy(100)


def test_disk_read_reads_the_whole_file(tmp_path):
    r = disk_read(tmp_path, size_bytes=2**20, trials=1, block_bytes=2**18)
    assert r.bytes == 2**20 and r.raw_gbps > 0 and "blocks" in r.note
    assert list(tmp_path.iterdir()) == []  # the probe file is removed


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_host_device_needs_cuda():
    with pytest.raises(ValidationError, match="CUDA"):
        host_device(2**20)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_host_device_pinned_and_pageable():
    results = {r.name: r for r in host_device(32 * 2**20, trials=3)}
    assert set(results) == {"h2d_pageable", "h2d_pinned", "d2h_pageable", "d2h_pinned"}
    assert all(r.effective_gbps > 0 for r in results.values())
