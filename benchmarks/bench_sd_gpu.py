"""SD 1.5-shaped random weights at 512×512, 20 euler steps: it/s ours (plain, CUDA-graph fast path) vs diffusers.

Self-contained: builds an SD 1.5-sized UNet/VAE/CLIP-L from their published configs with random
weights directly on the GPU in fp16 (nothing is downloaded), then times the denoising loop of
nodeloom's KSampler contract (plain, and with ``fast_path`` replaying a captured CUDA graph) and
of diffusers' ``StableDiffusionPipeline`` (same modules, same sigmas), CFG 8, batch 1. Also checks
that the fast path gives the same latents as the plain path. On a machine without CUDA it prints a
skip line and exits 0. Finishes in well under 5 minutes on an H200.

    python benchmarks/bench_sd_gpu.py [--steps 20] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=768, attention_head_dim=8)
SD15_VAE = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12, vocab_size=49408,
              max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)


def _build(device: torch.device) -> tuple:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    with device:
        unet = UNet2DConditionModel(**SD15_UNET).half().eval()
        vae = AutoencoderKL(**SD15_VAE).half().eval()
        text = CLIPTextModel(CLIPTextConfig(**CLIP_L)).half().eval()
    return unet, vae, text


def _cuda_time(fn) -> float:
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("SKIP bench_sd_gpu: no CUDA device on this machine (needs a GPU; nothing measured)")
        return
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    from nodeloom.diffusion.models import ClipModel, DiffusionModel
    from nodeloom.diffusion.sampling import sample
    from nodeloom.diffusion.schedules import ModelSampling, calculate_sigmas
    from nodeloom.diffusion.tokenizer import clip_tokenizer
    from nodeloom.models.manager import ModelManager

    dev = torch.device("cuda")
    unet, vae, text = _build(dev)
    mgr = ModelManager(device="cuda")
    clip = ClipModel((text,), "sd1")
    pos, pooled = clip.encode("a photo of an astronaut riding a horse", mgr)
    neg, npooled = clip.encode("", mgr)
    conds = ([[pos, {"pooled_output": pooled}]], [[neg, {"pooled_output": npooled}]])
    latent = {"samples": torch.zeros(1, 4, 64, 64)}
    plain = DiffusionModel(unet, "sd1", ModelSampling(), 0.18215, extra={})
    fast = plain.clone(fast_path=True, extra={})

    def ours(model):
        return sample(model, latent, seed=1, steps=args.steps, cfg=8.0, sampler_name="euler", scheduler="normal",
                      positive=conds[0], negative=conds[1], manager=mgr)

    sched = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="leading")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=clip_tokenizer(), unet=unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    sigmas = calculate_sigmas(ModelSampling(), "normal", args.steps).tolist()

    def anchor():
        with torch.inference_mode():
            pipe("a photo of an astronaut riding a horse", negative_prompt="", height=512, width=512, guidance_scale=8.0,
                 sigmas=sigmas, generator=torch.Generator().manual_seed(1), output_type="latent")

    with torch.inference_mode():
        ref, got = ours(plain)["samples"], ours(fast)["samples"]  # warm-up; the fast one captures its graph
    anchor()
    rows = {"diffusers pipeline": [], "ours plain": [], "ours fast path (CUDA graph)": []}
    for _ in range(args.runs):
        rows["diffusers pipeline"].append(_cuda_time(anchor))
        with torch.inference_mode():
            rows["ours plain"].append(_cuda_time(lambda: ours(plain)))
            rows["ours fast path (CUDA graph)"].append(_cuda_time(lambda: ours(fast)))
    print(f"SD1.5-shaped random weights, fp16, 512x512, {args.steps} euler steps, CFG 8, batch 1,"
          f" {torch.cuda.get_device_name()} (median of {args.runs})")
    base = args.steps / statistics.median(rows["diffusers pipeline"])
    for name, times in rows.items():
        its = args.steps / statistics.median(times)
        print(f"{name:30s} {its:7.2f} it/s  ({its / base:5.2f}x diffusers)")
    diff = (ref - got).abs().max().item()
    print(f"fast path vs plain latents: max |diff| = {diff:.2e} (same images: {'yes' if diff < 1e-2 else 'NO'})")


if __name__ == "__main__":
    main()
