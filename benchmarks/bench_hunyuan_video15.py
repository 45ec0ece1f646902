"""HunyuanVideo 1.5 text-to-video: engine time vs diffusers' HunyuanVideo15Pipeline on the same tiny
model (goal: overhead ≤ 5 %), and the latents' largest difference.

Ours: the 720p text-to-video template's graph (split loaders → text encodes → ModelSamplingSD3 →
SamplerCustomAdvanced euler/simple with CFGGuider cfg 6 → VAE Decode → Create Video → Save Video)
through ``Engine.run`` on tiny random weights saved as ComfyUI's files, a new seed each run
(sampling, decoding and saving re-run; loaders and prompt encodings come from the engine cache,
as in real use). Anchor: ``HunyuanVideo15Pipeline`` on the very same modules and sigmas, given our
prompt encodings, decoding and writing the frames as an H.264 MP4 with PyAV, in the same process.
Runs alternate; best and median. For text-to-video the pipeline attends over 729 masked-out zero
image tokens on every call (its SigLIP slot), where ComfyUI's model (and nodeloom's adapter) sends
none, so ours can come out faster than the anchor at tiny sizes.

    python benchmarks/bench_hunyuan_video15.py [--size 32] [--frames 9] [--steps 3] [--runs 2]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _timing import print_overhead  # noqa: E402


def _write_mp4(frames: object, path: Path, fps: int = 24) -> None:
    import av
    import numpy as np

    with av.open(str(path), "w") as box:
        stream = box.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1], frames.shape[2]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            box.mux(stream.encode(av.VideoFrame.from_ndarray((np.clip(frame, 0, 1) * 255).astype("uint8"), format="rgb24")))
        box.mux(stream.encode())


def _pipeline(parts: dict, steps: int) -> object:
    from diffusers import FlowMatchEulerDiscreteScheduler, HunyuanVideo15Pipeline
    from diffusers.guiders import ClassifierFreeGuidance
    from transformers import ByT5Tokenizer

    from nodeloom.diffusion.flow import FlowSampling
    from nodeloom.diffusion.schedules import calculate_sigmas

    sigmas = calculate_sigmas(FlowSampling(shift=7.0, multiplier=1000.0), "simple", steps)[:-1].tolist()
    sched = FlowMatchEulerDiscreteScheduler(shift=1.0)
    plain = sched.set_timesteps

    def ours(num_inference_steps=None, device=None, sigmas=None, **kw):  # noqa: ANN001, ANN003 (the pipeline's call)
        plain(sigmas=fixed, device=device)

    fixed = sigmas
    sched.set_timesteps = ours
    pipe = HunyuanVideo15Pipeline(text_encoder=parts["text_encoder"], tokenizer=parts["tokenizer"],
                                  transformer=parts["t2v"], vae=parts["vae"], scheduler=sched,
                                  text_encoder_2=parts["byt5"], tokenizer_2=ByT5Tokenizer(),
                                  guider=ClassifierFreeGuidance(guidance_scale=6.0))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _embeds(clip: object, text: str, pre: str = "") -> dict[str, torch.Tensor]:
    states, _ = clip.encode(text)
    glyph = clip.glyph_states(text)
    mask2 = torch.ones(1, glyph.shape[1], dtype=torch.int64) if glyph is not None else torch.zeros(1, 1, dtype=torch.int64)
    glyph = glyph if glyph is not None else torch.zeros(1, 1, 16)
    return {f"{pre}prompt_embeds": states, f"{pre}prompt_embeds_mask": torch.ones(1, states.shape[1], dtype=torch.int64),
            f"{pre}prompt_embeds_2": glyph, f"{pre}prompt_embeds_mask_2": mask2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    from nodeloom import Engine
    from nodeloom.diffusion.families.hunyuan_video15 import LATENT_SCALE
    from nodeloom.diffusion.split_models import load_text_encoders
    from nodeloom.testing.tiny_hunyuan_video15 import HV15_T2V_WORKFLOW, build_tiny_hunyuan_video15

    root = Path(tempfile.mkdtemp(prefix="nl-bench-hv15-"))
    models = root / "models"
    parts = build_tiny_hunyuan_video15(models)
    prompt = copy.deepcopy(HV15_T2V_WORKFLOW)
    prompt["124"]["inputs"].update(width=args.size, height=args.size, length=args.frames)
    prompt["128"]["inputs"]["steps"] = args.steps
    enc = models / "text_encoders"
    clip = load_text_encoders([enc / "tiny_qwen_2.5_vl_7b.safetensors", enc / "tiny_byt5_small_glyphxl.safetensors"],
                              "hunyuan_video_15", [models / "tokenizers"])
    embeds = {**_embeds(clip, prompt["44"]["inputs"]["text"]), **_embeds(clip, "", "negative_")}
    pipe = _pipeline(parts, args.steps)
    engine = Engine(base_dir=root / "engine", models_dir=models, load_custom_nodes=False)
    result = engine.run(prompt)
    assert result.status == "success", result.errors
    theirs = pipe(**embeds, height=args.size, width=args.size, num_frames=args.frames, num_inference_steps=args.steps,
                  output_type="latent", generator=torch.Generator().manual_seed(7)).frames
    delta = (result.value("127")["samples"] * LATENT_SCALE - theirs).abs().max().item()
    print(f"latents max |ours - HunyuanVideo15Pipeline| = {delta:.2e} (seed 7, {args.steps} steps, {args.size}²×{args.frames})")
    ours, anchor = [], []
    for i in range(args.runs):
        prompt["129"]["inputs"]["noise_seed"] = 1000 + i
        t0 = time.perf_counter()
        assert engine.run(prompt).status == "success"
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        frames = pipe(**embeds, height=args.size, width=args.size, num_frames=args.frames,
                      num_inference_steps=args.steps, output_type="np",
                      generator=torch.Generator().manual_seed(1000 + i)).frames[0]
        _write_mp4(frames, root / f"anchor_{i}.mp4")
        anchor.append(time.perf_counter() - t0)
    print_overhead(ours, anchor, "Engine.run, template graph", "HunyuanVideo15Pipeline + PyAV")


if __name__ == "__main__":
    main()
