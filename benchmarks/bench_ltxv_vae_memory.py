"""Peak memory of decoding a 33-frame 256² clip with LTX-Video's VAE, with and without tiling in
time (tiny random VAE: 8–32 channels; CPU). Each way runs in its own process; the figure is the
process's peak resident memory above what it held before decoding.

    python benchmarks/bench_ltxv_vae_memory.py [--temporal-size 16] [--temporal-overlap 8]

Figures of 7 December 2026 (1 thread, two runs): the plain decode peaked 172 and 164 MiB above
the process's base, the temporally tiled one (16 frames, overlap 8) 144 and 127 MiB, taking about
twice as long. The tiny VAE's activations are small beside the decoded frames themselves, so the
saving is small here; on full-size VAEs (128–512 channels) the activations dominate.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

_CHILD = """
import resource, sys, time, torch
torch.set_num_threads(1)
from nodeloom.testing.tiny_ltx import _tiny_vae
from nodeloom.diffusion.ltxv_vae import LtxvVae
vae = LtxvVae(_tiny_vae(0))
latent = torch.randn(1, 128, 5, 8, 8)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if sys.argv[1] == "plain":
    out = vae.decode(latent)
else:
    out = vae.decode_tiled(latent, tile=64, overlap=8, temporal_size=int(sys.argv[2]), temporal_overlap=int(sys.argv[3]))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{sys.argv[1]:6} {tuple(out.shape)} peak +{(peak - base) // 1024} MiB, {time.perf_counter() - t0:.2f} s")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--temporal-size", type=int, default=16)
    ap.add_argument("--temporal-overlap", type=int, default=8)
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "HF_HUB_OFFLINE": "1"}
    for mode in ("plain", "tiled"):
        subprocess.run([sys.executable, "-c", _CHILD, mode, str(args.temporal_size), str(args.temporal_overlap)],
                       env=env, check=True)


if __name__ == "__main__":
    main()
