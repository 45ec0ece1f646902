"""The KV-cache report: speed, per-token latency and memory of each cache mode.

For every mode it decodes the same random prompt greedily for a fixed number of tokens
(eos ignored), times each step, fits the per-token latency against position (flat with a
cache, growing without), measures the bytes the cache holds and checks them against
2 × layers × kv heads × head dim × bytes per element × tokens held. Also the ``nodeloom
bench kv`` command (:func:`register_cli`, :func:`run_kv_benchmark`). Must not import the engine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from nodeloom.errors import ValidationError
from nodeloom.text.decode import DecodeLoop
from nodeloom.text.kv_cache import CACHE_MODES, CacheSpec, cache_bytes, expected_cache_bytes, expected_held_tokens, kv_shape
from nodeloom.text.plot import line_chart

__all__ = ["ModeRun", "latency_slope", "measure_mode", "plot_latency", "kv_report", "register_cli", "run_kv_benchmark"]

#: what ``nodeloom bench kv --help`` tells a user
CLI_DESCRIPTION = (
    "Measure a local language model's decoding with each KV-cache mode: tokens per second, "
    "per-token latency against position, and the memory the cache holds checked against its "
    "formula. Without --model a small random model is built, so no download is needed."
)

#: the memory check passes when measured bytes are within this fraction of the formula
MEMORY_TOLERANCE = 0.10


@dataclass
class ModeRun:
    """One cache mode's measurements.

    Attributes:
        mode: the cache mode.
        tokens_per_s: new tokens / wall time of all steps (prefill included).
        decode_ms: per-token latency of each step after the prefill, in ms.
        slope_us_per_token: fitted growth of the latency per position, in µs.
        cache_bytes / expected_bytes: measured and formula bytes of the cache at the end.
        held_tokens: the tokens per layer the formula assumes.
        memory_ok: measured within :data:`MEMORY_TOLERANCE` of the formula (None where the
            formula does not apply: the group-quantized quanto/hqq layouts).
        tokens: the generated ids (to compare modes).
    """

    mode: str
    tokens_per_s: float
    decode_ms: list[float]
    slope_us_per_token: float
    cache_bytes: int
    expected_bytes: int
    held_tokens: int
    memory_ok: bool | None
    tokens: list[int]


def latency_slope(step_ms: list[float]) -> float:
    """Least-squares slope of latency (ms) against step index, in µs per token."""
    n = len(step_ms)
    if n < 2:
        return 0.0
    x = torch.arange(n, dtype=torch.float64)
    y = torch.tensor(step_ms, dtype=torch.float64)
    xm, ym = x.mean(), y.mean()
    slope = ((x - xm) * (y - ym)).sum() / ((x - xm) ** 2).sum()
    return float(slope) * 1000.0


def _element_bytes(spec: CacheSpec, dtype: torch.dtype) -> float:
    if spec.mode == "quantized-fp8":
        return 1.0
    if spec.quant_backend in ("quanto", "hqq"):
        return spec.nbits / 8
    return torch.empty((), dtype=dtype).element_size()


def measure_mode(model: Any, input_ids: torch.Tensor, new_tokens: int, spec: CacheSpec, repeats: int = 1) -> ModeRun:
    """Decode ``new_tokens`` greedily with cache ``spec`` and measure it (best of ``repeats``).

    Raises:
        ValidationError / MissingDependencyError: from the cache mode or the loop.
    """
    best: DecodeLoop | None = None
    for _ in range(max(1, repeats)):
        loop = DecodeLoop(model, input_ids, max_new_tokens=new_tokens, cache=spec)
        tokens = list(loop)
        if best is None or sum(loop.step_seconds) < sum(best.step_seconds):
            best, best_tokens = loop, tokens
    assert best is not None
    decode_ms = [s * 1000.0 for s in best.step_seconds[1:]]
    seen = input_ids.shape[1] + new_tokens - 1  # the last token is chosen, never fed
    held = expected_held_tokens(spec, model.config, seen, input_ids.shape[1] + new_tokens)
    dtype = next(model.parameters()).dtype
    expected = expected_cache_bytes(kv_shape(model.config), held, _element_bytes(spec, dtype))
    measured = cache_bytes(best.cache)
    ok: bool | None = abs(measured - expected) <= MEMORY_TOLERANCE * max(expected, 1)
    if spec.quant_backend in ("quanto", "hqq"):
        # group-wise backends add scales, zero points and a full-precision residual of up to
        # 128 tokens, which the per-element formula does not describe
        ok = None
    return ModeRun(
        mode=spec.mode, tokens_per_s=new_tokens / sum(best.step_seconds), decode_ms=decode_ms,
        slope_us_per_token=latency_slope(decode_ms), cache_bytes=measured, expected_bytes=expected,
        held_tokens=held, memory_ok=ok, tokens=best_tokens,
    )


def kv_report(
    model: Any,
    *,
    prompt_tokens: int = 32,
    new_tokens: int = 128,
    modes: tuple[str, ...] = ("none", "dynamic", "static"),
    window: int = 64,
    repeats: int = 1,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure each mode on a random prompt of ``prompt_tokens`` ids.

    ``progress`` (when given) receives one line before and after each mode's measurement.

    Returns:
        ``{"model": {...}, "prompt_tokens", "new_tokens", "runs": [ModeRun as dict], "speedup"}``
        where ``speedup`` is each mode's tokens/s over mode ``none`` (when measured).

    Raises:
        ValidationError: bad lengths or mode names.
    """
    if prompt_tokens < 1 or new_tokens < 2:
        raise ValidationError(f"`prompt_tokens` must be ≥ 1 and `new_tokens` ≥ 2, got {prompt_tokens} and {new_tokens}")
    vocab = int(model.config.vocab_size)
    gen = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, vocab, (1, prompt_tokens), generator=gen)
    runs = []
    for i, mode in enumerate(modes, 1):
        if progress:
            progress(f"kv: measuring cache mode `{mode}` ({i}/{len(modes)}): {new_tokens} new tokens × {repeats} run(s)")
        runs.append(measure_mode(model, input_ids, new_tokens, CacheSpec(mode, window=window), repeats))
        if progress:
            progress(f"kv:   `{mode}`: {runs[-1].tokens_per_s:.1f} tokens/s")
    base = next((r.tokens_per_s for r in runs if r.mode == "none"), None)
    shape = kv_shape(model.config)
    return {
        "model": {
            "class": type(model).__name__,
            "parameters": sum(p.numel() for p in model.parameters()),
            "layers": shape.layers, "kv_heads": shape.kv_heads, "head_dim": shape.head_dim,
            "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
            "device": str(next(model.parameters()).device),
        },
        "prompt_tokens": prompt_tokens,
        "new_tokens": new_tokens,
        "runs": [asdict(r) for r in runs],
        "speedup": {r.mode: r.tokens_per_s / base for r in runs} if base else {},
    }


def plot_latency(report: dict[str, Any], path: str | Path | None = None) -> Any:
    """Per-token latency against position for each mode; saved as PNG when ``path`` is given.

    Returns:
        The PIL image.
    """
    start = report["prompt_tokens"] + 1
    series = {r["mode"]: [(start + i, ms) for i, ms in enumerate(r["decode_ms"])] for r in report["runs"]}
    image = line_chart(
        series, title=f"per-token latency, {report['model']['class']} ({report['model']['parameters']:,} params)",
        x_label="sequence position (tokens)", y_label="ms / token",
    )
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
    return image


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else "yes" if ok else "NO"


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table of the report."""
    lines = [
        f"model: {report['model']['class']}, {report['model']['parameters']:,} parameters, "
        f"{report['model']['dtype']} on {report['model']['device']}; prompt {report['prompt_tokens']} + "
        f"{report['new_tokens']} new tokens",
        f"{'mode':<15}{'tok/s':>10}{'speedup':>9}{'slope µs/tok':>14}{'cache bytes':>13}{'formula':>11}{'mem ok':>8}",
    ]
    for r in report["runs"]:
        speed = report["speedup"].get(r["mode"])
        lines.append(
            f"{r['mode']:<15}{r['tokens_per_s']:>10.1f}{(f'{speed:.1f}x' if speed else '-'):>9}"
            f"{r['slope_us_per_token']:>14.2f}{r['cache_bytes']:>13,}{r['expected_bytes']:>11,}{_verdict(r['memory_ok']):>8}"
        )
    return "\n".join(lines)


def _bench_model(args: argparse.Namespace, workdir: Path) -> Any:
    from nodeloom.testing.tiny_lm import build_tiny_lm
    from nodeloom.text.llm import load_llm, resolve_device, resolve_dtype

    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    path = Path(args.model) if args.model else build_tiny_lm(
        workdir / "random-llama", "llama", hidden_size=args.hidden_size, num_layers=args.layers,
        num_heads=8, num_kv_heads=4, max_positions=4096,
    )
    return load_llm(path, device=device, dtype=dtype).model


def run_kv_benchmark(args: argparse.Namespace | dict[str, Any]) -> dict[str, Any]:
    """Run ``nodeloom bench kv``: measure, check memory, plot.

    Args:
        args: parsed arguments (or a dict of them) as defined by :func:`register_cli`.

    Returns:
        The :func:`kv_report` dict plus ``"plot"`` (the PNG path, or None).

    Raises:
        ValidationError: unknown modes or bad lengths.
    """
    ns = _namespace(args)
    modes = tuple(m.strip() for m in ns.modes.split(",") if m.strip())
    bad = [m for m in modes if m not in CACHE_MODES]
    if bad:
        raise ValidationError(f"`--modes` must name modes from {list(CACHE_MODES)}, got {bad}")
    if ns.threads > 0:
        torch.set_num_threads(ns.threads)
    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        progress(f"kv: loading {ns.model}" if ns.model else "kv: building a random model")
        model = _bench_model(ns, Path(tmp))
        report = kv_report(
            model, prompt_tokens=ns.prompt_tokens, new_tokens=ns.new_tokens, modes=modes,
            window=ns.window, repeats=ns.repeats, seed=ns.seed, progress=progress,
        )
    report["plot"] = str(Path(ns.plot).resolve()) if ns.plot else None
    if ns.plot:
        plot_latency(report, ns.plot)
    return report


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="local causal LM folder (default: a random ~4M-parameter Llama)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"])
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--modes", default="none,dynamic,static", help=f"comma list from {', '.join(CACHE_MODES)}")
    parser.add_argument("--window", type=int, default=64, help="window of the `sliding` mode")
    parser.add_argument("--repeats", type=int, default=1, help="keep the fastest of N runs per mode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden-size", type=int, default=256, help="random model width")
    parser.add_argument("--layers", type=int, default=6, help="random model depth")
    parser.add_argument("--plot", default="kv_latency.png", help="PNG to write ('' for none)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0 = torch's default)")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")


def _namespace(args: argparse.Namespace | dict[str, Any]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False)
    _add_arguments(parser)
    defaults = vars(parser.parse_args([]))
    given = args if isinstance(args, dict) else vars(args)
    defaults.update({k: v for k, v in given.items() if k in defaults})
    return argparse.Namespace(**defaults)


def _cli_main(args: argparse.Namespace) -> int:
    report = run_kv_benchmark(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
        if report["plot"]:
            print(f"plot: {report['plot']}")
    return 1 if any(r["memory_ok"] is False for r in report["runs"]) else 0


def register_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``kv`` to ``nodeloom bench``.

    Args:
        subparsers: the ``add_subparsers()`` action of the ``bench`` command; when given the
            top-level action instead, ``kv`` is added under its ``bench`` command (created
            if missing).

    Returns:
        The ``kv`` parser; its ``func`` default runs the benchmark and returns an exit code
        (1 when a measured cache size misses the formula).
    """
    if "bench" in subparsers.choices:
        bench = subparsers.choices["bench"]
        nested = next((a for a in bench._actions if isinstance(a, argparse._SubParsersAction)), None)
        subparsers = nested or bench.add_subparsers(dest="bench_command")
    parser = subparsers.add_parser("kv", help="KV-cache speed, latency and memory report", description=CLI_DESCRIPTION)
    _add_arguments(parser)
    parser.set_defaults(func=_cli_main)
    return parser
