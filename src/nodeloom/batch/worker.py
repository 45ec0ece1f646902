"""Run one collated sub-batch through a warm :class:`~nodeloom.engine.Engine`; report per item.

Used as is by the local backend and inside each Ray actor, so both produce the same
outcomes. The engine writes into a private staging folder that is emptied before each run;
the outcome lists the files each item produced there (the driver moves or receives them).
No journal, no DataLoader here.
"""

from __future__ import annotations

import concurrent.futures
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodeloom.batch.binding import BatchPlan
from nodeloom.errors import NodeloomError, ValidationError
from nodeloom.batch_items import item_store

if TYPE_CHECKING:
    from nodeloom.engine import Engine

__all__ = ["FILE_KEYS", "BatchWorker", "failed_outcome", "read_files"]

FILE_KEYS = ("images", "gifs", "videos", "audio", "files", "animated")


def failed_outcome(index: int, item_id: str, reason: str, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    """The outcome of an item that did not run to success."""
    return {"index": index, "id": item_id, "status": "failed", "reason": reason, "files": [], "scores": {},
            "metrics": metrics or {}}


def _run_metrics(result: Any, prompt: dict[str, Any], batch_size: int) -> dict[str, Any]:
    nodes = {}
    for nid, run in sorted(result.node_runs.items()):
        nodes[nid] = {"class_type": (prompt.get(nid) or {}).get("class_type"), "cached": run["cached"],
                      "wall_s": round(run["wall_s"], 6), "bytes_in": run["bytes_in"], "bytes_out": run["bytes_out"],
                      "bandwidth_gbps": None if run.get("bandwidth_gbps") is None else round(run["bandwidth_gbps"], 4)}
    return {"batch_size": batch_size, "run_wall_s": round(result.wall_s, 6), "nodes": nodes}


def _error_reason(result: Any) -> str:
    if not result.errors:
        return f"run ended with status {result.status}"
    err = result.errors[0]
    return f"node {err.get('node_id')} ({err.get('node_type')}): {str(err.get('exception_message', '')).strip()}"


def _validation_reason(exc: NodeloomError) -> str:
    """The message plus each node error, e.g. ``... node 2 (ImageScale): Value -3 smaller than min (width)``."""
    parts = [exc.message]
    node_errors = exc.node_errors if isinstance(exc, ValidationError) else {}
    for nid, entry in node_errors.items():
        for err in entry.get("errors", []):
            details = f" ({err['details']})" if err.get("details") else ""
            parts.append(f"node {nid} ({entry.get('class_type')}): {err.get('message')}{details}")
    return "; ".join(parts)


def _split(values: list[Any], n: int, what: str, *, shared: bool = True) -> list[list[Any]]:
    """Share ``values`` among ``n`` items: one each, equal runs each, or (when ``shared``) all to each."""
    if len(values) == n:
        return [[v] for v in values]
    if n and values and len(values) % n == 0:
        per = len(values) // n
        return [values[k * per : (k + 1) * per] for k in range(n)]
    if n == 1 or (shared and len(values) == 1):
        return [list(values) for _ in range(n)]
    hint = "; score a per-image output (e.g. SCORES) or use --batch-size 1" if not shared else ""
    raise ValidationError(f"{what} produced {len(values)} value(s) for a run of {n} items{hint}")


class BatchWorker:
    """Runs sub-batches with one engine.

    Args:
        engine: a warm engine (models stay loaded across runs).
        plan: the prepared workflow.
        staging: the engine's output folder, emptied before each run.
    """

    def __init__(self, engine: Engine, plan: BatchPlan, staging: Path) -> None:
        self.engine = engine
        self.plan = plan
        self.staging = Path(staging)
        engine.paths.output_dir = self.staging
        self.store = item_store(engine.services)
        # Runs go through a helper thread: in the main thread, Python 3.11's asyncio.run checks
        # its SIGINT handler in a way that formats the repr of the run's result — every output
        # tensor printed as text, tens of milliseconds per image batch, for nothing.
        self._runner = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="nodeloom-batch-run")

    def close(self) -> None:
        """Stop the helper thread (the engine stays open: it belongs to the caller)."""
        self._runner.shutdown(wait=True)

    def _clear_staging(self) -> None:
        if self.staging.exists():
            shutil.rmtree(self.staging)
        self.staging.mkdir(parents=True)

    def run(self, sub: dict[str, Any]) -> list[dict[str, Any]]:
        """Run one sub-batch; returns one outcome per item, in the sub-batch's order.

        An outcome is ``{"index", "id", "status": "done"|"failed", "reason", "files":
        [{"node", "k", "src", "ext"}], "scores": {name: float|None}, "metrics"}``.
        """
        indices, ids = sub["indices"], sub["ids"]
        self._clear_staging()
        try:
            prompt = self.plan.prompt_for(sub)
            self.store.put(sub["key"], sub["fields"], mask=sub.get("mask"), ids=ids)
            result = self._runner.submit(self.engine.run, prompt, prompt_id=f"batch-{sub['key']}").result()
        except NodeloomError as exc:
            return [failed_outcome(i, d, _validation_reason(exc)) for i, d in zip(indices, ids)]
        finally:
            self.store.discard(sub["key"])
        metrics = _run_metrics(result, prompt, len(ids))
        if not result.ok:
            return [failed_outcome(i, d, _error_reason(result), metrics) for i, d in zip(indices, ids)]
        try:
            files = self._files(result.outputs, len(ids))
            scores = self._scores(result.outputs, len(ids))
        except ValidationError as exc:
            return [failed_outcome(i, d, exc.message, metrics) for i, d in zip(indices, ids)]
        return [{"index": i, "id": d, "status": "done", "reason": None, "files": files[k], "scores": scores[k],
                 "metrics": metrics} for k, (i, d) in enumerate(zip(indices, ids))]

    def _files(self, outputs: dict[str, Any], n: int) -> list[list[dict[str, Any]]]:
        per_item: list[list[dict[str, Any]]] = [[] for _ in range(n)]
        for nid in sorted(outputs):
            ui = outputs[nid] or {}
            for key in FILE_KEYS:
                entries = [e for e in ui.get(key) or [] if isinstance(e, dict) and e.get("type", "output") == "output"]
                if not entries:
                    continue
                shared = n > 1 and len(entries) < n  # e.g. one grid image for the whole run: each item gets a copy
                for k, share in enumerate(_split(entries, n, f"node {nid} `{key}`")):
                    for entry in share:
                        src = self.staging / (entry.get("subfolder") or "") / entry["filename"]
                        per_item[k].append({"node": nid, "k": len([f for f in per_item[k] if f["node"] == nid]),
                                            "src": str(src), "ext": Path(entry["filename"]).suffix, "shared": shared})
        return per_item

    def _scores(self, outputs: dict[str, Any], n: int) -> list[dict[str, float | None]]:
        per_item: list[dict[str, float | None]] = [{} for _ in range(n)]
        for nid in sorted(outputs):
            for entry in (outputs[nid] or {}).get("batch_scores") or []:
                # one number for several items (a batch mean) would rank them all alike: refused
                for k, share in enumerate(_split(list(entry["values"]), n, f"score `{entry['name']}`", shared=False)):
                    per_item[k][entry["name"]] = share[0] if len(share) == 1 else _mean(share)
        return per_item


def _mean(values: list[float | None]) -> float | None:
    real = [v for v in values if v is not None]
    return sum(real) / len(real) if real else None


def read_files(outcomes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace each file's staging path by its bytes (for outcomes that cross machines)."""
    for outcome in outcomes:
        for f in outcome["files"]:
            f["data"] = Path(f.pop("src")).read_bytes()
    return outcomes

