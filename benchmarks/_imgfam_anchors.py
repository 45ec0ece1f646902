"""The Flux.2 Klein, Chroma, Lumina 2 and HiDream cases of ``bench_families_overhead.py``: each
returns the family's template workflow on tiny random weights saved as ComfyUI's files (see
``nodeloom.testing.tiny_flux2`` / ``tiny_chroma`` / ``tiny_lumina2`` / ``tiny_hidream``), where its
seed is set, and an anchor running ``Flux2KleinPipeline`` / ``ChromaPipeline`` / ``Lumina2Pipeline``
/ ``HiDreamImagePipeline`` on the very same modules and sigmas (Klein's pipeline encodes its prompt
each run; Chroma's, Lumina's and HiDream's are handed the encoded prompts, so those anchors do
strictly less work; HiDream's template sampler uni_pc is replaced by euler on both sides)."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from diffusers import ChromaPipeline, FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline, HiDreamImagePipeline, Lumina2Pipeline

from nodeloom import Engine
from nodeloom.diffusion.flow import FlowSampling, flux2_sigmas
from nodeloom.diffusion.schedules import calculate_sigmas
from nodeloom.testing.tiny_chroma import CHROMA_WORKFLOW, build_tiny_chroma
from nodeloom.testing.tiny_flux2 import FLUX2_KLEIN_WORKFLOW, build_tiny_flux2
from nodeloom.testing.tiny_hidream import HIDREAM_WORKFLOW, build_tiny_hidream
from nodeloom.testing.tiny_lumina2 import LUMINA2_WORKFLOW, build_tiny_lumina2


def _klein(root: Path, size: int, steps: int, engine: Engine) -> tuple:
    parts = build_tiny_flux2(root)
    prompt = copy.deepcopy(FLUX2_KLEIN_WORKFLOW)
    prompt["8"]["inputs"].update(steps=steps, width=size, height=size)
    prompt["9"]["inputs"].update(width=size, height=size)
    pipe = Flux2KleinPipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=parts["vae"],
                              text_encoder=parts["qwen3"], tokenizer=parts["tokenizer"], transformer=parts["klein"])
    pipe.set_progress_bar_config(disable=True)
    sigmas = flux2_sigmas(steps, size * size // 256)[:-1].tolist()
    text = prompt["4"]["inputs"]["text"]
    return prompt, ("10", "noise_seed"), lambda seed: pipe(
        prompt=text, height=size, width=size, num_inference_steps=steps, sigmas=sigmas, guidance_scale=1.0,
        generator=torch.Generator().manual_seed(seed)).images[0]


def _handed(engine: Engine, prompt: dict, pos: str, neg: str) -> list:
    result = engine.run(prompt)
    return [result.value(pos)[0][0], result.value(neg)[0][0]]


def _chroma(root: Path, size: int, steps: int, engine: Engine) -> tuple:
    parts = build_tiny_chroma(root)
    prompt = copy.deepcopy(CHROMA_WORKFLOW)
    prompt["10"]["inputs"]["steps"] = steps
    prompt["11"]["inputs"].update(width=size, height=size)
    pipe = ChromaPipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=parts["vae"], text_encoder=parts["t5"],
                          tokenizer=parts["tokenizer"], transformer=parts["transformer"])
    pipe.set_progress_bar_config(disable=True)
    sigmas = calculate_sigmas(FlowSampling(shift=1.0, multiplier=1.0), "beta", steps)[:-1].tolist()
    conds: list = []

    def anchor(seed: int) -> object:
        conds[:] = conds or _handed(engine, prompt, "5", "6")
        pos, neg = conds
        return pipe(prompt_embeds=pos, prompt_attention_mask=torch.ones(pos.shape[:2]), negative_prompt_embeds=neg,
                    negative_prompt_attention_mask=torch.ones(neg.shape[:2]), height=size, width=size,
                    num_inference_steps=steps, sigmas=sigmas, guidance_scale=3.5,
                    generator=torch.Generator().manual_seed(seed)).images[0]

    return prompt, ("12", "noise_seed"), anchor


def _lumina2(root: Path, size: int, steps: int, engine: Engine) -> tuple:
    parts = build_tiny_lumina2(root)
    prompt = copy.deepcopy(LUMINA2_WORKFLOW)
    prompt["9"]["inputs"].update(width=size, height=size)
    prompt["10"]["inputs"].update(steps=steps, sampler_name="euler")
    pipe = Lumina2Pipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=parts["vae"],
                           text_encoder=parts["gemma"], tokenizer=parts["tokenizer"], transformer=parts["transformer"])
    pipe.set_progress_bar_config(disable=True)
    sigmas = calculate_sigmas(FlowSampling(shift=4.0, multiplier=1.0), "simple", steps)[:-1].tolist()
    conds: list = []

    def anchor(seed: int) -> object:
        conds[:] = conds or _handed(engine, prompt, "5", "7")
        n = max(c.shape[1] for c in conds)
        embeds = [torch.cat([c, c.new_zeros(1, n - c.shape[1], c.shape[2])], dim=1) for c in conds]
        masks = [(torch.arange(n) < c.shape[1]).long()[None] for c in conds]
        return pipe(prompt_embeds=embeds[0], prompt_attention_mask=masks[0], negative_prompt_embeds=embeds[1],
                    negative_prompt_attention_mask=masks[1], height=size, width=size, num_inference_steps=steps,
                    sigmas=sigmas, guidance_scale=4.0, cfg_normalization=False, cfg_trunc_ratio=1.0,
                    generator=torch.Generator().manual_seed(seed)).images[0]

    return prompt, ("10", "seed"), anchor


def _hidream(root: Path, size: int, steps: int, engine: Engine) -> tuple:
    parts = build_tiny_hidream(root)
    prompt = copy.deepcopy(HIDREAM_WORKFLOW)
    prompt["86"]["inputs"].update(width=size, height=size)
    prompt["93"]["inputs"].update(steps=steps, sampler_name="euler")
    pipe = HiDreamImagePipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=parts["vae"], text_encoder=None,
                                tokenizer=None, text_encoder_2=None, tokenizer_2=None, text_encoder_3=None,
                                tokenizer_3=None, text_encoder_4=None, tokenizer_4=None, transformer=parts["transformer"])
    pipe.default_sample_size = size // 8  # the pipeline resizes every request to this area (× 8)
    pipe.set_progress_bar_config(disable=True)
    sigmas = calculate_sigmas(FlowSampling(shift=3.0, multiplier=1000.0), "simple", steps)[:-1].tolist()
    conds: list = []

    def anchor(seed: int) -> object:
        if not conds:
            result = engine.run(prompt)
            conds.extend([result.value("91")[0], result.value("85")[0]])
        (pos, pos_x), (neg, neg_x) = conds
        return pipe(prompt_embeds_t5=pos, negative_prompt_embeds_t5=neg,
                    prompt_embeds_llama3=pos_x["conditioning_llama3"].movedim(1, 0),
                    negative_prompt_embeds_llama3=neg_x["conditioning_llama3"].movedim(1, 0),
                    pooled_prompt_embeds=pos_x["pooled_output"], negative_pooled_prompt_embeds=neg_x["pooled_output"],
                    height=size, width=size, num_inference_steps=steps, sigmas=sigmas, guidance_scale=5.0,
                    generator=torch.Generator().manual_seed(seed)).images[0]

    return prompt, ("93", "seed"), anchor


#: family → ``builder(models_dir, size, steps, engine) -> (prompt, (seed node, seed input), anchor(seed))``
BUILDERS = {"flux2": _klein, "chroma": _chroma, "lumina2": _lumina2, "hidream": _hidream}
