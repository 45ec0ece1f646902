"""fp8 weight storage on a Flux.1-shaped transformer: parameter memory and the time of one forward.

Ours: the file loaded through UNETLoader's loader with ``weight_dtype fp8_e4m3fn`` (Linear weights
kept fp8, each layer upcast while it computes). Anchor: the same file loaded with ``default``
(float32 weights), in the same process, forwards alternating; best of N. Random weights in a
Flux.1 transformer of ``--dim`` width (the release has 3072) and ``--blocks`` double + single
blocks, saved in diffusers' layout; one forward over ``--tokens`` image tokens and 64 text tokens.

    python benchmarks/bench_fp8_storage.py [--dim 256] [--blocks 2] [--tokens 256] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _timing import best_times_interleaved, load_note  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    from diffusers import FluxTransformer2DModel
    from safetensors.torch import save_file

    from nodeloom.diffusion.split_models import load_diffusion_model
    from nodeloom.models.offload import fp8_bytes

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    heads = args.dim // 64
    model = FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=args.blocks, num_single_layers=args.blocks,
                                   attention_head_dim=64, num_attention_heads=heads, joint_attention_dim=args.dim,
                                   pooled_projection_dim=64, guidance_embeds=True, axes_dims_rope=(16, 24, 24))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flux_shaped.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
        del model
        ours, _ = load_diffusion_model(path, "fp8_e4m3fn")
        anchor, _ = load_diffusion_model(path)
    n = args.tokens
    inputs = {"hidden_states": torch.randn(1, n, 64), "encoder_hidden_states": torch.randn(1, 64, args.dim),
              "pooled_projections": torch.randn(1, 64), "timestep": torch.tensor([0.5]), "guidance": torch.tensor([3.5]),
              "img_ids": torch.zeros(n, 3), "txt_ids": torch.zeros(64, 3), "return_dict": False}
    with torch.no_grad():
        a, b = ours(**inputs)[0], anchor(**inputs)[0]
        rel = float((a - b).abs().max() / b.abs().max())
        times = best_times_interleaved({"ours": lambda: ours(**inputs), "anchor": lambda: anchor(**inputs)},
                                       repeat=args.runs)
    fp8, total = fp8_bytes(ours)
    base = fp8_bytes(anchor)[1]
    print(f"parameters: ours (fp8 storage) {total / 2**20:.1f} MiB ({fp8 / 2**20:.1f} MiB fp8) | anchor (float32)"
          f" {base / 2**20:.1f} MiB | {base / total:.2f}x smaller")
    print(f"forward dim {args.dim}, {args.tokens} tokens: ours {times['ours'] * 1000:.0f} ms | anchor"
          f" {times['anchor'] * 1000:.0f} ms | {100 * (times['ours'] / times['anchor'] - 1):+.1f} %"
          f" | output max |Δ| {rel:.4f} of its largest value ({load_note()})")


if __name__ == "__main__":
    main()
