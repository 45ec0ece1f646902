"""Loopback load test of the HTTP/WebSocket server: 50 WebSocket clients submit 200 prompts.

Checks that every prompt completes and that each client receives only the events of its own
prompts, and prints the p50/p99 latency of ``POST /prompt`` and the wall time. The anchor is
ComfyUI itself, run the same way when ``COMFY_SRC`` (a ComfyUI checkout) and ``COMFY_VENV`` (a
virtual environment with its requirements) are set; the workload then uses nodes both servers
have (``EmptyImage`` → ``PreviewImage``).

    python benchmarks/bench_server_load.py [--clients 50] [--prompts 200] [--no-anchor]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import websocket

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def _post(url: str, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as r:
        payload = json.loads(r.read())
    return time.perf_counter() - t0, payload


def _wait_up(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            _get(url + "/prompt")
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("server did not start")


def make_prompt(nodes: set[str], client: int, k: int) -> dict[str, Any]:
    """A cheap, model-free prompt unique to (client, k), from nodes the server has."""
    if {"EmptyImage", "PreviewImage"} <= nodes:
        color = (client * 97 + k * 13) % 0xFFFFFF
        return {"1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": color}},
                "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    if {"SolidImage", "SaveTestImage"} <= nodes:
        return {"1": {"class_type": "SolidImage", "inputs": {"size": 16, "value": ((client * 4 + k) % 100) / 100}},
                "2": {"class_type": "SaveTestImage", "inputs": {"images": ["1", 0], "filename_prefix": f"load{client}"}}}
    raise RuntimeError("the server has neither EmptyImage+PreviewImage nor the test pack's nodes")


def _client(base: str, idx: int, n: int, nodes: set[str], out: dict[str, Any]) -> None:
    cid = uuid.uuid4().hex
    ws = websocket.create_connection(f"{base.replace('http', 'ws', 1)}/ws?clientId={cid}", timeout=180)
    ws.recv()
    mine, latencies, foreign = set(), [], []
    for k in range(n):
        dt, reply = _post(base + "/prompt", {"prompt": make_prompt(nodes, idx, k), "client_id": cid})
        latencies.append(dt)
        mine.add(reply["prompt_id"])
    done: set[str] = set()
    while done != mine:
        msg = ws.recv()
        if isinstance(msg, bytes):
            continue
        m = json.loads(msg)
        pid = m["data"].get("prompt_id") if isinstance(m.get("data"), dict) else None
        if pid is not None and pid not in mine:
            foreign.append(pid)
        if m["type"] == "executing" and m["data"].get("node") is None and pid in mine:
            done.add(pid)
    ws.close()
    out[cid] = {"latencies": latencies, "foreign": foreign, "done": len(done)}


def run_load(base: str, clients: int, prompts: int) -> dict[str, Any]:
    """Drive one server; returns latency percentiles, wall time and isolation counts."""
    nodes = set(_get(base + "/object_info"))
    per = [prompts // clients + (1 if i < prompts % clients else 0) for i in range(clients)]
    results: dict[str, Any] = {}
    threads = [threading.Thread(target=_client, args=(base, i, per[i], nodes, results)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    wall = time.perf_counter() - t0
    lat = sorted(x for r in results.values() for x in r["latencies"])
    return {
        "completed": sum(r["done"] for r in results.values()), "clients_ok": len(results),
        "foreign_events": sum(len(r["foreign"]) for r in results.values()),
        "p50_ms": 1000 * statistics.median(lat), "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
        "wall_s": wall,
    }


def start_ours(tmp: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + str(ROOT), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, str(ROOT / "tests" / "server" / "launch_server.py"), "--base-dir", str(tmp / "ours"),
           "--port", str(port), "--cpu", "--verbose", "WARNING"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_comfy(tmp: Path, port: int) -> subprocess.Popen | None:
    if not os.environ.get("COMFY_SRC") or not os.environ.get("COMFY_VENV"):
        return None
    src = Path(os.environ["COMFY_SRC"])
    py = Path(os.environ["COMFY_VENV"]) / "bin" / "python"
    if not (src / "main.py").is_file() or not py.is_file():
        return None
    cmd = [str(py), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
           "--output-directory", str(tmp / "comfy-out"), "--disable-all-custom-nodes"]
    return subprocess.Popen(cmd, cwd=src, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _row(name: str, r: dict[str, Any], prompts: int) -> str:
    return (f"{name:<10} completed {r['completed']}/{prompts}  foreign events {r['foreign_events']}  "
            f"POST /prompt p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms  wall {r['wall_s']:.1f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--no-anchor", action="store_true", help="skip the ComfyUI run")
    args = parser.parse_args()
    rows, ok = [], True
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        starters = [("nodeloom", start_ours)] + ([] if args.no_anchor else [("ComfyUI", start_comfy)])
        for name, start in starters:
            port = _free_port()
            proc = start(tmp, port)
            if proc is None:
                rows.append(f"{name:<10} (not run: set COMFY_SRC to a ComfyUI checkout and COMFY_VENV to its virtual environment)")
                continue
            try:
                _wait_up(f"http://127.0.0.1:{port}", proc)
                r = run_load(f"http://127.0.0.1:{port}", args.clients, args.prompts)
                ok &= r["completed"] == args.prompts and r["foreign_events"] == 0 and r["clients_ok"] == args.clients
                rows.append(_row(name, r, args.prompts))
            finally:
                proc.kill()
                proc.wait(30)
    print(f"server load: {args.clients} WebSocket clients, {args.prompts} prompts, loopback")
    for row in rows:
        print(row)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
