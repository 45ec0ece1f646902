"""Storage faults: a full queue database, a full output disk, file modes and resource limits
over HTTP. The "full disk" under the database is real SQLite ``SQLITE_FULL``, made by capping
the database's page count (``PRAGMA max_page_count``) and filling the last free space."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time

import pytest

from nodeloom.limits import LIMITS_EXTRA_KEY, RunLimits
from nodeloom.server.app import create_app
from nodeloom.server.config import ServerConfig
from nodeloom.server.state import STATE
from tests.server.conftest import LiveServer, collect, open_ws, request, submit, wait_history
from tests.server.server_pack import save_prompt, slow_prompt
from tests.server.test_files_users import _png, upload


def _fill(store, full: bool) -> None:
    """Cap the database at its current size and use up its free space (``full``), or lift the cap."""
    with store._lock:
        db = store._db
        if not full:
            db.execute("DROP TABLE IF EXISTS filler")
            db.execute("PRAGMA max_page_count=1073741823")
            return
        db.execute("CREATE TABLE IF NOT EXISTS filler(b BLOB)")
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count={pages}")
        for size in (3000, 1000, 200, 20, 1):
            for _ in range(10_000):
                try:
                    db.execute("INSERT INTO filler VALUES (zeroblob(?))", (size,))
                except sqlite3.OperationalError as exc:
                    assert "full" in str(exc)
                    break


@pytest.fixture
def live(engine, tmp_path):
    srv = LiveServer(create_app(engine, ServerConfig(db_path=tmp_path / "queue.sqlite3")))
    yield srv, srv.app[STATE]
    srv.close()


def test_worker_survives_a_full_database(live):
    srv, state = live
    ws = open_ws(srv.url, "disk")
    assert wait_history(srv.url, submit(srv.url, save_prompt("before"), "disk").json()["prompt_id"])["status"]["completed"]
    # the database fills up while a prompt runs whose failing node's 20 kB message cannot be
    # stored: that prompt fails with a storage error, the worker waits for space
    prompt = {"1": slow_prompt(steps=2, seconds=1.0)["1"],
              "2": {"class_type": "FailingNode", "inputs": {"message": "x" * 20_000}}}
    pid = submit(srv.url, prompt, "disk").json()["prompt_id"]
    while not request(srv.url, "GET", "/queue").json()["queue_running"]:
        time.sleep(0.02)
    _fill(state.queue.store, full=True)
    events, _ = _events_until_storage_error(ws, pid)
    assert ("execution_error" in [e[0] for e in events])
    refused = submit(srv.url, save_prompt("during"), "disk", extra_data={"pad": "y" * 20_000})
    assert refused.status == 507 and refused.json()["error"]["type"] == "storage_error"
    assert state.worker._thread.is_alive()
    _fill(state.queue.store, full=False)  # space returns
    entry = wait_history(srv.url, pid)
    assert entry["status"]["status_str"] == "error"
    assert "could not be stored" in entry["status"]["messages"][0][1]["exception_message"]
    after = submit(srv.url, save_prompt("after"), "disk").json()["prompt_id"]
    assert wait_history(srv.url, after)["status"]["completed"]
    ws.close()


def _events_until_storage_error(ws, pid: str, timeout: float = 30) -> tuple[list, None]:
    events = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ws.settimeout(max(0.1, deadline - time.monotonic()))
        msg = ws.recv()
        if isinstance(msg, bytes):
            continue
        m = json.loads(msg)
        events.append((m["type"], m["data"]))
        data = m["data"] if isinstance(m["data"], dict) else {}
        if m["type"] == "execution_error" and data.get("exception_type") == "storage_error" and data["prompt_id"] == pid:
            return events, None
    raise TimeoutError(f"no storage error for {pid}: {[e[0] for e in events]}")


def test_save_on_a_full_disk_leaves_no_partial_file(engine, monkeypatch, tmp_path):
    from nodeloom.nodes.core import image_io

    real = image_io.imageio.tensor_to_pils

    def full_disk(images):
        pils = real(images)

        class Full:
            def save(self, fh, **kw):
                fh.write(b"\x89PNG partial")
                raise OSError(28, "No space left on device")

        return [Full() for _ in pils]

    monkeypatch.setattr(image_io.imageio, "tensor_to_pils", full_disk)
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
              "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "full"}}}
    result = engine.run(prompt)
    assert result.status == "error" and "No space left" in result.errors[0]["exception_message"]
    assert list(engine.paths.output_dir.iterdir()) == []  # no 0-byte file, no temporary left


def test_uploads_and_outputs_share_one_file_mode(server, engine):
    assert upload(server.url, "up.png", _png((9, 9, 9))).status == 200
    pid = submit(server.url, {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "mode"}}}).json()["prompt_id"]
    name = wait_history(server.url, pid)["outputs"]["2"]["images"][0]["filename"]
    umask = os.umask(0)
    os.umask(umask)
    modes = {stat.S_IMODE(p.stat().st_mode) for p in (engine.paths.input_dir / "up.png", engine.paths.output_dir / name)}
    assert modes == {0o666 & ~umask}


def test_limits_apply_to_http_prompts(engine, tmp_path):
    limits = RunLimits(max_pixels=64 * 64, max_batch=8, max_memory=8 << 20)
    srv = LiveServer(create_app(engine, ServerConfig(db_path=tmp_path / "q.sqlite3", limits=limits)))
    try:
        empty = {"class_type": "EmptyImage", "inputs": {"width": 16384, "height": 16384, "batch_size": 1, "color": 0}}
        err = submit(srv.url, {"1": empty, "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}).json()
        assert err["error"]["type"] == "limit_exceeded" and "`max_pixels`" in err["error"]["message"]
        empty["inputs"].update(width=32, height=32, batch_size=64)
        err = submit(srv.url, {"1": empty, "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}).json()
        assert "`max_batch`" in err["error"]["message"]
        # a size no constant tells: refused at the node that makes it, the run fails cleanly
        pid = submit(srv.url, save_prompt("big", size=128)).json()["prompt_id"]
        entry = wait_history(srv.url, pid)
        assert entry["status"]["status_str"] == "error"
        assert not list(engine.paths.output_dir.glob("big*"))
        # a prompt may carry stricter limits (MCP jobs do), never looser ones
        loose = submit(srv.url, save_prompt("ok", size=32), extra_data={LIMITS_EXTRA_KEY: {"max_pixels": 10**9}})
        assert wait_history(srv.url, loose.json()["prompt_id"])["status"]["completed"]
        strict = submit(srv.url, save_prompt("no", value=0.25, size=32), extra_data={LIMITS_EXTRA_KEY: {"max_pixels": 16 * 16}})
        assert wait_history(srv.url, strict.json()["prompt_id"])["status"]["status_str"] == "error"
        assert submit(srv.url, save_prompt(), extra_data={LIMITS_EXTRA_KEY: {"bogus": 1}}).status == 400
    finally:
        srv.close()


def test_limit_flags():
    import argparse

    from nodeloom.server.cli import add_serve_arguments, server_config
    from nodeloom.server.config import DEFAULT_MAX_BATCH, DEFAULT_MAX_PIXELS

    def parse(*argv: str):
        return server_config(add_serve_arguments(argparse.ArgumentParser()).parse_args(list(argv)))

    default = parse().limits
    assert (default.max_pixels, default.max_batch) == (DEFAULT_MAX_PIXELS, DEFAULT_MAX_BATCH)
    assert default.max_memory > 0
    limits = parse("--max-pixels", "1024", "--max-batch", "0", "--max-memory", "0.5").limits
    assert limits == RunLimits(max_pixels=1024, max_batch=0, max_memory=2**29)
    for flag in ("--max-pixels", "--max-batch", "--max-memory"):
        with pytest.raises(ValueError, match=flag):
            parse(flag, "-1")
