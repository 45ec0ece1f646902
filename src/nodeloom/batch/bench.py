"""``nodeloom bench bandwidth``: memory copy/triad, disk read and host↔device figures.

Registered through ``nodeloom.cli.main.BENCH_PROVIDERS``; the measurements live in
:mod:`nodeloom.ops.bandwidth`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["format_rows", "register_cli"]


def format_rows(results: list[Any]) -> list[str]:
    """One aligned text row per result: name, size, best time, latency, raw and effective GB/s."""
    rows = [f"{'measure':<14} {'MiB moved':>9} {'best ms':>9} {'latency us':>11} {'raw GB/s':>9} {'eff GB/s':>9}  note"]
    for r in results:
        rows.append(f"{r.name:<14} {r.bytes / 2**20:>9.1f} {r.best_s * 1e3:>9.3f} {r.latency_s * 1e6:>11.1f} "
                    f"{r.raw_gbps:>9.2f} {r.effective_gbps:>9.2f}  {r.note}")
    return rows


def _main(args: argparse.Namespace) -> int:
    from nodeloom.errors import ValidationError
    from nodeloom.ops.bandwidth import run_all

    try:
        results = run_all(int(args.size_mb * 2**20), args.trials, args.dir, disk=not args.no_disk)
    except ValidationError as exc:
        print(f"nodeloom bench bandwidth: {exc.message}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([r.to_dict() for r in results]))
    else:
        print("\n".join(format_rows(results)))
    return 0


def register_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``bandwidth`` to ``nodeloom bench``; its ``func`` default runs it."""
    parser = subparsers.add_parser("bandwidth", help="memory copy/triad, disk read and host↔device bandwidth",
                                   description="Measure memory copy and triad bandwidth, disk read speed and "
                                               "host to device copies; the best of several trials counts.")
    parser.add_argument("--size-mb", type=float, default=256.0, help="bytes per array/file in MiB (default 256)")
    parser.add_argument("--trials", type=int, default=5, help="repetitions; the best time counts (default 5)")
    parser.add_argument("--dir", default=None, help="folder for the disk-read file (default: the temp folder)")
    parser.add_argument("--no-disk", action="store_true", help="skip the disk-read measurement")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(func=_main)
    return parser
