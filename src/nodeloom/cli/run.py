"""``nodeloom run``: validate and run a workflow, drawing progress from the engine's events.

On a terminal a rich display shows overall node progress and the running node's steps;
otherwise one plain line per event goes to stderr. ``--json`` prints one JSON result on
stdout (outputs as file paths, per-node ran/cached and metrics, errors).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from nodeloom.core.events import Event
from nodeloom.core.graph_builder import is_link
from nodeloom.errors import NodeloomError, ValidationError
from nodeloom.workflows.files import print_validation_errors

if TYPE_CHECKING:
    from nodeloom.engine import Engine, RunResult

__all__ = ["PlainReporter", "RichReporter", "output_files", "output_texts", "result_payload", "run_command"]

_FILE_KEYS = ("images", "gifs", "videos", "audio", "files", "animated")


def _needed_nodes(prompt: dict[str, Any], outputs: list[str]) -> set[str]:
    needed: set[str] = set()
    stack = list(outputs)
    while stack:
        node_id = stack.pop()
        if node_id in needed or node_id not in prompt:
            continue
        needed.add(node_id)
        stack.extend(str(v[0]) for v in (prompt[node_id].get("inputs") or {}).values() if is_link(v))
    return needed


class PlainReporter:
    """One line per event on ``stream`` (progress lines only every 10 %)."""

    def __init__(self, prompt: dict[str, Any], stream: TextIO) -> None:
        self.prompt = prompt
        self.stream = stream
        self._lock = threading.Lock()
        self._last_pct: dict[str, int] = {}

    def _label(self, node_id: Any) -> str:
        node = self.prompt.get(str(node_id)) or {}
        title = (node.get("_meta") or {}).get("title") or node.get("class_type") or ""
        return f"{node_id} {title}".strip()

    def _line(self, text: str) -> None:
        with self._lock:
            print(text, file=self.stream, flush=True)

    def __call__(self, event: Event) -> None:
        data = event.data
        if event.type == "execution_cached" and data.get("nodes"):
            self._line(f"cached   {len(data['nodes'])} node(s): {', '.join(map(str, data['nodes']))}")
        elif event.type == "executing" and data.get("node") is not None:
            self._line(f"running  {self._label(data['node'])}")
        elif event.type == "progress":
            total = float(data.get("max") or 0) or 1.0
            pct = int(100 * float(data.get("value", 0)) / total)
            node = str(data.get("node"))
            if pct // 10 != self._last_pct.get(node, -1) // 10 or pct >= 100:
                self._last_pct[node] = pct
                self._line(f"progress {self._label(node)}: {min(pct, 100)}%")
        elif event.type == "execution_error":
            self._line(f"error    {self._label(data.get('node_id'))}: {data.get('exception_message', '').strip()}")
        elif event.type == "execution_interrupted":
            self._line("interrupted")

    def close(self) -> None:
        return None


class RichReporter(PlainReporter):
    """A live rich display: nodes done / to do, and the running node's step bar."""

    def __init__(self, prompt: dict[str, Any], outputs: list[str], stream: TextIO) -> None:
        super().__init__(prompt, stream)
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=Console(file=stream), transient=False,
        )
        self._seen: set[str] = set()
        self._total = len(_needed_nodes(prompt, outputs))
        self._overall = self._progress.add_task("workflow", total=self._total)
        self._steps = self._progress.add_task("", total=1, visible=False)
        self._progress.start()

    def _count(self, node_id: str) -> None:
        if node_id in self._seen:
            return
        self._seen.add(node_id)
        if len(self._seen) > self._total:  # expansion added nodes
            self._total = len(self._seen)
            self._progress.update(self._overall, total=self._total)
        self._progress.update(self._overall, completed=len(self._seen))

    def __call__(self, event: Event) -> None:
        data = event.data
        if event.type == "execution_cached":
            for node in data.get("nodes") or []:
                self._count(str(node))
        elif event.type == "executing" and data.get("node") is not None:
            self._count(str(data["node"]))
            self._progress.update(self._steps, description=self._label(data["node"]), completed=0, total=1, visible=False)
        elif event.type == "progress":
            self._progress.update(self._steps, description=self._label(data.get("node")), visible=True,
                                  completed=float(data.get("value", 0)), total=float(data.get("max") or 1))
        elif event.type in ("execution_error", "execution_interrupted"):
            self._progress.console.print(f"[red]{event.type}[/red] {data.get('exception_message', '')}".rstrip())

    def close(self) -> None:
        self._progress.update(self._steps, visible=False)
        self._progress.stop()


def output_files(engine: Engine, outputs: dict[str, Any]) -> dict[str, list[str]]:
    """File paths named by output nodes' UI data (``{filename, subfolder, type}`` entries)."""
    found: dict[str, list[str]] = {}
    for node_id, ui in outputs.items():
        paths = []
        for key in _FILE_KEYS:
            for item in (ui or {}).get(key) or []:
                if isinstance(item, dict) and "filename" in item:
                    try:
                        folder = engine.paths.directory(item.get("type", "output"))
                    except NodeloomError:
                        continue
                    path = str(Path(folder) / (item.get("subfolder") or "") / item["filename"])
                    if path not in paths:  # a file listed under two keys is still one file
                        paths.append(path)
        found[node_id] = paths
    return found


def output_texts(outputs: dict[str, Any]) -> dict[str, str]:
    """The text output nodes show (``ui["text"]``, e.g. Preview as Text), one string per node."""
    found = {}
    for node_id, ui in outputs.items():
        parts = (ui or {}).get("text")
        if isinstance(parts, (list, tuple)) and parts:
            found[node_id] = "\n".join(str(p) for p in parts)
    return found


def result_payload(engine: Engine, result: RunResult) -> dict[str, Any]:
    """The ``--json`` result of a finished run."""
    files = output_files(engine, result.outputs)
    nodes = {nid: {"ran": not r.get("cached", False), **r} for nid, r in result.node_runs.items()}
    return {
        "status": result.status,
        "prompt_id": result.prompt_id,
        "outputs": {nid: {"files": files.get(nid, []), "ui": ui} for nid, ui in result.outputs.items()},
        "nodes": nodes,
        "errors": result.errors,
        "node_errors": result.node_errors,
        "metrics": {
            "wall_s": result.wall_s,
            "nodes_ran": sum(1 for n in nodes.values() if n["ran"]),
            "nodes_cached": sum(1 for n in nodes.values() if not n["ran"]),
            "node_wall_s": sum(float(n.get("wall_s") or 0.0) for n in nodes.values()),
        },
    }


def _print_summary(engine: Engine, result: RunResult, stream: TextIO) -> None:
    files = output_files(engine, result.outputs)
    ran, cached = len(result.ran()), len(result.cached())
    print(f"{result.status}: {ran} node(s) ran, {cached} cached, {result.wall_s:.2f} s", file=stream)
    for node_id, paths in files.items():
        for path in paths:
            print(f"  {node_id}: {path}", file=stream)
    for node_id, text in output_texts(result.outputs).items():
        print(f"  {node_id} text: {text}", file=stream)
    for err in result.errors:
        print(f"  error in node {err.get('node_id')} ({err.get('node_type')}): {err.get('exception_message')}", file=stream)


def run_command(engine: Engine, args: argparse.Namespace, prompt: dict[str, Any], extra_data: dict[str, Any] | None = None) -> int:
    """Run ``prompt`` on ``engine`` as ``nodeloom run`` does; returns the exit code.

    Args:
        engine: the engine to run on.
        args: parsed ``run`` options (``json`` is read).
        prompt: the API-format prompt.
        extra_data: ComfyUI's ``extra_data`` (``extra_pnginfo`` for saved PNGs).
    """
    pnginfo = (extra_data or {}).get("extra_pnginfo")
    validation = engine.validate(prompt, workflow=pnginfo.get("workflow") if isinstance(pnginfo, dict) else None)
    if not validation.ok:
        if args.json:
            print(json.dumps({"status": "invalid", **validation.to_dict()}, default=str))
        else:
            print_validation_errors(validation.error, validation.node_errors, sys.stderr)
        return 1
    reporter: PlainReporter | None = None
    if not args.json:
        stream = sys.stderr
        reporter = (RichReporter(validation.prompt, validation.outputs_to_execute, stream)
                    if stream.isatty() else PlainReporter(validation.prompt, stream))
    # with --json, stdout carries the one JSON result: what nodes print goes to stderr
    quiet = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    try:
        with quiet:
            result = engine.run(prompt, validated=validation, on_event=reporter, extra_data=extra_data)
    except ValidationError as exc:  # raced with a change of files between validate and run
        print(f"nodeloom run: {exc}", file=sys.stderr)
        return 1
    finally:
        if reporter is not None:
            reporter.close()
    if args.json:
        print(json.dumps(result_payload(engine, result), default=str))
    else:
        _print_summary(engine, result, sys.stdout)
    return 0 if result.status == "success" else 1
