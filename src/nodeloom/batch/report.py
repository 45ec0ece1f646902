"""The end-of-run aggregates: counts, score statistics, streaming Top-K, per-node metrics, plot.

Top-K streams the journal's scores through :class:`nodeloom.ops.topk.StreamingTopK` in
position order (O(K) memory, ties to the earlier item, so every backend ranks alike);
statistics and histograms come from SQL aggregates. The plot (score distribution and
throughput over time) is drawn with PIL. No engine here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nodeloom.batch.journal import Journal
from nodeloom.ops.topk import StreamingTopK

__all__ = ["draw_plot", "node_metrics", "streaming_top_k", "summarize", "write_markdown"]


def streaming_top_k(journal: Journal, k: int, largest: bool = True) -> list[dict[str, Any]]:
    """The ``k`` best scored items, best first: ``[{"rank", "index", "item", "score"}]``."""
    top = StreamingTopK(k, largest=largest)
    for rows in journal.scores():
        top.push([r[2] for r in rows], items=[(r[0], r[1]) for r in rows])
    _, scores, items = top.result()
    return [{"rank": r + 1, "index": it[0], "item": it[1], "score": float(s)}
            for r, (s, it) in enumerate(zip(scores.tolist(), items))]


def node_metrics(records: Any) -> dict[str, dict[str, Any]]:
    """Per-node totals over item records (each item carries 1/B of its run's metrics).

    Returns:
        ``{node_id: {class_type, runs, wall_s, bytes_in, bytes_out, bandwidth_gbps}}`` where
        ``bandwidth_gbps`` = (bytes in + out) / wall time of the node's uncached runs.
    """
    acc: dict[str, dict[str, Any]] = {}
    for rec in records:
        metrics = rec.get("metrics") or {}
        share = 1.0 / max(1, int(metrics.get("batch_size") or 1))
        for nid, m in (metrics.get("nodes") or {}).items():
            a = acc.setdefault(nid, {"class_type": m.get("class_type"), "runs": 0.0, "wall_s": 0.0,
                                     "bytes_in": 0.0, "bytes_out": 0.0})
            if m.get("cached"):
                continue
            a["runs"] += share
            a["wall_s"] += m["wall_s"] * share
            a["bytes_in"] += m["bytes_in"] * share
            a["bytes_out"] += m["bytes_out"] * share
    for a in acc.values():
        moved = a["bytes_in"] + a["bytes_out"]
        a["bandwidth_gbps"] = round(moved / a["wall_s"] / 1e9, 4) if a["wall_s"] > 0 else None
        a["runs"] = round(a["runs"], 3)
        a["wall_s"] = round(a["wall_s"], 6)
        a["bytes_in"], a["bytes_out"] = int(a["bytes_in"]), int(a["bytes_out"])
    return acc


def summarize(journal: Journal, *, out: Path, score_name: str | None, k: int, largest: bool,
              items_per_s: float, shard: tuple[int, int], positions: set[int] | None = None) -> dict[str, Any]:
    """The run summary written to ``summary.json`` and the manifest's last line.

    Counts cover ``positions`` (this shard's items; all when None); score statistics,
    Top-K and node metrics cover every item committed to this journal.
    """
    counts: dict[str, int] = {}
    for row in journal.items():
        if positions is None or row["idx"] in positions:
            counts[row["state"]] = counts.get(row["state"], 0) + 1
    total = sum(counts.values())
    stats = journal.score_stats() if score_name else None
    return {
        "type": "summary",
        "out": str(out),
        "shard": f"{shard[0]}/{shard[1]}",
        "total": total,
        "done": counts.get("done", 0),
        "failed": counts.get("failed", 0),
        "pending": counts.get("pending", 0) + counts.get("running", 0),
        "items_per_s": round(items_per_s, 4),
        "score": score_name,
        "score_stats": stats,
        "top_k": streaming_top_k(journal, k, largest) if score_name and k > 0 else [],
        "nodes": node_metrics(journal.records()),
    }


# --------------------------------------------------------------------------- plot

_W, _H, _PAD = 900, 380, 48


def _panel(draw: Any, box: tuple[int, int, int, int], bars: list[float], title: str, xlabels: tuple[str, str],
           ylabel: str, colour: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    draw.text((x0, y0 - 30), title, fill=(20, 20, 20))
    draw.line([(x0, y0), (x0, y1), (x1, y1)], fill=(60, 60, 60), width=1)
    top = max(bars) if bars and max(bars) > 0 else 1.0
    draw.text((x0 - 40, y0 - 6), f"{top:.3g}", fill=(60, 60, 60))
    draw.text((x0 - 12, y1 - 6), "0", fill=(60, 60, 60))
    draw.text((x0, y1 + 6), xlabels[0], fill=(60, 60, 60))
    draw.text((x1 - 7 * len(xlabels[1]), y1 + 6), xlabels[1], fill=(60, 60, 60))
    draw.text((x0 + (x1 - x0) // 2 - 3 * len(ylabel), y1 + 22), ylabel, fill=(60, 60, 60))
    if not bars:
        draw.text((x0 + 20, (y0 + y1) // 2), "no data", fill=(120, 120, 120))
        return
    width = (x1 - x0) / len(bars)
    for i, v in enumerate(bars):
        h = (y1 - y0) * v / top
        if h < 1:
            continue
        draw.rectangle([x0 + i * width + 1, y1 - h, x0 + (i + 1) * width - 1, y1 - 1], fill=colour)


def draw_plot(journal: Journal, path: Path, score_name: str | None, bins: int = 30) -> Path:
    """Draw the score histogram and the throughput over time into a PNG at ``path``."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (_W, _H), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    half = _W // 2
    stats = journal.score_stats() if score_name else None
    hist: list[float] = []
    lo = hi = 0.0
    if stats:
        lo, hi = float(stats["min"]), float(stats["max"])
        hist = [float(c) for c in journal.histogram("score", bins, lo, hi)]
    _panel(draw, (_PAD + 10, _PAD, half - 20, _H - _PAD), hist, f"score distribution ({score_name or 'no score'})",
           (f"{lo:.3g}", f"{hi:.3g}"), "score", (70, 110, 200))
    span = journal.finish_span()
    rate: list[float] = []
    seconds = 0.0
    if span:
        seconds = max(span[1] - span[0], 1e-3)
        counts = journal.histogram("finished", bins, span[0], span[0] + seconds)
        rate = [c / (seconds / bins) for c in counts]
    _panel(draw, (half + _PAD, _PAD, _W - 20, _H - _PAD), rate, "throughput (items/s)",
           ("0 s", f"{seconds:.3g} s"), "time since first item", (60, 160, 90))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def write_markdown(summary: dict[str, Any], path: Path, plot_name: str) -> Path:
    """A human-readable report: counts, score statistics, the Top-K table, per-node metrics, the plot."""
    lines = [f"# Batch summary ({summary['shard']})", "",
             f"{summary['done']} done, {summary['failed']} failed, {summary['pending']} pending of {summary['total']} "
             f"items; {summary['items_per_s']:.3g} items/s in the last run.", "", f"![score and throughput]({plot_name})", ""]
    stats = summary.get("score_stats")
    if stats:
        lines += [f"Score `{summary['score']}`: mean {stats['mean']:.6g}, std {stats['std']:.6g}, "
                  f"min {stats['min']:.6g}, max {stats['max']:.6g} over {stats['count']} items.", ""]
    if summary.get("top_k"):
        lines += ["| rank | item | score |", "|---:|---|---:|"]
        lines += [f"| {t['rank']} | {t['item']} | {t['score']:.6g} |" for t in summary["top_k"]]
        lines.append("")
    if summary.get("nodes"):
        lines += ["| node | type | runs | time s | bytes in | bytes out | GB/s |", "|---|---|---:|---:|---:|---:|---:|"]
        for nid, m in sorted(summary["nodes"].items()):
            bw = "" if m["bandwidth_gbps"] is None else f"{m['bandwidth_gbps']:.3g}"
            lines.append(f"| {nid} | {m['class_type']} | {m['runs']:g} | {m['wall_s']:.4g} | {m['bytes_in']} | "
                         f"{m['bytes_out']} | {bw} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
