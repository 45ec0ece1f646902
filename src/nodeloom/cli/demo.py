"""The ``demo`` command behind the README's quick start.

Starts ``nodeloom serve`` on a free loopback port in a child process, queues the embedded
default workflow over the ComfyUI HTTP API as any client would, follows its WebSocket
events and prints where each output went. On a terminal the server then keeps running, so
the graph editor link it prints works, until Ctrl-C; otherwise (or with ``--exit``) it stops.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

__all__ = ["add_demo_arguments", "demo_main", "keep_serving"]


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-dir", default=".", help="parent of input/ output/ ... (default .)")
    parser.add_argument("--workflow", default=None, help="API workflow to queue instead of the embedded default")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the run")
    parser.add_argument("--exit", action="store_true",
                        help="stop the server when the run ends (the default off a terminal; on a terminal the "
                             "server keeps running for the graph editor until Ctrl-C)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _wait_until_up(base: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited early with code {proc.returncode}")
        try:
            _get(base + "/system_stats")
            return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"the server did not answer within {timeout:.0f} s")


def demo_main(args: argparse.Namespace) -> int:
    """Serve, queue the default workflow, report outputs; returns the exit code."""
    import websocket

    from nodeloom.workflows import default_workflow

    prompt = json.loads(Path(args.workflow).read_text()) if args.workflow else default_workflow()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "nodeloom.cli.main", "serve", "--base-dir", args.base_dir, "--port", str(port), "--verbose", "WARNING"]
    print(f"demo: starting `nodeloom serve` on {base}", flush=True)
    proc = subprocess.Popen(cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        _wait_until_up(base, proc, 60)
        client_id = uuid.uuid4().hex
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws?clientId={client_id}", timeout=args.timeout)
        body = json.dumps({"prompt": prompt, "client_id": client_id}).encode()
        req = urllib.request.Request(base + "/prompt", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            prompt_id = json.loads(resp.read())["prompt_id"]
        print(f"demo: queued prompt {prompt_id}", flush=True)
        failed = _follow(ws, prompt_id, prompt)
        ws.close()
        history = _get(f"{base}/history/{prompt_id}")[prompt_id]
        out_dir = Path(args.base_dir).resolve() / "output"
        printed: set[Path] = set()
        for node_id, ui in history["outputs"].items():
            for key in ("images", "gifs", "videos"):
                for item in ui.get(key, []):
                    path = out_dir / item.get("subfolder", "") / item["filename"]
                    if item.get("type", "output") == "output" and path not in printed:
                        printed.add(path)
                        print(f"demo: node {node_id} ({prompt[node_id]['class_type']}) wrote {path}")
        status = history["status"]["status_str"]
        print(f"demo: {status}")
        keep_serving(proc, base, interactive=not args.exit and sys.stdin.isatty() and sys.stdout.isatty())
        return 0 if status == "success" and not failed else 1
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def keep_serving(proc: subprocess.Popen[bytes], base: str, *, interactive: bool) -> None:
    """On a terminal, leave the server up for the graph editor until Ctrl-C (or until it exits)."""
    if not interactive:
        return
    print(f"demo: the graph editor is at {base}/ (the run is in its queue history); press Ctrl-C to stop the server",
          flush=True)
    try:
        proc.wait()
    except KeyboardInterrupt:
        print("\ndemo: stopping the server", flush=True)


def _follow(ws: Any, prompt_id: str, prompt: dict[str, Any]) -> bool:
    failed = False
    while True:
        raw = ws.recv()
        if not isinstance(raw, str):
            continue
        msg = json.loads(raw)
        data = msg.get("data", {})
        if data.get("prompt_id") != prompt_id:
            continue
        if msg["type"] == "executing":
            if data["node"] is None:
                return failed
            node = prompt.get(data["node"], {})
            title = node.get("_meta", {}).get("title", node.get("class_type", data["node"]))
            print(f"demo:   running {data['node']} {title}", flush=True)
        elif msg["type"] == "execution_cached" and data.get("nodes"):
            print(f"demo:   cached {', '.join(data['nodes'])}", flush=True)
        elif msg["type"] == "execution_error":
            failed = True
            print(f"demo:   error in node {data['node_id']}: {data['exception_message']}", flush=True)
