"""``kill -9`` in the middle of ``nodeloom batch``, then the same command: every item done exactly once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from .conftest import manifest, score_workflow, write_images

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _command(tmp_path: Path) -> list[str]:
    return [sys.executable, "-m", "nodeloom.cli.main", "batch", str(tmp_path / "wf.json"), "--input",
            str(tmp_path / "photos"), "--bind", "2.image=image", "--out", str(tmp_path / "out"), "--num-workers", "1",
            "--score", "3", "--top-k", "5", "--json", "--base-dir", str(tmp_path / "base")]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "HF_HUB_OFFLINE": "1"}


def _done(db_path: Path) -> int:
    if not db_path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1)
        try:
            return db.execute("SELECT COUNT(*) FROM items WHERE state='done'").fetchone()[0]
        finally:
            db.close()
    except sqlite3.OperationalError:
        return 0


def test_kill_9_then_resume_runs_every_item_exactly_once(tmp_path):
    n = 24
    write_images(tmp_path / "photos", n, sizes=(96, 80))
    (tmp_path / "wf.json").write_text(json.dumps(score_workflow(size=384, method="bicubic")))
    db_path = tmp_path / "out" / "journal.sqlite"
    proc = subprocess.Popen(_command(tmp_path), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while _done(db_path) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its DataLoader worker
    proc.wait(timeout=30)
    proc.stderr.close()
    db = sqlite3.connect(db_path)
    before = dict(db.execute("SELECT item_id, state FROM items").fetchall())
    db.close()
    done_before = {k for k, v in before.items() if v == "done"}
    assert 4 <= len(done_before) < n

    again = subprocess.run(_command(tmp_path), env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    events = [json.loads(line) for line in again.stdout.splitlines()]
    resumed = [e["id"] for e in events if e["event"] == "item"]
    assert not set(resumed) & done_before  # nothing committed before the kill ran again
    assert len(resumed) == len(set(resumed)) == n - len(done_before)

    db = sqlite3.connect(db_path)
    rows = db.execute("SELECT item_id, state, completions, attempts FROM items").fetchall()
    db.close()
    assert len(rows) == n and all(state == "done" and completions == 1 for _, state, completions, _ in rows)
    items, summary = manifest(tmp_path / "out" / "manifest.jsonl")
    assert sorted(r["item"] for r in items) == sorted(before) and summary["done"] == n
    files = sorted(p.name for p in (tmp_path / "out" / "outputs").iterdir())
    assert len(files) == n and files == sorted(r["outputs"]["4"][0].split("/")[-1] for r in items)
    assert len(summary["top_k"]) == 5
