"""Bandwidth measurements: memory copy and triad (STREAM method), disk sequential read, host↔device.

Every figure is reported two ways: raw = bytes / best time, and effective = bytes /
(best time − latency), where latency is the best time of the same operation on a tiny
buffer (call, dispatch and synchronisation overhead). Bytes follow STREAM's counting: copy
moves 2 words per element (read + write), triad ``a = b + s·c`` moves 3. Each kernel runs
``trials`` times and the best time is kept (STREAM takes the minimum too). Torch on the CPU
uses its intra-op threads; host↔device needs CUDA. No nodes; no engine.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from nodeloom.errors import ValidationError

__all__ = ["BandwidthResult", "best_time", "disk_read", "effective_gbps", "host_device", "memory_copy",
           "memory_triad", "run_all"]

_TINY = 1024  # bytes of the latency probe


@dataclass
class BandwidthResult:
    """One measurement.

    Attributes:
        name: what was measured (``copy``, ``triad``, ``disk_read``, ``h2d_pinned``...).
        bytes: bytes moved per trial (STREAM counting).
        best_s: best wall time of one trial.
        latency_s: best time of the same operation on a tiny buffer.
        raw_gbps: bytes / best_s, in GB/s (10⁹ bytes).
        effective_gbps: bytes / (best_s − latency_s).
        note: anything that qualifies the figure (threads, page-cache state).
    """

    name: str
    bytes: int
    best_s: float
    latency_s: float
    raw_gbps: float
    effective_gbps: float
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def effective_gbps(nbytes: int, seconds: float, latency: float) -> float:
    """``nbytes / (seconds − latency)`` in GB/s; the raw figure when latency is not below seconds.

    Raises:
        ValidationError: non-positive ``seconds`` or negative ``nbytes``/``latency``.
    """
    if seconds <= 0 or nbytes < 0 or latency < 0:
        raise ValidationError(f"need seconds > 0, nbytes ≥ 0, latency ≥ 0; got {seconds}, {nbytes}, {latency}")
    busy = seconds - latency if latency < seconds else seconds
    return nbytes / busy / 1e9


def best_time(fn: Callable[[], Any], trials: int, sync: Callable[[], Any] | None = None) -> float:
    """The smallest wall time of ``trials`` calls (after one warm-up call).

    Raises:
        ValidationError: ``trials`` < 1.
    """
    if trials < 1:
        raise ValidationError(f"`trials` must be ≥ 1, got {trials}")
    fn()
    if sync:
        sync()
    best = float("inf")
    for _ in range(trials):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        best = min(best, time.perf_counter() - t0)
    return best


def _result(name: str, nbytes: int, best: float, latency: float, note: str = "") -> BandwidthResult:
    return BandwidthResult(name, nbytes, best, latency, nbytes / best / 1e9, effective_gbps(nbytes, best, latency), note)


def _check_size(size_bytes: int) -> int:
    if size_bytes < 8 * _TINY:
        raise ValidationError(f"`size_bytes` must be ≥ {8 * _TINY}, got {size_bytes}")
    return size_bytes // 8


def memory_copy(size_bytes: int = 256 * 2**20, trials: int = 5) -> BandwidthResult:
    """STREAM copy ``a[:] = b`` on float64 arrays of ``size_bytes`` each (2 words per element)."""
    n = _check_size(size_bytes)
    a, b = torch.empty(n, dtype=torch.float64), torch.rand(n, dtype=torch.float64)
    ta, tb = torch.empty(_TINY // 8, dtype=torch.float64), torch.rand(_TINY // 8, dtype=torch.float64)
    best = best_time(lambda: a.copy_(b), trials)
    latency = best_time(lambda: ta.copy_(tb), max(trials, 50))
    return _result("copy", 16 * n, best, latency, f"torch, {torch.get_num_threads()} thread(s)")


def memory_triad(size_bytes: int = 256 * 2**20, trials: int = 5, scalar: float = 3.0) -> BandwidthResult:
    """STREAM triad ``a = b + s·c`` (one fused pass; 3 words per element)."""
    n = _check_size(size_bytes)
    a = torch.empty(n, dtype=torch.float64)
    b, c = torch.rand(n, dtype=torch.float64), torch.rand(n, dtype=torch.float64)
    ta, tb, tc = (torch.rand(_TINY // 8, dtype=torch.float64) for _ in range(3))
    best = best_time(lambda: torch.add(b, c, alpha=scalar, out=a), trials)
    latency = best_time(lambda: torch.add(tb, tc, alpha=scalar, out=ta), max(trials, 50))
    return _result("triad", 24 * n, best, latency, f"torch, {torch.get_num_threads()} thread(s)")


def _drop_cache(path: Path) -> bool:
    """Ask the kernel to forget the file's cached pages; True when it could be asked."""
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return True
    finally:
        os.close(fd)


def _read_all(path: Path, buf: bytearray) -> int:
    view = memoryview(buf)
    total = 0
    with open(path, "rb", buffering=0) as fh:
        while got := fh.readinto(view):
            total += got
    return total


def disk_read(directory: str | Path | None = None, size_bytes: int = 256 * 2**20, trials: int = 3,
              block_bytes: int = 4 * 2**20) -> BandwidthResult:
    """Sequential read of a fresh file in ``directory`` (default: the temp folder).

    The file is written and fsync'ed, then its pages are dropped from the page cache
    before each trial (``posix_fadvise DONTNEED``) so the disk, not memory, is read; the
    note says when that was not possible. Latency: reading the first 4 KiB after a drop.

    Raises:
        ValidationError: a size below 8 KiB or a block below 4 KiB.
    """
    _check_size(size_bytes)
    if block_bytes < 4096:
        raise ValidationError(f"`block_bytes` must be ≥ 4096, got {block_bytes}")
    folder = Path(directory) if directory is not None else Path(tempfile.gettempdir())
    fd, name = tempfile.mkstemp(prefix="nodeloom-bw-", dir=folder)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            chunk = os.urandom(block_bytes)
            for _ in range(size_bytes // block_bytes):
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        nbytes = (size_bytes // block_bytes) * block_bytes
        buf, small = bytearray(block_bytes), bytearray(4096)
        dropped = _drop_cache(path)
        best = latency = float("inf")
        for _ in range(trials):
            _drop_cache(path)
            t0 = time.perf_counter()
            _read_all(path, buf)
            best = min(best, time.perf_counter() - t0)
            _drop_cache(path)
            t0 = time.perf_counter()
            with open(path, "rb", buffering=0) as fh:
                fh.readinto(small)
            latency = min(latency, time.perf_counter() - t0)
        note = "page cache dropped before each read" if dropped else "page cache NOT dropped: figure may be memory speed"
        return _result("disk_read", nbytes, best, latency, f"{note}; {block_bytes // 2**20} MiB blocks")
    finally:
        path.unlink(missing_ok=True)


def host_device(size_bytes: int = 256 * 2**20, trials: int = 5, device: str = "cuda") -> list[BandwidthResult]:
    """Host→device and device→host copies from pageable and from pinned host memory.

    Returns:
        ``h2d_pageable``, ``h2d_pinned``, ``d2h_pageable``, ``d2h_pinned`` results.

    Raises:
        ValidationError: CUDA is not available.
    """
    if not torch.cuda.is_available():
        raise ValidationError("host↔device bandwidth needs CUDA, which is not available")
    _check_size(size_bytes)
    sync = torch.cuda.synchronize
    dev = torch.empty(size_bytes, dtype=torch.uint8, device=device)
    tiny_dev = torch.empty(_TINY, dtype=torch.uint8, device=device)
    out = []
    for kind in ("pageable", "pinned"):
        host = torch.empty(size_bytes, dtype=torch.uint8)
        tiny = torch.empty(_TINY, dtype=torch.uint8)
        if kind == "pinned":
            host, tiny = host.pin_memory(), tiny.pin_memory()
        pinned = kind == "pinned"
        for direction, fn, probe in (
            ("h2d", lambda: dev.copy_(host, non_blocking=pinned), lambda: tiny_dev.copy_(tiny, non_blocking=pinned)),
            ("d2h", lambda: host.copy_(dev, non_blocking=pinned), lambda: tiny.copy_(tiny_dev, non_blocking=pinned)),
        ):
            best = best_time(fn, trials, sync)
            latency = best_time(probe, max(trials, 50), sync)
            out.append(_result(f"{direction}_{kind}", size_bytes, best, latency, torch.cuda.get_device_name()))
    return out


def run_all(size_bytes: int = 256 * 2**20, trials: int = 5, directory: str | Path | None = None,
            disk: bool = True) -> list[BandwidthResult]:
    """Copy, triad, disk read (unless ``disk`` is False) and host↔device when CUDA is present."""
    results = [memory_copy(size_bytes, trials), memory_triad(size_bytes, trials)]
    if disk:
        results.append(disk_read(directory, size_bytes, max(1, min(trials, 3))))
    if torch.cuda.is_available():
        results.extend(host_device(size_bytes, trials))
    return results
