"""Run the same pack workflows on a reference ComfyUI and on ``nodeloom serve``, and compare.

    python tools/packs/side_by_side.py --comfy-src DIR --comfy-venv DIR --packs DIR [--pack NAME ...]
                                       [--workflows DIR] [--pythonpath DIR] [--json OUT]

Both servers start on loopback ports with their own temporary base folder whose
``custom_nodes`` links the chosen packs (all pack folders of ``--packs`` by default). Then:

* load status: each server's ``/object_info`` is read and its nodes counted by pack
  (``python_module`` ``custom_nodes.<pack>``);
* workflows: every ``*.json`` of ``--workflows`` (``{"about", "packs", "prompt"}``, an API prompt)
  whose packs loaded on both sides is queued on both; the outputs in ``/history`` are compared —
  text/number UI values exactly, images (fetched through ``/view``) pixel by pixel (max |diff| in
  0..255, 0 is equal).

``--pythonpath`` adds a folder to both servers' ``PYTHONPATH`` (packs' own requirements installed
with ``pip install --target``, so neither environment is changed). ComfyUI runs with ``--cpu``
and ``WAS_BLOCK_AUTO_INSTALL=1``; nodeloom refuses installs at import by default. Exit status 1
when a workflow ran on both and differed, or failed on one side only.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = Path(__file__).resolve().parent / "workflows"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 30) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback only
        return response.read()


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback only
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return {"error": json.loads(exc.read() or b"{}")}


class Server:
    """One server process on a loopback port, with its base folder and log."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.name, self.port, self.log = name, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log}")
            try:
                _get(self.url + "/object_info", timeout=5)
                return
            except OSError:
                time.sleep(1)
        raise RuntimeError(f"{self.name} did not answer within {timeout:.0f} s; see {self.log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def pack_nodes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for info in json.loads(_get(self.url + "/object_info", timeout=120)).values():
            module = str(info.get("python_module", ""))
            if module.startswith("custom_nodes."):
                pack = module.split(".", 1)[1].split(".")[0]
                counts[pack] = counts.get(pack, 0) + 1
        return counts

    def run(self, prompt: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
        queued = _post(self.url + "/prompt", {"prompt": prompt, "client_id": uuid.uuid4().hex})
        if "prompt_id" not in queued:
            return {"status": "rejected", "error": queued.get("error", queued)}
        pid = queued["prompt_id"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = json.loads(_get(f"{self.url}/history/{pid}")).get(pid)
            if entry and entry.get("status", {}).get("completed") is not None:
                status = entry["status"]
                ok = status.get("status_str") == "success"
                return {"status": "success" if ok else "error", "outputs": entry.get("outputs", {}),
                        "messages": [] if ok else status.get("messages", [])[-2:]}
            time.sleep(0.3)
        return {"status": "timeout"}

    def image(self, ref: dict[str, Any]) -> np.ndarray:
        query = urllib.parse.urlencode({k: ref.get(k, "") for k in ("filename", "subfolder", "type")})
        with Image.open(io.BytesIO(_get(f"{self.url}/view?{query}"))) as im:
            return np.asarray(im.convert("RGBA"), dtype=np.int16)


def compare_outputs(a: Server, out_a: dict[str, Any], b: Server, out_b: dict[str, Any]) -> list[str]:
    """Differences between two ``/history`` output dicts (empty: equal)."""
    problems = []
    for node in sorted(set(out_a) | set(out_b)):
        ui_a, ui_b = out_a.get(node, {}), out_b.get(node, {})
        for key in sorted(set(ui_a) | set(ui_b)):
            va, vb = ui_a.get(key), ui_b.get(key)
            if key == "images":
                if len(va or []) != len(vb or []):
                    problems.append(f"node {node}: {len(va or [])} vs {len(vb or [])} images")
                    continue
                for ra, rb in zip(va or [], vb or []):
                    ia, ib = a.image(ra), b.image(rb)
                    if ia.shape != ib.shape:
                        problems.append(f"node {node}: image {ia.shape} vs {ib.shape}")
                    elif (diff := int(np.abs(ia - ib).max())) > 0:
                        problems.append(f"node {node}: images differ by up to {diff}/255")
            elif va != vb:
                problems.append(f"node {node}.{key}: {va!r} vs {vb!r}")
    return problems


def _base(root: Path, name: str, packs: Path, chosen: list[str]) -> Path:
    base = root / name
    (base / "custom_nodes").mkdir(parents=True)
    for pack in chosen:
        (base / "custom_nodes" / pack).symlink_to((packs / pack).resolve(), target_is_directory=True)
    return base


def _env(extra_path: str | None, *front: str) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", WAS_BLOCK_AUTO_INSTALL="1")
    parts = [*front, *([extra_path] if extra_path else [])]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def start_servers(args: argparse.Namespace, root: Path, chosen: list[str]) -> tuple[Server, Server]:
    comfy_base = _base(root, "comfy", args.packs, chosen)
    ours_base = _base(root, "nodeloom", args.packs, chosen)
    comfy_port, ours_port = _free_port(), _free_port()
    comfy = Server("ComfyUI", [str(args.comfy_venv / "bin" / "python"), str(args.comfy_src / "main.py"), "--cpu",
                               "--listen", "127.0.0.1", "--port", str(comfy_port), "--base-directory", str(comfy_base),
                               "--disable-auto-launch"],
                   _env(args.pythonpath), comfy_port, root / "comfy.log")
    ours = Server("nodeloom", [sys.executable, "-m", "nodeloom", "serve", "--cpu", "--port", str(ours_port),
                               "--base-dir", str(ours_base)],
                  _env(args.pythonpath, str(ROOT / "src")), ours_port, root / "nodeloom.log")
    return comfy, ours


def run_workflows(comfy: Server, ours: Server, loaded: set[str], folder: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(folder.glob("*.json")):
        spec = json.loads(path.read_text())
        row: dict[str, Any] = {"workflow": path.stem, "about": spec.get("about", "")}
        missing = [p for p in spec["packs"] if p not in loaded]
        if missing:
            rows.append(row | {"result": "skipped", "why": f"not loaded on both: {', '.join(missing)}"})
            continue
        t0 = time.perf_counter()
        ra = comfy.run(spec["prompt"])
        t1 = time.perf_counter()
        rb = ours.run(spec["prompt"])
        t2 = time.perf_counter()
        row |= {"comfy_s": round(t1 - t0, 2), "nodeloom_s": round(t2 - t1, 2)}
        if ra["status"] != "success" or rb["status"] != "success":
            same = ra["status"] == rb["status"]
            rows.append(row | {"result": "both failed" if same else "differs",
                               "why": f"ComfyUI {ra['status']} {ra.get('messages') or ra.get('error') or ''}; "
                                      f"nodeloom {rb['status']} {rb.get('messages') or rb.get('error') or ''}"[:600]})
            continue
        problems = compare_outputs(comfy, ra["outputs"], ours, rb["outputs"])
        compared = sum(len(v) for v in ra["outputs"].values())
        rows.append(row | {"result": "equal" if not problems else "differs", "outputs": compared,
                           "why": "; ".join(problems)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfy-src", type=Path, default=os.environ.get("COMFY_SRC"), help="ComfyUI tree ($COMFY_SRC)")
    parser.add_argument("--comfy-venv", type=Path, default=os.environ.get("COMFY_VENV"),
                        help="its virtual environment ($COMFY_VENV)")
    parser.add_argument("--packs", type=Path, default=os.environ.get("NODELOOM_PACKS_DIR"),
                        help="folder holding the pack folders ($NODELOOM_PACKS_DIR)")
    parser.add_argument("--pack", action="append", default=[], help="a pack folder name (repeatable; default all)")
    parser.add_argument("--workflows", type=Path, default=WORKFLOWS, help="folder of workflow specs")
    parser.add_argument("--pythonpath", default=os.environ.get("NODELOOM_PACK_DEPS"),
                        help="extra PYTHONPATH for both servers ($NODELOOM_PACK_DEPS)")
    parser.add_argument("--json", type=Path, help="write the report here too")
    args = parser.parse_args(argv)
    if not (args.comfy_src and args.comfy_venv and args.packs):
        parser.error("needs --comfy-src, --comfy-venv and --packs (or $COMFY_SRC, $COMFY_VENV, $NODELOOM_PACKS_DIR)")
    chosen = args.pack or sorted(p.name for p in args.packs.iterdir() if p.is_dir() and not p.name.startswith("."))
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as tmp:
        root = Path(tmp)
        comfy, ours = start_servers(args, root, chosen)
        try:
            comfy.wait()
            ours.wait()
            counts = {"ComfyUI": comfy.pack_nodes(), "nodeloom": ours.pack_nodes()}
            loaded = {p for p in chosen if counts["ComfyUI"].get(p) and counts["nodeloom"].get(p)}
            rows = run_workflows(comfy, ours, loaded, args.workflows)
        finally:
            comfy.stop()
            ours.stop()
    report = {"packs": {p: {"ComfyUI": counts["ComfyUI"].get(p, 0), "nodeloom": counts["nodeloom"].get(p, 0)}
                        for p in chosen}, "workflows": rows}
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    return 1 if any(r["result"] == "differs" for r in rows) else 0


def format_report(report: dict[str, Any]) -> str:
    """The report as two Markdown tables (packs' node counts, workflow results)."""
    lines = ["| pack | ComfyUI nodes | nodeloom nodes |", "|---|---|---|"]
    lines += [f"| {p} | {c['ComfyUI'] or 'fails'} | {c['nodeloom'] or 'fails'} |" for p, c in report["packs"].items()]
    lines += ["", "| workflow | result | ComfyUI s | nodeloom s | notes |", "|---|---|---|---|---|"]
    lines += [f"| {r['workflow']} | {r['result']} | {r.get('comfy_s', '')} | {r.get('nodeloom_s', '')} | "
              f"{r.get('why') or r.get('about', '')} |" for r in report["workflows"]]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
