"""FluxKVCache: one Flux.2 edit sampling run's transformer time with the reference keys kept vs computed each step.

Builds a random Flux.2 Klein-shaped transformer (nothing downloaded; width and depth set on the
command line), one image of ``--size``² latent tokens and one reference of the same size, and
times a run of ``--steps`` model calls through nodeloom's Flux.2 adapter three ways, taking turns:
the anchor is diffusers' own ``Flux2Transformer2DModel`` forward with the reference appended
(plain ``index``); ``timestep-zero`` is nodeloom's forward with the reference modulated at timestep
0 every step (FluxKontextMultiReferenceLatentMethod ``index_timestep_zero``); ``kv-cache`` is
FluxKVCache: the first call records the reference keys, the later ones run without the reference
tokens. Also prints how far the cached run's last velocity is from the uncached one.

    PYTHONPATH=src python benchmarks/bench_flux_kv_cache.py [--size 32] [--steps 4] [--width 384] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib

import torch
from _timing import best_times_interleaved, load_note

from nodeloom.diffusion.families.flux2 import _call_entry
from nodeloom.diffusion.reference_kv import ReferenceKVCache


def _transformer(width: int, double: int, single: int) -> torch.nn.Module:
    from diffusers import Flux2Transformer2DModel

    torch.manual_seed(0)
    head = 64
    return Flux2Transformer2DModel(in_channels=128, out_channels=128, num_layers=double, num_single_layers=single,
                                   attention_head_dim=head, num_attention_heads=width // head,
                                   joint_attention_dim=256, timestep_guidance_channels=256, mlp_ratio=3.0,
                                   axes_dims_rope=(16, 16, 16, 16), guidance_embeds=False).eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=32, help="latent tokens per side of the image and the reference")
    ap.add_argument("--steps", type=int, default=4, help="model calls per run (the KV template samples 4 steps)")
    ap.add_argument("--width", type=int, default=384, help="transformer width (64-wide heads)")
    ap.add_argument("--double", type=int, default=2, help="double-stream blocks")
    ap.add_argument("--single", type=int, default=4, help="single-stream blocks")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    module = _transformer(args.width, args.double, args.single)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 128, args.size, args.size, generator=g)
    ref = torch.randn(1, 128, args.size, args.size, generator=g)
    ctx = torch.randn(1, 64, 256, generator=g)
    sigmas = torch.linspace(1.0, 0.25, args.steps)
    last: dict[str, torch.Tensor] = {}

    def run(name: str, extra: dict, cached: bool) -> None:
        with torch.no_grad(), ReferenceKVCache().installed(module) if cached else contextlib.nullcontext():
            for s in sigmas:
                last[name] = _call_entry(module, x, s, ctx, extra)

    plain, zero = {"reference_latents": [ref]}, {"reference_latents": [ref], "reference_latents_method": "index_timestep_zero"}
    kv = {"reference_latents": [ref]}
    best = best_times_interleaved({"diffusers forward (index)": lambda: run("plain", plain, False),
                                   "timestep-zero, no cache": lambda: run("zero", zero, False),
                                   "kv-cache": lambda: run("kv", kv, True)}, repeat=args.repeat)
    tokens = args.size * args.size
    print(f"Flux.2 random transformer width {args.width}, {args.double}+{args.single} blocks; image {tokens} tokens"
          f" + reference {tokens} tokens + 64 text tokens; {args.steps} calls per run; {args.threads} threads; {load_note()}")
    anchor = best["diffusers forward (index)"]
    for name, t in best.items():
        print(f"{name:28s} {t * 1000:9.1f} ms per run  ({anchor / t:.2f}x the anchor)")
    diff = (last["kv"] - last["zero"]).abs().max() / last["zero"].abs().max()
    print(f"last call, kv-cache vs timestep-zero without cache: max |Δ| / max |v| = {diff:.4f}")


if __name__ == "__main__":
    main()
