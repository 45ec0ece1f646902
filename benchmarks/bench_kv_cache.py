"""KV cache: tokens/s with vs without the cache at 256 new tokens, and the latency slope.

Builds a random Llama-shaped model (≥ 3M parameters, nothing downloaded), decodes 256 new
tokens greedily with nodeloom's loop in cache modes none / dynamic / static, and times
transformers' own ``generate`` (use_cache on and off) on the same model and prompt as the
anchor. Prints tokens/s, the cache speed-up (goal ≥ 5×), the fitted per-token latency
slope (flat with a cache, growing without) and the cache bytes against the formula.

    PYTHONPATH=src python benchmarks/bench_kv_cache.py [--device cuda] [--prompt-tokens 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from nodeloom.testing.tiny_lm import build_tiny_lm
from nodeloom.text.kv_bench import format_report, kv_report, plot_latency
from nodeloom.text.llm import load_llm, resolve_device, resolve_dtype


def _hf_generate(model, input_ids, new_tokens: int, use_cache: bool) -> tuple[float, list[int]]:
    """transformers' generate, forced to produce exactly ``new_tokens`` (the anchor)."""
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(input_ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                             use_cache=use_cache, pad_token_id=model.config.eos_token_id)
    if input_ids.is_cuda:
        torch.cuda.synchronize()
    return new_tokens / (time.perf_counter() - start), out[0, input_ids.shape[1]:].tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--plot", default="", help="write the latency plot here (PNG)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (1 keeps timings stable on a shared machine; 0 = torch default)")
    args = parser.parse_args()

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_lm(Path(tmp) / "llama", "llama", hidden_size=args.hidden_size, num_layers=args.layers,
                             num_heads=8, num_kv_heads=4, max_positions=4096)
        model = load_llm(path, device=device, dtype=resolve_dtype(args.dtype, device)).model
    params = sum(p.numel() for p in model.parameters())
    assert params >= 3_000_000, f"the benchmark model must have ≥ 3M parameters, has {params:,}"

    # warm-up (allocator, kernels) so the first mode measured is not penalised
    kv_report(model, prompt_tokens=args.prompt_tokens, new_tokens=8, modes=("none", "dynamic", "static"))
    report = kv_report(model, prompt_tokens=args.prompt_tokens, new_tokens=args.new_tokens,
                       modes=("none", "dynamic", "static"))
    runs = {r["mode"]: r for r in report["runs"]}
    input_ids = torch.randint(0, model.config.vocab_size, (1, args.prompt_tokens),
                              generator=torch.Generator().manual_seed(0)).to(device)
    hf_cached, hf_tokens = _hf_generate(model, input_ids, args.new_tokens, True)
    hf_plain, _ = _hf_generate(model, input_ids, args.new_tokens, False)

    print(format_report(report))
    print()
    ours = runs["dynamic"]["tokens_per_s"] / runs["none"]["tokens_per_s"]
    anchor = hf_cached / hf_plain
    print(f"{'':<34}{'no cache tok/s':>16}{'cache tok/s':>13}{'speed-up':>10}")
    print(f"{'ours (DecodeLoop, dynamic)':<34}{runs['none']['tokens_per_s']:>16.1f}"
          f"{runs['dynamic']['tokens_per_s']:>13.1f}{ours:>9.1f}x")
    print(f"{'anchor (transformers generate)':<34}{hf_plain:>16.1f}{hf_cached:>13.1f}{anchor:>9.1f}x")
    print(f"goal: ≥ 5x with the cache at {args.new_tokens} new tokens -> {'met' if ours >= 5 else 'NOT met'}")
    print(f"latency slope µs/token: no cache {runs['none']['slope_us_per_token']:.2f} (growing), "
          f"dynamic {runs['dynamic']['slope_us_per_token']:.2f}, static {runs['static']['slope_us_per_token']:.2f} (flat)")
    print(f"greedy tokens identical to transformers generate: {runs['dynamic']['tokens'] == hf_tokens}")
    if args.plot:
        plot_latency(report, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
