"""``nodeloom batch``: its arguments and its entry point (called lazily by ``nodeloom.cli.main``).

Exit codes: 0 every item of the shard is done, 1 some item failed or the workflow is
invalid, 2 bad options, 130 interrupted (the journal keeps what was committed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_batch_arguments", "batch_main", "engine_options"]


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``batch`` options (engine options are added by the caller)."""
    parser.add_argument("workflow", help="workflow file (API or UI JSON, or a PNG that embeds one)")
    parser.add_argument("--input", required=True, metavar="SOURCE",
                        help="a folder or glob of images/videos, a .csv/.jsonl file, or seeds:[START:]END[:STEP]")
    parser.add_argument("--bind", action="append", default=[], metavar="NODE.INPUT=FIELD",
                        help="feed an item field into a node input (image fields through a BatchInput node; repeatable)")
    parser.add_argument("--out", default=None, metavar="DIR", help="outputs, manifest and journal (default BASE/output/batch)")
    parser.add_argument("--num-workers", type=int, default=2, metavar="N",
                        help="DataLoader worker processes (0 = decode in this process); Ray actors with --backend ray")
    parser.add_argument("--batch-size", type=int, default=1, metavar="B", help="items per loader batch (default 1)")
    parser.add_argument("--prefetch-factor", type=int, default=2, metavar="F", help="batches loaded ahead per worker")
    parser.add_argument("--collate", choices=("bucket", "pad"), default="bucket",
                        help="bucket: one run per image size; pad: pad to the largest with a mask")
    parser.add_argument("--max-side", type=int, default=None, metavar="PX", help="shrink images to this longer side")
    parser.add_argument("--resize", default=None, metavar="WxH", help="scale and centre-crop images to this size")
    parser.add_argument("--frame-step", type=int, default=1, metavar="N", help="keep every N-th video frame")
    parser.add_argument("--image-column", default=None, metavar="COL",
                        help="for CSV/JSONL rows: the column with an image path (relative to the file's folder)")
    parser.add_argument("--shard", default="0/1", metavar="i/n", help="run shard i of n (default 0/1)")
    parser.add_argument("--shuffle", action="store_true", help="visit items in a seeded random order")
    parser.add_argument("--seed", type=int, default=0, help="the --shuffle seed")
    parser.add_argument("--retry-failed", action="store_true", help="run items that failed before again")
    parser.add_argument("--top-k", type=int, default=0, metavar="K", help="keep the K best items by --score")
    parser.add_argument("--score", default=None, metavar="NODE[.SLOT]", help="the node output that scores each item")
    parser.add_argument("--lowest", action="store_true", help="for --top-k, lower scores are better")
    parser.add_argument("--backend", choices=("local", "ray"), default="local")
    parser.add_argument("--address", default=None, metavar="auto|HOST:PORT", help="Ray cluster (default: start a local one)")
    parser.add_argument("--json", action="store_true", help="JSON event lines on stdout instead of the progress bar")


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """``EngineConfig`` keyword arguments from the shared engine options (picklable, for Ray)."""
    base = Path(args.base_dir)
    dirs = [str(Path(d).resolve()) for d in args.custom_nodes]
    if (base / "custom_nodes").is_dir() and str((base / "custom_nodes").resolve()) not in dirs:
        dirs.insert(0, str((base / "custom_nodes").resolve()))
    return {"base_dir": str(base.resolve()), "custom_nodes_dirs": dirs, "load_custom_nodes": not args.disable_all_custom_nodes,
            "extra_model_paths": [str(Path(p).resolve()) for p in args.extra_model_paths_config],
            "device": "cpu" if args.cpu else None}


def _options(args: argparse.Namespace, prompt: dict[str, Any]) -> Any:
    from nodeloom.batch.dataset import parse_size
    from nodeloom.batch.runner import BatchOptions
    from nodeloom.batch.sampler import parse_shard
    from nodeloom.errors import ValidationError

    for name in ("num_workers", "prefetch_factor", "top_k"):
        if getattr(args, name) < (1 if name == "prefetch_factor" else 0):
            raise ValidationError(f"`--{name.replace('_', '-')}` must be ≥ {1 if name == 'prefetch_factor' else 0}")
    out = Path(args.out) if args.out else Path(args.base_dir) / "output" / "batch"
    return BatchOptions(
        prompt=prompt, input=args.input, out=out.resolve(), binds=list(args.bind), num_workers=args.num_workers,
        batch_size=args.batch_size, prefetch_factor=args.prefetch_factor, shard=parse_shard(args.shard),
        shuffle=args.shuffle, seed=args.seed, retry_failed=args.retry_failed, top_k=args.top_k, score=args.score,
        lowest=args.lowest, collate=args.collate, max_side=args.max_side,
        resize=parse_size(args.resize) if args.resize else None, frame_step=args.frame_step,
        image_column=args.image_column, backend=args.backend, address=args.address, engine=engine_options(args))


def batch_main(args: argparse.Namespace) -> int:
    """Run ``nodeloom batch``; returns the exit code."""
    from nodeloom.batch.progress import make_progress
    from nodeloom.batch.runner import make_engine, run_batch
    from nodeloom.errors import NodeloomError, ValidationError
    from nodeloom.workflows.files import load_prompt, print_validation_errors

    engine = make_engine(engine_options(args))
    try:
        try:
            options = _options(args, load_prompt(engine, args.workflow))
        except ValidationError as exc:
            print(f"nodeloom batch: {exc.message}", file=sys.stderr)
            return 2
        summary = run_batch(options, make_progress(args.json), engine=engine)
    except ValidationError as exc:
        node_errors = exc.node_errors
        if args.json:
            print(json.dumps({"event": "error", "error": exc.to_dict(), "node_errors": node_errors}, default=str))
        else:
            print(f"nodeloom batch: {exc.message}", file=sys.stderr)
            print_validation_errors(None, node_errors, sys.stderr)
        return 1
    except NodeloomError as exc:  # a backend that cannot start (Ray missing or unreachable)
        if args.json:
            print(json.dumps({"event": "error", "error": exc.to_dict()}, default=str))
        else:
            print(f"nodeloom batch: {exc.message}" + (f"\n  {exc.details}" if exc.details else ""), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nodeloom batch: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        engine.close()
    return 0 if summary["done"] == summary["total"] else 1
