"""The V3 fixture pack through a real ``nodeloom serve`` process on 127.0.0.1: object_info,
queued prompts over HTTP + WebSocket, history — with the same results as its V1 twin."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.compat.test_v3_api import AG, _graphs
from tests.compat.v3_packs import write_packs
from tests.server.conftest import collect, free_port, open_ws, request

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("v3_server")
    packs = write_packs(root / "custom_nodes")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + str(ROOT), "HF_HUB_OFFLINE": "1"}
    log = root / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "nodeloom", "serve", "--base-dir", str(root / "base"),
                                 "--port", str(port), "--custom-nodes", str(packs), "--cpu", "--verbose", "WARNING"],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if request(url, "GET", "/prompt").status == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("server did not come up")
        time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(30)


def _run(url: str, prompt: dict[str, Any]) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    client = uuid.uuid4().hex
    ws = open_ws(url, client)
    try:
        reply = request(url, "POST", "/prompt", {"prompt": prompt, "client_id": client})
        assert reply.status == 200, reply.json()
        prompt_id = reply.json()["prompt_id"]
        events, _ = collect(ws, prompt_id)
    finally:
        ws.close()
    return events, request(url, "GET", f"/history/{prompt_id}").json()[prompt_id]


def test_v3_object_info_over_http(server: str) -> None:
    everything = request(server, "GET", "/object_info").json()
    assert {"V3Scale", "V3Sum", "V1Scale"} <= set(everything)
    one = request(server, "GET", "/api/object_info/V3Sum").json()["V3Sum"]
    assert one == everything["V3Sum"]
    assert one["input_order"]["required"] == [f"value1{AG}", f"value2{AG}"]
    assert one["python_module"] == "custom_nodes.v3_pack" and one["experimental"] is True


def test_v3_and_v1_prompts_give_the_same_results_over_the_server(server: str) -> None:
    seen = {}
    for kind in ("V3", "V1"):
        events, history = _run(server, _graphs(kind))
        assert history["status"]["status_str"] == "success"
        executed = {d["node"]: d["output"] for t, d in events if t == "executed"}
        blocked = [d["exception_message"] for t, d in events if t == "execution_error"]
        seen[kind] = (executed, history["outputs"], blocked)
        assert any(t == "progress" and d["node"] in ("7", "13") for t, d in events)
    assert seen["V3"] == seen["V1"]
    executed, outputs, blocked = seen["V3"]
    assert executed == {"7": {"text": ["7|13|3"]}, "13": {"text": ["13|13|9.5"]}} == outputs
    assert blocked == ["Execution Blocked: the gate is closed"]


def test_v3_validation_errors_over_http(server: str) -> None:
    prompt = {"1": {"class_type": "V3Pick", "inputs": {"mode": "pow", "x": 1.0, "y": 1.0}},
              "2": {"class_type": "V3Show", "inputs": {"value": ["1", 0]}}}
    reply = request(server, "POST", "/prompt", {"prompt": prompt})
    assert reply.status == 400
    body = reply.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert [e["type"] for e in body["node_errors"]["1"]["errors"]] == ["value_not_in_list"]
