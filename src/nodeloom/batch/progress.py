"""Progress of a batch run: a rich bar (items/s, ETA, failures) or JSON event lines.

JSON events, one object per line on stdout: ``start`` {total, todo, done, failed},
``item`` {index, id, status, reason, score, outputs}, ``progress`` {done, failed, total, items_per_s,
eta_s} after each committed batch, and ``summary`` (the run summary). No engine here.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

__all__ = ["JsonProgress", "RichProgress", "make_progress"]


class _Rate:
    """Items per second over this process's run, and the time left at that rate."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.processed = 0

    def items_per_s(self) -> float:
        dt = time.perf_counter() - self.t0
        return self.processed / dt if dt > 0 else 0.0

    def eta_s(self, remaining: int) -> float | None:
        rate = self.items_per_s()
        return remaining / rate if rate > 0 else None


class JsonProgress:
    """Machine-readable progress: one JSON object per line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.rate = _Rate()
        self.total = self.done = self.failed = 0

    def emit(self, event: str, **data: Any) -> None:
        print(json.dumps({"event": event, **data}, default=str), file=self.stream, flush=True)

    def start(self, total: int, todo: int, done: int, failed: int) -> None:
        self.total, self.done, self.failed = total, done, failed
        self.rate = _Rate()
        self.emit("start", total=total, todo=todo, done=done, failed=failed)

    def _count(self, rec: dict[str, Any]) -> bool:
        """Count one committed record; True when it failed."""
        self.rate.processed += 1
        failed = rec["status"] != "done"
        self.done += not failed
        self.failed += failed
        return failed

    def items(self, records: list[dict[str, Any]], score_name: str | None) -> None:
        for rec in records:
            self._count(rec)
            score = (rec.get("scores") or {}).get(score_name) if score_name else None
            self.emit("item", index=rec["index"], id=rec["item"], status=rec["status"], reason=rec.get("reason"),
                      score=score, outputs=rec.get("outputs") or {})
        remaining = max(0, self.total - self.done - self.failed)
        self.emit("progress", done=self.done, failed=self.failed, total=self.total,
                  items_per_s=round(self.rate.items_per_s(), 3), eta_s=self.rate.eta_s(remaining))

    def close(self, summary: dict[str, Any]) -> None:
        self.emit("summary", **summary)


class RichProgress(JsonProgress):
    """A live bar on stderr: done/total, items/s, ETA and failures."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream or sys.stderr)
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("batch"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:.2f} items/s"), TextColumn("ETA"), TimeRemainingColumn(),
            TextColumn("[red]{task.fields[failed]} failed[/red]"),
            console=Console(file=self.stream), transient=False,
        )
        self._task: Any = None

    def start(self, total: int, todo: int, done: int, failed: int) -> None:
        self.total, self.done, self.failed = total, done, failed
        self.rate = _Rate()
        self._task = self._bar.add_task("batch", total=total, completed=done + failed, rate=0.0, failed=failed)
        self._bar.start()

    def items(self, records: list[dict[str, Any]], score_name: str | None) -> None:
        for rec in records:
            if self._count(rec):
                self._bar.console.print(f"[red]failed[/red] {rec['item']}: {rec.get('reason')}")
        self._bar.update(self._task, completed=self.done + self.failed, rate=self.rate.items_per_s(), failed=self.failed)

    def close(self, summary: dict[str, Any]) -> None:
        self._bar.stop()
        stats = summary.get("score_stats")
        line = (f"{summary['done']} done, {summary['failed']} failed, {summary['pending']} pending of {summary['total']}"
                f" · {summary['items_per_s']:.2f} items/s · outputs in {summary['out']}")
        print(line, file=self.stream)
        if stats:
            print(f"score: mean {stats['mean']:.4g} ± {stats['std']:.4g} (min {stats['min']:.4g}, max {stats['max']:.4g})",
                  file=self.stream)
        top = summary.get("top_k") or []
        if top:
            shown = ", ".join(f"{t['item']} ({t['score']:.4g})" for t in top[:5])
            print(f"top {len(top)}: {shown}{' ...' if len(top) > 5 else ''}", file=self.stream)


def make_progress(json_lines: bool) -> JsonProgress:
    """JSON lines on stdout when ``json_lines``, else the rich bar on stderr."""
    return JsonProgress() if json_lines else RichProgress()
