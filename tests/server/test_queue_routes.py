"""Queue, history, interrupt and per-client isolation over the real HTTP/WS API."""

from __future__ import annotations

import time
import uuid

from tests.server.conftest import collect, open_ws, request, submit, wait_history
from tests.server.server_pack import save_prompt, slow_prompt


def _wait_running(base: str, pid: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(item[1] == pid for item in request(base, "GET", "/queue").json()["queue_running"]):
            return
        time.sleep(0.02)
    raise TimeoutError(f"{pid} never ran")


def test_queue_front_delete_clear(server):
    blocker = submit(server.url, slow_prompt(steps=50, seconds=3.0)).json()["prompt_id"]
    _wait_running(server.url, blocker)
    a = submit(server.url, save_prompt("a")).json()
    b = submit(server.url, save_prompt("b")).json()
    front = submit(server.url, save_prompt("f"), front=True).json()
    assert front["number"] < a["number"] < b["number"]
    queue = request(server.url, "GET", "/queue").json()
    assert [i[1] for i in queue["queue_running"]] == [blocker]
    assert [i[1] for i in queue["queue_pending"]] == [front["prompt_id"], a["prompt_id"], b["prompt_id"]]
    item = queue["queue_pending"][1]
    assert len(item) == 5 and item[2] == save_prompt("a") and item[4] == ["2"]
    assert request(server.url, "GET", "/prompt").json() == {"exec_info": {"queue_remaining": 4}}
    assert request(server.url, "POST", "/queue", {"delete": [a["prompt_id"]]}).status == 200
    assert [i[1] for i in request(server.url, "GET", "/queue").json()["queue_pending"]] == [front["prompt_id"], b["prompt_id"]]
    assert request(server.url, "POST", "/queue", {"clear": True}).status == 200
    assert request(server.url, "GET", "/queue").json()["queue_pending"] == []
    assert request(server.url, "POST", "/interrupt", {}).status == 200
    entry = wait_history(server.url, blocker)
    assert entry["status"]["status_str"] == "error"
    assert "execution_interrupted" in [m[0] for m in entry["status"]["messages"]]


def test_interrupt_targets_only_the_named_prompt(server):
    cid = uuid.uuid4().hex
    ws = open_ws(server.url, cid)
    pid = submit(server.url, slow_prompt(steps=40, seconds=2.0), cid).json()["prompt_id"]
    _wait_running(server.url, pid)
    assert request(server.url, "POST", "/interrupt", {"prompt_id": "someone-else"}).status == 200
    assert request(server.url, "POST", "/api/interrupt", {"prompt_id": pid}).status == 200
    events, _ = collect(ws, pid)
    interrupted = [d for t, d in events if t == "execution_interrupted"]
    assert interrupted and interrupted[0]["prompt_id"] == pid
    ws.close()


def test_history_paging_delete_clear(server):
    pids = [submit(server.url, save_prompt(f"h{i}")).json()["prompt_id"] for i in range(4)]
    for pid in pids:
        wait_history(server.url, pid)
    assert list(request(server.url, "GET", "/history").json()) == pids
    assert list(request(server.url, "GET", "/history?max_items=2").json()) == pids[2:]
    assert list(request(server.url, "GET", "/history?max_items=2&offset=1").json()) == pids[1:3]
    assert request(server.url, "GET", "/history?max_items=two").status == 400
    assert request(server.url, "GET", "/history/unknown").json() == {}
    request(server.url, "POST", "/history", {"delete": [pids[0]]})
    assert list(request(server.url, "GET", "/history").json()) == pids[1:]
    request(server.url, "POST", "/api/history", {"clear": True})
    assert request(server.url, "GET", "/history").json() == {}


def test_events_only_reach_the_submitting_client(server):
    a, b = open_ws(server.url, "client-a"), open_ws(server.url, "client-b")
    pa = submit(server.url, slow_prompt(steps=3, seconds=0.1, seed=1), "client-a").json()["prompt_id"]
    pb = submit(server.url, slow_prompt(steps=3, seconds=0.1, seed=2), "client-b").json()["prompt_id"]
    events_a, frames_a = collect(a, pa)
    events_b, frames_b = collect(b, pb)
    for events, own, other in ((events_a, pa, pb), (events_b, pb, pa)):
        ids = {d.get("prompt_id") for t, d in events if t != "status"}
        assert ids == {own}, (ids, other)
        assert {"execution_start", "progress", "progress_state", "executed"} <= {t for t, _ in events}
    assert frames_a and frames_b
    a.close()
    b.close()


def test_jobs_api(server):
    pid = submit(server.url, save_prompt("job")).json()["prompt_id"]
    wait_history(server.url, pid)
    listing = request(server.url, "GET", "/api/jobs?status=completed&limit=10&offset=0").json()
    assert listing["pagination"] == {"offset": 0, "limit": 10, "total": 1, "has_more": False}
    job = listing["jobs"][0]
    assert job["id"] == pid and job["status"] == "completed" and job["outputs_count"] == 1
    assert job["preview_output"]["nodeId"] == "2" and job["preview_output"]["mediaType"] == "images"
    detail = request(server.url, "GET", f"/api/jobs/{pid}").json()
    assert detail["workflow"]["prompt"] == save_prompt("job") and detail["outputs"]["2"]["images"]
    assets = request(server.url, "GET", f"/api/jobs/{pid}/assets").json()
    assert assets["assets"][0]["name"].startswith("job_") and assets["assets"][0]["preview_url"].startswith("/api/view?")
    assert request(server.url, "GET", "/api/jobs/nope").status == 404
    assert request(server.url, "GET", "/api/jobs?status=bogus").status == 400
    blocker = submit(server.url, slow_prompt(steps=50, seconds=3.0)).json()["prompt_id"]
    _wait_running(server.url, blocker)
    waiting = submit(server.url, save_prompt("w")).json()["prompt_id"]
    live = request(server.url, "GET", "/api/jobs?status=in_progress,pending").json()["jobs"]
    assert [(j["id"], j["status"]) for j in live] == [(blocker, "in_progress"), (waiting, "pending")]
    assert request(server.url, "POST", "/api/jobs/cancel", {"job_ids": [waiting]}).json() == {"cancelled": [waiting]}
    assert request(server.url, "POST", f"/api/jobs/{blocker}/cancel").status == 200
    assert wait_history(server.url, blocker)["status"]["status_str"] == "error"
    assert request(server.url, "GET", f"/api/jobs/{blocker}").json()["status"] == "cancelled"


def test_free_reaches_the_engine_between_prompts(server, engine, monkeypatch):
    calls = []
    monkeypatch.setattr(engine, "free", lambda **kw: calls.append(kw))
    assert request(server.url, "POST", "/free", {}).status == 200
    assert request(server.url, "POST", "/free", {"unload_models": True}).status == 200
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:
        time.sleep(0.05)
    assert calls == [{"unload_models": True, "free_memory": False}]
