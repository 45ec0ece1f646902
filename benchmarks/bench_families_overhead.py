"""Engine overhead on today's families (tiny Z-Image Turbo, Flux.1 dev, SD3.5, Qwen-Image, Flux.2 Klein, Chroma, Lumina 2, HiDream) vs diffusers' pipelines (goal ≤ 5 %).

Ours: each family's template workflow (split loaders → text encode → KSampler euler/simple →
VAE Decode → Save Image) through ``Engine.run`` on tiny random weights saved as ComfyUI's files,
a new seed each run (sampling, decoding and saving re-run; loaders and prompt encodings come from
the engine cache, as in real use). Anchor: ``ZImagePipeline`` / ``FluxPipeline`` /
``StableDiffusion3Pipeline`` / ``QwenImagePipeline`` on the very same modules and sigmas, then a PNG
save, in the same process (Z-Image's pipeline encodes its prompt each run; Flux's, SD3's and
Qwen-Image's are handed the encoded prompts, so their anchors do strictly less work; Qwen-Image at
the template's cfg 2.5 with its empty negative prompt: two transformer calls a step on both sides;
the Flux.2 Klein, Chroma, Lumina 2 and HiDream cases are in ``_imgfam_anchors.py``). Runs alternate; the
best and the median run are reported.

    python benchmarks/bench_families_overhead.py [--size 128] [--steps 20] [--runs 7]
        [--families z_image,flux,sd3,qwen_image,flux2,chroma,lumina2,hidream]
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
from _imgfam_anchors import BUILDERS  # noqa: E402
from _timing import print_overhead  # noqa: E402
from diffusers import (  # noqa: E402
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    QwenImagePipeline,
    StableDiffusion3Pipeline,
    ZImagePipeline,
)

from nodeloom import Engine  # noqa: E402
from nodeloom.diffusion.flow import FlowSampling, FluxSampling, flux_resolution_shift  # noqa: E402
from nodeloom.diffusion.schedules import calculate_sigmas  # noqa: E402
from nodeloom.testing.tiny_families import (  # noqa: E402
    FLUX_DEV_WORKFLOW,
    ZIMAGE_TURBO_WORKFLOW,
    build_tiny_flux,
    build_tiny_zimage,
)
from nodeloom.testing.tiny_qwen import QWEN_IMAGE_WORKFLOW, build_tiny_qwen_image  # noqa: E402
from nodeloom.testing.tiny_sd3 import SD35_WORKFLOW, build_tiny_sd3  # noqa: E402


def _zimage(root: Path, size: int, steps: int) -> tuple:
    parts = build_tiny_zimage(root)
    prompt = copy.deepcopy(ZIMAGE_TURBO_WORKFLOW)
    prompt["7"]["inputs"].update(width=size, height=size)
    prompt["8"]["inputs"].update(steps=steps, sampler_name="euler")
    pipe = ZImagePipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=parts["vae"],
                          text_encoder=parts["text_encoder"], tokenizer=parts["tokenizer"],
                          transformer=parts["transformer"])
    pipe.set_progress_bar_config(disable=True)
    sigmas = calculate_sigmas(FlowSampling(shift=3.0, multiplier=1.0), "simple", steps)[:-1].tolist()
    text = prompt["5"]["inputs"]["text"]
    return prompt, "8", lambda seed: pipe(prompt=text, height=size, width=size, num_inference_steps=steps, sigmas=sigmas,
                                          guidance_scale=0.0, generator=torch.Generator().manual_seed(seed)).images[0]


def _flux(root: Path, size: int, steps: int, engine: Engine) -> tuple:
    parts = build_tiny_flux(root)
    prompt = copy.deepcopy(FLUX_DEV_WORKFLOW)
    prompt["8"]["inputs"].update(width=size, height=size)
    prompt["4"]["inputs"].update(width=size, height=size)
    prompt["9"]["inputs"]["steps"] = steps
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=parts["vae"], text_encoder=parts["clip_l"],
                        tokenizer=None, text_encoder_2=parts["t5"], tokenizer_2=parts["tokenizer"],
                        transformer=parts["transformer"])
    pipe.set_progress_bar_config(disable=True)
    sigmas = calculate_sigmas(FluxSampling(shift=flux_resolution_shift(size, size)), "simple", steps)[:-1].tolist()
    return prompt, "9", lambda seed: _flux_anchor(pipe, engine, prompt, size, steps, sigmas, seed)


def _flux_anchor(pipe: FluxPipeline, engine: Engine, prompt: dict, size: int, steps: int, sigmas: list, seed: int) -> object:
    if not hasattr(pipe, "_nl_cond"):
        cond, extra = engine.run(prompt).value("6")[0]
        pipe._nl_cond = (cond, extra["pooled_output"])
    cond, pooled = pipe._nl_cond
    return pipe(prompt_embeds=cond, pooled_prompt_embeds=pooled, height=size, width=size, num_inference_steps=steps,
                sigmas=sigmas, guidance_scale=3.5, generator=torch.Generator().manual_seed(seed)).images[0]


def _sd3(root: Path, size: int, steps: int, engine: Engine) -> tuple:
    parts = build_tiny_sd3(root)
    prompt = copy.deepcopy(SD35_WORKFLOW)
    prompt["7"]["inputs"].update(width=size, height=size)
    prompt["8"]["inputs"]["steps"] = steps
    pipe = StableDiffusion3Pipeline(transformer=parts["transformer"], scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0),
                                    vae=parts["vae"], text_encoder=None, tokenizer=None, text_encoder_2=None,
                                    tokenizer_2=None, text_encoder_3=None, tokenizer_3=None)
    pipe.set_progress_bar_config(disable=True)
    sigmas = calculate_sigmas(FlowSampling(shift=3.0, multiplier=1000.0), "sgm_uniform", steps)[:-1].tolist()
    conds: list = []

    def anchor(seed: int) -> object:
        if not conds:
            result = engine.run(prompt)
            conds.extend([result.value("5")[0], result.value("6")[0]])
        (pos, pos_x), (neg, neg_x) = conds
        return pipe(prompt_embeds=pos, negative_prompt_embeds=neg, pooled_prompt_embeds=pos_x["pooled_output"],
                    negative_pooled_prompt_embeds=neg_x["pooled_output"], height=size, width=size,
                    num_inference_steps=steps, sigmas=sigmas, guidance_scale=4.0,
                    generator=torch.Generator().manual_seed(seed)).images[0]

    return prompt, "8", anchor


def _qwen(root: Path, size: int, steps: int, engine: Engine) -> tuple:
    parts = build_tiny_qwen_image(root)
    prompt = copy.deepcopy(QWEN_IMAGE_WORKFLOW)
    prompt["7"]["inputs"].update(width=size, height=size)
    prompt["8"]["inputs"]["steps"] = steps
    pipe = QwenImagePipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=parts["vae"], text_encoder=None,
                             tokenizer=None, transformer=parts["transformer"])
    pipe.set_progress_bar_config(disable=True)
    sigmas = calculate_sigmas(FlowSampling(shift=3.1, multiplier=1.0), "simple", steps)[:-1].tolist()
    conds: list = []

    def anchor(seed: int) -> object:
        if not conds:
            result = engine.run(prompt)
            conds.extend([result.value("5")[0][0], result.value("6")[0][0]])
        pos, neg = conds
        return pipe(prompt_embeds=pos, prompt_embeds_mask=torch.ones(pos.shape[:2], dtype=torch.long),
                    negative_prompt_embeds=neg, negative_prompt_embeds_mask=torch.ones(neg.shape[:2], dtype=torch.long),
                    true_cfg_scale=2.5, height=size, width=size, num_inference_steps=steps, sigmas=sigmas,
                    generator=torch.Generator().manual_seed(seed)).images[0]

    return prompt, "8", anchor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--families", default="z_image,flux,sd3")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for family in args.families.split(","):
        root = Path(tempfile.mkdtemp(prefix=f"nl-bench-{family}-"))
        engine = Engine(base_dir=root / "engine", models_dir=root / "models", load_custom_nodes=False)
        seed_input = "seed"
        if family == "z_image":
            prompt, sampler, anchor_fn = _zimage(root / "models", args.size, args.steps)
        elif family in BUILDERS:
            prompt, (sampler, seed_input), anchor_fn = BUILDERS[family](root / "models", args.size, args.steps, engine)
        else:
            build = {"flux": _flux, "sd3": _sd3, "qwen_image": _qwen}[family]
            prompt, sampler, anchor_fn = build(root / "models", args.size, args.steps, engine)
        assert engine.run(prompt).status == "success"
        ours, anchor = [], []
        for i in range(args.runs):
            prompt[sampler]["inputs"][seed_input] = 1000 + i
            t0 = time.perf_counter()
            result = engine.run(prompt)
            ours.append(time.perf_counter() - t0)
            assert result.status == "success", result.errors
            t0 = time.perf_counter()
            with torch.inference_mode():
                anchor_fn(1000 + i).save(root / f"anchor_{i}.png")
            anchor.append(time.perf_counter() - t0)
        engine.close()
        print(f"tiny {family} {args.size}x{args.size}, {args.steps} steps, {args.threads} thread(s), {args.runs} runs each")
        print_overhead(ours, anchor, "Engine, template workflow", "diffusers pipeline")


if __name__ == "__main__":
    main()
