"""Unit tests of the audit log, the job store, the progress waiter and the output helpers (no MCP transport)."""

from __future__ import annotations

from types import SimpleNamespace

import anyio
import numpy as np
import pytest
from PIL import Image

from nodeloom.errors import ValidationError
from nodeloom.mcp.audit import AuditLog, arguments_digest
from nodeloom.mcp.jobs import Job, JobStore
from nodeloom.mcp.outputs import file_for_uri, make_thumbnail, output_file, output_uri
from nodeloom.mcp.tools import _wait
from nodeloom.paths import FolderPaths


@pytest.mark.parametrize("name", ["audit.jsonl", "audit.sqlite3", None])
def test_audit_backends_record_digest_not_arguments(tmp_path, name):
    log = AuditLog(tmp_path / name if name else None)
    log.record("stdio:agent", "run_workflow", {"workflow": {"token": "hunter2"}}, "ok", 0.25)
    log.record("stdio:agent", "cancel_job", {"job_id": "x"}, "denied", 0.001, error_type="policy_denied", detail="read-only")
    records = log.records()
    assert [(r.tool, r.outcome) for r in records] == [("run_workflow", "ok"), ("cancel_job", "denied")]
    assert records[0].duration_ms == 250.0 and records[1].error_type == "policy_denied"
    if name:
        assert b"hunter2" not in (tmp_path / name).read_bytes()
    log.close()


def test_arguments_digest_is_canonical():
    assert arguments_digest({"a": 1, "b": [1, 2]}) == arguments_digest({"b": [1, 2], "a": 1})
    assert arguments_digest({"a": 1}) != arguments_digest({"a": 2})
    assert len(arguments_digest({})) == 64


def test_job_store_idempotency_and_restart(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    a, created_a = store.create({"1": {"class_type": "X", "inputs": {}}}, key="k", who="me")
    b, created_b = store.create({"1": {"class_type": "X", "inputs": {}}}, key="k", who="me")
    assert created_a and not created_b and a is b
    with pytest.raises(ValidationError) as exc:
        store.create({"1": {"class_type": "Y", "inputs": {}}}, key="k", who="me")
    assert exc.value.type == "idempotency_key_conflict"
    other, _ = store.create({"1": {"class_type": "Y", "inputs": {}}}, key=None, who="me")
    a.status = "running"
    store.save(a)
    store.close()
    reopened = JobStore(tmp_path / "jobs.sqlite3")
    again, created = reopened.create({"1": {"class_type": "X", "inputs": {}}}, key="k", who="me")
    assert not created and again.id == a.id and again.status == "interrupted"
    assert {j.id for j in reopened.list()} == {a.id, other.id}
    assert [j.id for j in reopened.list(status="interrupted")] == [other.id, a.id]  # newest first; both were unfinished
    with pytest.raises(ValidationError):
        reopened.get("nope")


def test_output_uris_round_trip_and_stay_confined(tmp_path):
    paths = FolderPaths(tmp_path)
    paths.ensure()
    (paths.output_dir / "sub dir").mkdir()
    Image.new("RGB", (4, 4)).save(paths.output_dir / "sub dir" / "a b.png")
    ref = {"filename": "a b.png", "subfolder": "sub dir", "type": "output"}
    uri = output_uri(ref)
    assert uri == "nodeloom://output/sub%20dir/a%20b.png"
    assert output_file(paths, ref) == paths.output_dir / "sub dir" / "a b.png"
    assert file_for_uri(paths, "output", "sub%20dir/a%20b.png") == output_file(paths, ref)
    for kind, rel in (("output", "../x.png"), ("output", "%2E%2E/x.png"), ("models", "x"), ("output", "missing.png")):
        with pytest.raises(ValidationError):
            file_for_uri(paths, kind, rel)
    with pytest.raises(ValidationError):
        output_file(paths, {"filename": "x.png", "subfolder": "../..", "type": "output"})


def test_thumbnails_fit_their_budget(tmp_path):
    rng = np.random.default_rng(0)
    noisy = tmp_path / "noisy.png"
    Image.fromarray(rng.integers(0, 255, (900, 1200, 3), dtype=np.uint8)).save(noisy)
    thumb = make_thumbnail(noisy, max_side=512, budget_kb=24)
    assert thumb.mime_type == "image/jpeg" and len(thumb.data) <= 24 * 1024 and max(thumb.width, thumb.height) <= 512
    flat = tmp_path / "flat.png"
    Image.new("RGB", (64, 32), (10, 200, 30)).save(flat)
    small = make_thumbnail(flat, max_side=512, budget_kb=24)
    assert small.mime_type == "image/png" and (small.width, small.height) == (64, 32)
    (tmp_path / "not.png").write_bytes(b"nope")
    with pytest.raises(ValidationError):
        make_thumbnail(tmp_path / "not.png")
    with pytest.raises(ValidationError):
        make_thumbnail(flat, budget_kb=0)


def test_waiter_reports_the_last_step_when_the_job_ends_between_its_reads():
    """The runner may record its final step and set `done` right after the waiter read the steps."""
    job = Job(id="j", prompt={"1": {}, "2": {}})
    job._set_progress(1.0, "running node 1")
    reads = 0
    read_steps = job.progress_since

    def progress_since(seq):
        nonlocal reads
        steps = read_steps(seq)
        reads += 1
        if reads == 1:  # the job ends just after this first read
            job._set_progress(2.0, "done")
            job.done.set()
        return steps

    job.progress_since = progress_since
    reported = []

    class Ctx:
        async def report_progress(self, value, total, message):
            reported.append((value, total, message))

    app = SimpleNamespace(policy=SimpleNamespace(limits=SimpleNamespace(max_wait_seconds=0)))
    anyio.run(_wait, app, job, Ctx(), 5.0)
    assert reported == [(1.0, 2.0, "running node 1"), (2.0, 2.0, "done")]
