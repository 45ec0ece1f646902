"""Drive a batch run: plan the workflow, journal items, load with a DataLoader, commit results.

The driver owns the journal and the ``--out`` folder. Work goes to a backend — the local one
here (a ``torch.utils.data.DataLoader`` decoding in worker processes, the workflow running in
this process on one warm engine) or :mod:`nodeloom.batch.ray_backend`. For every finished
batch the driver moves each item's files to ``OUT/outputs/`` under names fixed by the item,
then commits the records to the journal in one transaction, then appends them to the
manifest. At the end the manifest is rewritten from the journal (one line per item, by
position, then a summary line), with ``summary.json`` and ``summary.png``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader

from nodeloom.batch.binding import BatchPlan, parse_bind, plan_workflow
from nodeloom.batch.collate import get_collate
from nodeloom.batch.dataset import BatchDataset, DecodeOptions, ItemRef, open_source
from nodeloom.batch.journal import Journal
from nodeloom.batch.progress import JsonProgress
from nodeloom.batch.report import draw_plot, summarize, write_markdown
from nodeloom.batch.sampler import ItemSampler, chunk_indices
from nodeloom.batch.worker import BatchWorker, failed_outcome
from nodeloom.errors import ValidationError
from nodeloom.ops.torch_threads import set_full_threads

if TYPE_CHECKING:
    from nodeloom.engine import Engine

__all__ = ["BatchOptions", "known_fields", "make_engine", "output_name", "prepare", "run_batch"]

_MEDIA_FIELDS = {"image", "path", "name", "id", "index", "frame"}


@dataclass
class BatchOptions:
    """Everything a batch run needs (the CLI fills it from its arguments)."""

    prompt: dict[str, Any]
    input: str
    out: Path
    binds: list[str] = field(default_factory=list)
    num_workers: int = 0
    batch_size: int = 1
    prefetch_factor: int = 2
    persistent_workers: bool = True
    shard: tuple[int, int] = (0, 1)
    shuffle: bool = False
    seed: int = 0
    retry_failed: bool = False
    top_k: int = 0
    score: str | None = None
    lowest: bool = False
    collate: str = "bucket"
    max_side: int | None = None
    resize: tuple[int, int] | None = None
    frame_step: int = 1
    image_column: str | None = None
    backend: str = "local"
    address: str | None = None
    engine: dict[str, Any] = field(default_factory=dict)


def known_fields(refs: list[ItemRef]) -> set[str]:
    """The fields items of this source carry."""
    fields = {"id", "index"}
    for ref in refs:
        fields.update(ref.row)
    if any(r.path is not None for r in refs):
        fields |= _MEDIA_FIELDS - ({"frame"} if all(r.kind == "row" for r in refs) else set())
    return fields


def _probe(refs: list[ItemRef], plan: BatchPlan) -> dict[str, Any]:
    """A stand-in sub-batch for validating the planned prompt (no pixels decoded)."""
    ref = next((r for r in refs if r.error is None), refs[0])
    values: dict[str, Any] = {"id": ref.id, "index": ref.index, **ref.row}
    if ref.path is not None:
        values.update(path=ref.path, name=Path(ref.path).stem, frame=ref.frame or 0)
    return {"key": "probe", "fields": {k: [values.get(k, "")] for k in plan.fields | set(values)}}


def _fingerprint(plan: BatchPlan, options: BatchOptions) -> str:
    data = {"prompt": plan.prompt, "scalar_binds": plan.scalar_binds, "input": options.input,
            "frame_step": options.frame_step, "image_column": options.image_column, "max_side": options.max_side,
            "resize": options.resize, "collate": options.collate, "score": options.score}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def output_name(index: int, item_id: str, node: str, k: int, ext: str) -> str:
    """The fixed file name of an item's ``k``-th file from ``node`` under ``OUT/outputs/``."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(item_id.replace("#", "_f")).with_suffix("").as_posix())[-80:]
    return f"{index:06d}-{slug.strip('_.') or 'item'}-{re.sub(r'[^A-Za-z0-9]+', '_', node)}-{k}{ext}"


class _Driver:
    """Commits outcomes: files into place, journal, manifest, progress."""

    def __init__(self, options: BatchOptions, plan: BatchPlan, journal: Journal, progress: JsonProgress) -> None:
        self.options, self.plan, self.journal, self.progress = options, plan, journal, progress
        self.outputs = options.out / "outputs"
        self.outputs.mkdir(parents=True, exist_ok=True)
        self.manifest = options.out / _shard_name("manifest", options.shard, ".jsonl")
        self.processed = 0

    def _place(self, outcome: dict[str, Any]) -> dict[str, list[str]]:
        placed: dict[str, list[str]] = {}
        for f in outcome["files"]:
            dest = self.outputs / output_name(outcome["index"], outcome["id"], f["node"], f["k"], f["ext"])
            if "src" in f:
                if f.get("shared"):  # other items of the run take the same file
                    tmp = dest.with_name(dest.name + ".part")
                    shutil.copyfile(f["src"], tmp)
                    os.replace(tmp, dest)
                else:
                    os.replace(f["src"], dest)
            else:
                tmp = dest.with_name(dest.name + ".part")
                tmp.write_bytes(f["data"])
                os.replace(tmp, dest)
            placed.setdefault(f["node"], []).append(dest.relative_to(self.options.out).as_posix())
        return placed

    def commit(self, outcomes: list[dict[str, Any]]) -> None:
        records = []
        for o in outcomes:
            records.append({"type": "item", "index": o["index"], "item": o["id"], "status": o["status"],
                            "reason": o["reason"], "outputs": self._place(o), "scores": o["scores"],
                            "metrics": o["metrics"]})
        self.journal.finish(records, self.plan.score_name)
        with self.manifest.open("a", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec, sort_keys=True) + "\n")
        self.processed += len(records)
        self.progress.items(records, self.plan.score_name)


def _shard_name(stem: str, shard: tuple[int, int], ext: str) -> str:
    return f"{stem}{ext}" if shard[1] == 1 else f"{stem}-{shard[0]}-of-{shard[1]}{ext}"


@contextlib.contextmanager
def _shard_lock(out: Path, shard: tuple[int, int]) -> Iterator[None]:
    """Hold an exclusive lock for this shard of ``out`` (released by the OS even after kill -9).

    Raises:
        ValidationError: another process is running the same shard into the same folder.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no guard
        yield
        return
    with (out / _shard_name(".lock", shard, "")).open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValidationError(f"another run of shard {shard[0]}/{shard[1]} is writing into `{out}`") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def make_engine(engine_options: dict[str, Any]) -> Any:
    from nodeloom.engine import Engine, EngineConfig

    return Engine(EngineConfig(**engine_options))


def _slot_names(engine: Engine) -> Any:
    def names(class_type: str) -> list[str]:
        cls = engine.registry.get(class_type)
        return list(getattr(cls, "RETURN_NAMES", ()) or getattr(cls, "RETURN_TYPES", ())) if cls is not None else []

    return names


def _check_inputs(prompt: dict[str, Any], plan: BatchPlan, engine: Engine) -> None:
    """Every ``--bind`` names an input its node declares (a typo would otherwise bind nothing)."""
    binds = [(n, i) for n, i, _ in plan.scalar_binds]
    binds += [(nid, inp) for nid, node in plan.prompt.items() if nid in prompt
              for inp, v in (node.get("inputs") or {}).items() if isinstance(v, list) and str(v[0]).startswith("batch.")]
    for nid, inp in binds:
        class_type = plan.prompt[nid].get("class_type", "")
        cls = engine.registry.get(class_type)
        if cls is None:
            continue  # validation names the unknown node type
        types = cls.INPUT_TYPES()
        declared = [name for section in ("required", "optional") for name in (types.get(section) or {})]
        if inp not in declared:
            raise ValidationError(f"`--bind {nid}.{inp}`: node {nid} ({class_type}) has no input `{inp}` "
                                  f"(its inputs: {', '.join(declared)})")


def prepare(options: BatchOptions, engine: Engine) -> tuple[list[ItemRef], BatchPlan]:
    """List the source, plan and validate the workflow.

    Raises:
        ValidationError: an empty source, an unknown field, or an invalid planned workflow.
    """
    refs = open_source(options.input, frame_step=options.frame_step, image_column=options.image_column)
    if not refs:
        raise ValidationError(f"`--input {options.input}` holds no items")
    media = any(r.path is not None for r in refs)
    plan = plan_workflow(options.prompt, [parse_bind(b) for b in options.binds], image_fields=("image",) if media else (),
                         score=options.score, slot_names=_slot_names(engine))
    _check_inputs(options.prompt, plan, engine)
    missing = plan.fields - known_fields(refs)
    if missing:
        raise ValidationError(f"items of `{options.input}` have no field(s) {sorted(missing)}; "
                              f"they have {sorted(known_fields(refs))}")
    if media and plan.scalar_binds and options.batch_size > 1:
        raise ValidationError("binding a non-image field needs --batch-size 1 (one item per run)")
    if options.top_k and not options.score:
        raise ValidationError("`--top-k` needs `--score NODE[.SLOT]`")
    result = engine.validate(plan.prompt_for(_probe(refs, plan)))
    if not result.ok or result.node_errors:
        raise ValidationError((result.error or {}).get("message") or "the workflow is invalid for this batch",
                              node_errors=result.node_errors)
    return refs, plan


def _local_batches(options: BatchOptions, engine: Engine, plan: BatchPlan, dataset: BatchDataset,
                   chunks: list[list[int]], journal: Journal) -> Iterator[list[dict[str, Any]]]:
    workers = max(0, options.num_workers)
    loader = DataLoader(
        dataset, batch_sampler=chunks, num_workers=workers, collate_fn=get_collate(options.collate),
        pin_memory=torch.cuda.is_available(), prefetch_factor=options.prefetch_factor if workers else None,
        persistent_workers=options.persistent_workers and workers > 0,
    )
    worker = BatchWorker(engine, plan, options.out / ".staging" / "local")
    threads = torch.get_num_threads()
    if workers:
        # decoding workers take cores: more intra-op threads here would only spin against them
        set_full_threads(max(1, min(threads, (os.cpu_count() or 1) - workers)))
    try:
        for chunk, loaded in zip(chunks, loader):
            journal.start(chunk)
            if loaded["failed"]:
                yield [failed_outcome(it["index"], it["id"], it["reason"]) for it in loaded["failed"]]
            for sub in loaded["batches"]:
                yield worker.run(sub)  # committed before the next run empties the staging folder
    finally:
        worker.close()
        set_full_threads(threads)


def run_batch(options: BatchOptions, progress: JsonProgress | None = None, engine: Engine | None = None) -> dict[str, Any]:
    """Run (or resume) a batch and write outputs, manifest, journal and summary under ``options.out``.

    Args:
        options: the run's options.
        progress: where progress goes (default: JSON lines on stdout).
        engine: an engine built from ``options.engine`` to reuse (closed by the caller);
            default: one is built and closed here.

    Returns:
        The summary (also the manifest's last line and ``summary.json``).

    Raises:
        ValidationError: bad options or an invalid workflow (nothing is run).
        MissingDependencyError: ``backend="ray"`` without Ray installed.
    """
    progress = progress or JsonProgress()
    options.out = Path(options.out)
    own = engine is None
    engine = make_engine({**options.engine}) if own else engine
    try:
        refs, plan = prepare(options, engine)
        journal = Journal(options.out / "journal.sqlite", _fingerprint(plan, options))
        try:
            with _shard_lock(options.out, options.shard):
                return _run(options, engine, refs, plan, journal, progress)
        finally:
            journal.close()
    finally:
        if own:
            engine.close()


def _run(options: BatchOptions, engine: Engine, refs: list[ItemRef], plan: BatchPlan, journal: Journal,
         progress: JsonProgress) -> dict[str, Any]:
    journal.register(refs)
    mine = ItemSampler(len(refs), shuffle=options.shuffle, seed=options.seed, shard=options.shard).order()
    journal.recover(mine)
    sampler = ItemSampler(len(refs), shuffle=options.shuffle, seed=options.seed, shard=options.shard,
                          allowed=journal.todo(retry_failed=options.retry_failed))
    chunks = chunk_indices(sampler.order(), options.batch_size)
    states = {row["idx"]: row["state"] for row in journal.items()}
    in_shard = set(mine)
    done = sum(1 for i in in_shard if states.get(i) == "done")
    failed = 0 if options.retry_failed else sum(1 for i in in_shard if states.get(i) == "failed")
    progress.start(len(mine), len(sampler), done, failed)
    driver = _Driver(options, plan, journal, progress)
    dataset = BatchDataset(refs, DecodeOptions(options.max_side, options.resize))
    t0 = time.perf_counter()
    try:
        if options.backend == "ray":
            from nodeloom.batch.ray_backend import ray_batches

            batches = ray_batches(options, plan, dataset, chunks, journal)
        elif options.backend == "local":
            batches = _local_batches(options, engine, plan, dataset, chunks, journal)
        else:
            raise ValidationError(f"`--backend` must be local or ray, got {options.backend!r}")
        for outcomes in batches:
            driver.commit(outcomes)
    finally:
        elapsed = time.perf_counter() - t0
        summary = _finish(options, plan, journal, in_shard, driver.processed / elapsed if elapsed > 0 else 0.0)
        progress.close(summary)
    return summary


def _finish(options: BatchOptions, plan: BatchPlan, journal: Journal, in_shard: set[int], rate: float) -> dict[str, Any]:
    summary = summarize(journal, out=options.out, score_name=plan.score_name, k=options.top_k,
                        largest=not options.lowest, items_per_s=rate, shard=options.shard, positions=in_shard)
    summary["options"] = {k: v for k, v in asdict(options).items() if k not in ("prompt", "engine", "out")}
    manifest = options.out / _shard_name("manifest", options.shard, ".jsonl")
    tmp = manifest.with_name(manifest.name + ".part")
    with tmp.open("w", encoding="utf-8") as fh:
        for rec in journal.records(in_shard):
            fh.write(json.dumps(rec, sort_keys=True) + "\n")
        fh.write(json.dumps(summary, sort_keys=True, default=str) + "\n")
    os.replace(tmp, manifest)
    (options.out / _shard_name("summary", options.shard, ".json")).write_text(
        json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    plot = draw_plot(journal, options.out / _shard_name("summary", options.shard, ".png"), plan.score_name)
    write_markdown(summary, options.out / _shard_name("summary", options.shard, ".md"), plot.name)
    return summary
