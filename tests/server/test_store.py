"""The durable store and queue without a server: ordering, recovery, pruning."""

from __future__ import annotations

import pytest

from nodeloom.server.queue import PromptQueue
from nodeloom.server.store import JobStore


def _put(q: PromptQueue, pid: str, front: bool = False, extra: dict | None = None) -> None:
    q.put(pid, q.next_number(front), {"1": {"class_type": "X", "inputs": {}}}, dict(extra or {}), ["1"])


def _done(status: str = "success") -> dict:
    return {"status_str": status, "completed": status == "success", "messages": []}


def test_order_front_and_numbers_persist(tmp_path):
    db = tmp_path / "q.sqlite3"
    q = PromptQueue(JobStore(db))
    for pid in ("a", "b"):
        _put(q, pid)
    _put(q, "c", front=True)
    assert [j.prompt_id for j in q.pending()] == ["c", "a", "b"]
    q.store.close()
    q2 = PromptQueue(JobStore(db))
    _put(q2, "d")
    assert [j.prompt_id for j in q2.pending()] == ["c", "a", "b", "d"]
    assert q2.pending()[-1].number == 3
    with pytest.raises(ValueError, match="already used"):
        _put(q2, "a")


def test_running_job_is_requeued_then_failed_after_max_attempts(tmp_path):
    db = tmp_path / "q.sqlite3"
    q = PromptQueue(JobStore(db), max_attempts=2)
    _put(q, "a")
    _put(q, "b")
    assert q.take(timeout=0).prompt_id == "a"
    q.store.close()  # the process "dies" with `a` running
    q = PromptQueue(JobStore(db), max_attempts=2)
    assert q.requeued == ["a"] and q.failed == []
    assert [j.prompt_id for j in q.pending()] == ["a", "b"]
    job = q.take(timeout=0)
    assert job.prompt_id == "a" and job.attempts == 2
    q.store.close()  # dies again
    q = PromptQueue(JobStore(db), max_attempts=2)
    assert q.failed == ["a"] and [j.prompt_id for j in q.pending()] == ["b"]
    entry = q.history_item("a")["a"]
    assert entry["status"]["status_str"] == "error"
    assert "not retried after 2 attempts" in entry["status"]["messages"][0][1]["exception_message"]


def test_history_pruned_and_secrets_dropped(tmp_path):
    q = PromptQueue(JobStore(tmp_path / "q.sqlite3", history_limit=2))
    for pid in ("a", "b", "c"):
        _put(q, pid, extra={"api_key_comfy_org": "secret", "client_id": "x"})
        job = q.take(timeout=0)
        q.finish(job, "success", outputs={"1": {"images": [{"filename": f"{pid}.png", "subfolder": "", "type": "output"}]}},
                 status=_done(), meta={})
    assert list(q.history()) == ["b", "c"]
    assert q.history()["c"]["prompt"][3] == {"client_id": "x"}
    assert q.store.output_files("c")[0]["filename"] == "c.png" and q.store.output_files("a") == []
    assert q.remaining() == 0 and q.take(timeout=0.01) is None


def test_listeners_hear_every_change(tmp_path):
    q = PromptQueue(JobStore(tmp_path / "q.sqlite3"))
    seen = []
    q.add_listener(lambda: seen.append(q.remaining()))
    _put(q, "a")
    job = q.take(timeout=0)
    q.finish(job, "error", outputs={}, status=_done("error"), meta={})
    assert seen == [1, 1, 0]
    with pytest.raises(ValueError, match="state"):
        q.store.finish("a", "weird", outputs={}, status={}, meta={})


def test_release_keeps_place_and_attempts(tmp_path):
    q = PromptQueue(JobStore(tmp_path / "q.sqlite3"))
    _put(q, "a")
    _put(q, "b")
    job = q.take(timeout=0)
    q.release(job)
    assert [j.prompt_id for j in q.pending()] == ["a", "b"]
    again = q.take(timeout=0)
    assert again.prompt_id == "a" and again.attempts == 1
