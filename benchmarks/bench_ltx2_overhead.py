"""Engine overhead on tiny LTX-2 audio-video generation vs diffusers' LTX2Pipeline (goal ≤ 5 %).

Ours: the first stage of the official ``video_ltx2_t2v`` template (CheckpointLoaderSimple +
LTXAVTextEncoderLoader → CLIPTextEncode ×2 → LTXVConditioning; EmptyLTXVLatentVideo +
LTXVEmptyLatentAudio → LTXVConcatAVLatent → SamplerCustomAdvanced euler, CFG 3, LTXVScheduler →
LTXVSeparateAVLatent → VAEDecode + LTXVAudioVAEDecode → CreateVideo → SaveVideo) through
``Engine.run`` on tiny random weights saved as the release's files, a new noise seed each run
(sampling, both decodes and the MP4 re-run; loaders and prompt encodings come from the engine
cache, as in real use). Anchor: ``LTX2Pipeline`` on the very same modules with the same sigmas,
handed Gemma's stacked states (so it does no Gemma pass either, but runs its connectors), decoding
video and audio, then the same MP4 writer. Runs alternate; best and median are reported.

    python benchmarks/bench_ltx2_overhead.py [--size 64] [--frames 9] [--steps 4] [--runs 3]

Figures of 7 December 2026 (1 thread, a 2-core machine under a load average of 9–11 from other
work, so the noise is ±20 %): defaults (64², 9 frames, 4 steps, 3 runs) best 2808.3 ms ours vs
2753.1 ms anchor (+2.0 %), median 2843.5 vs 2830.8 ms (+0.4 %); with ``--steps 8`` best 1825.2 vs
2070.6 ms (−11.9 %), median 2253.3 vs 2140.6 ms (+5.3 %). Both prompts run in one batched
transformer call per step, as in the pipeline. Not measured on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _timing import print_overhead  # noqa: E402
from diffusers import FlowMatchEulerDiscreteScheduler, LTX2Pipeline  # noqa: E402

from nodeloom import Engine  # noqa: E402
from nodeloom.ops.video_value import VideoComponents, VideoFromComponents  # noqa: E402
from nodeloom.testing.tiny_ltx2 import LTX2_NEGATIVE, LTX2_POSITIVE, build_tiny_ltx2_av, ltx2_t2v_workflow  # noqa: E402


def _stacked(parts: dict, text: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Gemma's stacked states of the prompt, left-padded to 1024 with the padding masked."""
    ids = parts["tokenizer"](text, return_tensors="pt").input_ids
    with torch.no_grad():
        states = torch.stack(parts["gemma"](input_ids=ids, output_hidden_states=True).hidden_states, -1).flatten(2)
    n = states.shape[1]
    mask = (torch.arange(1024) >= 1024 - n).long()[None]
    return torch.cat([states.new_zeros(1, 1024 - n, states.shape[2]), states], 1), mask


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=9)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="nl-bench-ltx2-"))
    parts = build_tiny_ltx2_av(root / "models")
    prompt = ltx2_t2v_workflow(parts, frames=args.frames, rate=25.0)
    prompt["43"]["inputs"].update(width=args.size, height=args.size)
    prompt["9"]["inputs"]["steps"] = args.steps
    engine = Engine(base_dir=root / "engine", models_dir=root / "models", load_custom_nodes=False)
    first = engine.run(prompt)
    assert first.status == "success", first.errors
    (pe, pm), (ne, nm) = _stacked(parts, LTX2_POSITIVE), _stacked(parts, LTX2_NEGATIVE)
    pipe = LTX2Pipeline(scheduler=FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05, base_image_seq_len=1024, max_image_seq_len=4096,
        shift_terminal=0.1, time_shift_type="exponential"), vae=parts["video_vae"], audio_vae=parts["audio_vae"],
        text_encoder=None, tokenizer=None, connectors=parts["connectors"], transformer=parts["transformer"],
        vocoder=parts["vocoder"])
    pipe.set_progress_bar_config(disable=True)
    ours, anchor = [], []
    for i in range(args.runs):
        prompt["11"]["inputs"]["noise_seed"] = 1000 + i
        t0 = time.perf_counter()
        result = engine.run(prompt)
        ours.append(time.perf_counter() - t0)
        assert result.status == "success", result.errors
        t0 = time.perf_counter()
        with torch.inference_mode():
            video, audio = pipe(prompt_embeds=pe, prompt_attention_mask=pm, negative_prompt_embeds=ne,
                                negative_prompt_attention_mask=nm, height=args.size, width=args.size,
                                num_frames=args.frames, frame_rate=25.0, num_inference_steps=args.steps,
                                guidance_scale=3.0, audio_guidance_scale=3.0, stg_scale=0.0, audio_stg_scale=0.0,
                                modality_scale=1.0, audio_modality_scale=1.0, guidance_rescale=0.0,
                                audio_guidance_rescale=0.0, spatio_temporal_guidance_blocks=None, output_type="pt",
                                generator=torch.Generator().manual_seed(1000 + i), return_dict=False)
            frames = video[0].permute(0, 2, 3, 1).float()
            sound = {"waveform": audio.float().cpu(), "sample_rate": int(parts["vocoder"].config.output_sampling_rate)}
            VideoFromComponents(VideoComponents(images=frames, frame_rate=Fraction(25), audio=sound)).save_to(
                root / f"anchor_{i}.mp4")
        anchor.append(time.perf_counter() - t0)
    engine.close()
    print(f"tiny LTX-2 {args.size}x{args.size}, {args.frames} frames, {args.steps} steps, {args.threads} thread(s),"
          f" {args.runs} runs each")
    print_overhead(ours, anchor, "Engine, template first stage", "diffusers LTX2Pipeline")


if __name__ == "__main__":
    main()
