"""The Wan 2.1 / Qwen-Image VAE on images: the one-frame 2-D path vs diffusers' 3-D causal path.

Ours: ``WanVae`` as VAELoader gives it (the Qwen-Image VAE file loads as this value) encoding an
image and decoding a one-frame latent, its causal convolutions on the one-frame 2-D path. Anchor:
the very same module with its convolutions on diffusers' own ``WanCausalConv3d.forward`` (the
value before the fast path was shared), in the same process, runs alternating; best of N. Random
weights in a Wan-2.1-shaped VAE with ``--dim`` channels at the first stage (the release has 96).

    python benchmarks/bench_wan_vae_one_frame.py [--size 64] [--dim 16] [--runs 2]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _timing import best_times_interleaved, load_note  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    from diffusers import AutoencoderKLWan

    from nodeloom.diffusion.wan_vae import WanVae, use_one_frame_convs

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    plain = AutoencoderKLWan(base_dim=args.dim, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                             temperal_downsample=[False, True, True]).eval()
    fast = AutoencoderKLWan(base_dim=args.dim, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                            temperal_downsample=[False, True, True]).eval()
    fast.load_state_dict(plain.state_dict())
    use_one_frame_convs(fast)
    image = torch.rand(1, args.size, args.size, 3)
    latent = torch.randn(1, 16, args.size // 8, args.size // 8)
    ours, anchor = WanVae(fast), WanVae(plain)
    assert (ours.decode(latent) - anchor.decode(latent)).abs().max() <= 1e-4
    for what, run in (("encode", lambda v: v.encode(image)), ("decode", lambda v: v.decode(latent))):
        times = best_times_interleaved({"ours": lambda: run(ours), "anchor": lambda: run(anchor)}, repeat=args.runs)
        o, a = times["ours"], times["anchor"]
        print(f"{what} {args.size}² dim {args.dim}: ours (one-frame 2-D path) {o * 1000:.0f} ms | anchor"
              f" (diffusers' 3-D causal path) {a * 1000:.0f} ms | {a / o:.2f}x ({load_note()})")


if __name__ == "__main__":
    main()
