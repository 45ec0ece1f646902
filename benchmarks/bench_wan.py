"""Wan 2.1 text-to-video: engine overhead vs diffusers' WanPipeline (goal ≤ 5 %), and the peak memory
of decoding a clip whole vs in tiles streamed through time.

Overhead — ours: the Wan 2.1 text-to-video template's graph (split loaders → text encodes →
KSampler euler/simple, cfg 6 → VAE Decode → Create Video → Save Video) through ``Engine.run`` on
tiny random weights saved as ComfyUI's files, a new seed each run (sampling, decoding and saving
re-run; loaders and prompt encodings come from the engine cache, as in real use). Anchor:
``WanPipeline`` on the very same modules and sigmas (it encodes both prompts each run), then the
frames written as an H.264 MP4 with PyAV, in the same process. Runs alternate; best and median.

Memory — a Wan-2.1-shaped VAE (``--vae-dim`` channels at the first stage; the release has 96)
decodes a 33-frame latent at 256² in a fresh subprocess per mode: ``whole`` (``WanVae.decode``:
diffusers' decode, the whole clip's output gathered on the device) and ``temporal``
(``WanVae.decode_tiled`` with one spatial tile: streamed through time, each frame moved off the
device as it is decoded); the figure is the subprocess's peak RSS.

    python benchmarks/bench_wan.py [--size 64] [--frames 9] [--steps 10] [--runs 5] [--vae-dim 32]
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _timing import print_overhead  # noqa: E402


def _write_mp4(frames: object, path: Path, fps: int = 16) -> None:
    import av
    import numpy as np

    with av.open(str(path), "w") as box:
        stream = box.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1], frames.shape[2]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            box.mux(stream.encode(av.VideoFrame.from_ndarray((np.clip(frame, 0, 1) * 255).astype("uint8"), format="rgb24")))
        box.mux(stream.encode())


def overhead(args: argparse.Namespace) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline

    from nodeloom import Engine
    from nodeloom.diffusion.flow import FlowSampling
    from nodeloom.diffusion.schedules import calculate_sigmas
    from nodeloom.testing.tiny_wan import WAN21_T2V_WORKFLOW, build_tiny_wan

    root = Path(tempfile.mkdtemp(prefix="nl-bench-wan-"))
    parts = build_tiny_wan(root / "models")
    prompt = copy.deepcopy(WAN21_T2V_WORKFLOW)
    prompt["40"]["inputs"].update(width=args.size, height=args.size, length=args.frames)
    prompt["3"]["inputs"].update(steps=args.steps, sampler_name="euler")
    sigmas = calculate_sigmas(FlowSampling(shift=8.0, multiplier=1000.0), "simple", args.steps)[:-1].tolist()
    sched = FlowMatchEulerDiscreteScheduler(shift=1.0)
    plain = sched.set_timesteps
    sched.set_timesteps = lambda *a, device=None, **kw: plain(sigmas=sigmas, device=device)
    pipe = WanPipeline(tokenizer=parts["tokenizer"], text_encoder=parts["text_encoder"], vae=parts["vae"],
                       transformer=parts["t2v"], scheduler=sched)
    pipe.set_progress_bar_config(disable=True)
    engine = Engine(base_dir=root / "engine", models_dir=root / "models", load_custom_nodes=False)
    assert engine.run(prompt).status == "success"
    ours, anchor = [], []
    for i in range(args.runs):
        prompt["3"]["inputs"]["seed"] = 1000 + i
        t0 = time.perf_counter()
        result = engine.run(prompt)
        ours.append(time.perf_counter() - t0)
        assert result.status == "success", result.errors
        t0 = time.perf_counter()
        with torch.inference_mode():
            frames = pipe(prompt=prompt["6"]["inputs"]["text"], negative_prompt=prompt["7"]["inputs"]["text"],
                          height=args.size, width=args.size, num_frames=args.frames, num_inference_steps=args.steps,
                          guidance_scale=6.0, output_type="np", generator=torch.Generator().manual_seed(1000 + i)).frames[0]
        _write_mp4(frames, root / f"anchor_{i}.mp4")
        anchor.append(time.perf_counter() - t0)
    engine.close()
    print(f"tiny Wan 2.1 T2V {args.size}x{args.size}, {args.frames} frames, {args.steps} steps, {args.threads} thread(s),"
          f" {args.runs} runs each")
    print_overhead(ours, anchor, "Engine, template workflow", "diffusers WanPipeline")


def _decode_child(mode: str, dim: int, size: int, frames: int) -> None:
    from diffusers import AutoencoderKLWan

    from nodeloom.diffusion.wan_vae import WanVae

    torch.manual_seed(0)
    vae = WanVae(AutoencoderKLWan(base_dim=dim, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                  temperal_downsample=[False, True, True]).eval())
    latent = torch.randn(1, 16, (frames - 1) // 4 + 1, size // 8, size // 8)
    t0 = time.perf_counter()
    out = vae.decode(latent) if mode == "whole" else vae.decode_tiled(latent, tile=size // 8, overlap=0)
    took = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{mode:6s} decode of {tuple(out.shape)}: {took:.1f} s, peak RSS {peak:.0f} MiB")


def memory(args: argparse.Namespace) -> None:
    print(f"Wan-2.1-shaped VAE (first stage {args.vae_dim} channels), {args.mem_frames} frames at {args.mem_size}²:")
    for mode in ("whole", "temporal"):
        subprocess.run([sys.executable, __file__, "--child", mode, "--vae-dim", str(args.vae_dim), "--mem-size",
                        str(args.mem_size), "--mem-frames", str(args.mem_frames), "--threads", str(args.threads)],
                       check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=9)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--vae-dim", type=int, default=32)
    ap.add_argument("--mem-size", type=int, default=256)
    ap.add_argument("--mem-frames", type=int, default=33)
    ap.add_argument("--child", choices=["whole", "temporal"])
    ap.add_argument("--skip", choices=["overhead", "memory"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        _decode_child(args.child, args.vae_dim, args.mem_size, args.mem_frames)
        return
    if args.skip != "overhead":
        overhead(args)
    if args.skip != "memory":
        memory(args)


if __name__ == "__main__":
    main()
