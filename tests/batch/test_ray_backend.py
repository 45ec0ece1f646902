"""The same batch on Ray gives the same manifest and files as the local backend.

Two ways in: a Ray started by the run itself (two actors), and ``nodeloom batch --address``
joining a head node that was started beforehand with ``ray start --head`` (as on a cluster).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import nodeloom

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path):
    """A Ray head node in its own process group (what `ray start --head` makes on a cluster).

    Ray binds a head node to the machine's address, not loopback; token authentication
    (Ray's default for `ray start`) keeps other drivers out.
    """
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="rh")  # Ray's socket paths must stay short: not under tmp_path
    src = str(Path(nodeloom.__file__).resolve().parent.parent)
    # `ray start` turns token authentication on; drivers joining the cluster must use it too
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)}
    ray_cli = Path(sys.executable).with_name("ray")
    log = tmp_path / "ray-head.log"
    log_fh = log.open("w")
    head = subprocess.Popen(
        [str(ray_cli), "start", "--head", "--block", "--port", str(port), "--node-ip-address", "127.0.0.1",
         "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", temp],
        env=env, stdout=log_fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "Ray runtime started" not in log.read_text(errors="replace"):
            assert head.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the Ray head did not start in 60 s"
            time.sleep(0.2)
        yield f"127.0.0.1:{port}", env
    finally:
        os.killpg(head.pid, signal.SIGINT)  # `ray start --block` stops its node on Ctrl-C
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        log_fh.close()
        shutil.rmtree(temp, ignore_errors=True)


def test_cli_joins_a_running_cluster_with_address(tmp_path, image_folder, workflow_file, ray_head):
    address, env = ray_head
    local_out, _ = _run(tmp_path, image_folder, "local")
    cmd = [sys.executable, "-m", "nodeloom", "batch", str(workflow_file), "--input", str(image_folder),
           "--bind", "2.image=image", "--out", str(tmp_path / "cluster"), "--base-dir", str(tmp_path / "base"),
           "--num-workers", "2", "--batch-size", "3", "--score", "3", "--top-k", "3",
           "--backend", "ray", "--address", address]
    # a driver without the cluster's authentication is refused with a clear message, and nothing runs
    refused = subprocess.run(cmd, env={**env, "RAY_AUTH_MODE": "disabled"}, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and f"cannot join the Ray cluster at `--address {address}`" in refused.stderr
    assert "RAY_AUTH_MODE=token" in refused.stderr and "Traceback" not in refused.stderr
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-3000:]  # 1: the corrupt file failed
    items, summary = _comparable(tmp_path / "cluster")
    assert summary["done"] == 6 and summary["failed"] == 1
    assert (items, summary) == _comparable(local_out)
    names = sorted(p.name for p in (tmp_path / "cluster" / "outputs").iterdir())
    assert names == sorted(p.name for p in (local_out / "outputs").iterdir())
