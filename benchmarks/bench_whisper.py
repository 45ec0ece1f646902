"""Whisper speech-to-text: nodeloom's ``transcribe`` vs transformers' own ASR pipeline, same run.

A random-weight Whisper (the tiny test model, or ``--size small``: whisper-small's layer sizes,
random weights, same vocabulary layout) transcribes ``--seconds`` of noise bursts. Rows: the
anchor (transformers' ``automatic-speech-recognition`` pipeline with 30 s chunks and
timestamps on the same model) and nodeloom's windowed transcription (resampling, quiet-point
windows, timestamp pairing). Each prints seconds and the real-time factor (compute seconds
per audio second; lower is faster). Random weights generate ``--tokens`` tokens per window.

    PYTHONPATH=src python benchmarks/bench_whisper.py [--seconds 60] [--size tiny|small] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nodeloom.speech.whisper import load_whisper, transcribe  # noqa: E402
from nodeloom.testing.tiny_whisper import build_tiny_whisper  # noqa: E402

SMALL = {"d_model": 768, "encoder_layers": 12, "decoder_layers": 12, "encoder_attention_heads": 12,
         "decoder_attention_heads": 12, "encoder_ffn_dim": 3072, "decoder_ffn_dim": 3072, "max_target_positions": 448}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--size", choices=["tiny", "small"], default="tiny")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    from transformers import pipeline

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_tiny_whisper(Path(tmp) / "w", sizes=SMALL if args.size == "small" else None)
        model = load_whisper(folder, device=args.device)
        rng = np.random.default_rng(0)
        t = np.arange(int(args.seconds * 16000)) / 16000
        wave = (rng.standard_normal(t.size) * 0.2 * ((t % 4.0) < 3.0)).astype(np.float32)
        audio = {"waveform": torch.from_numpy(wave)[None, None], "sample_rate": 16000}
        asr = pipeline("automatic-speech-recognition", model=model.model, tokenizer=model.processor.tokenizer,
                       feature_extractor=model.processor.feature_extractor, device=args.device)
        kwargs = {"language": "en", "task": "transcribe", "max_new_tokens": args.tokens}
        short = {"waveform": audio["waveform"][..., :16000], "sample_rate": 16000}
        asr(wave[:16000].copy(), return_timestamps=True, generate_kwargs=kwargs)  # warm-up, untimed
        transcribe(model, short, language="en", max_new_tokens=args.tokens)
        t0 = time.perf_counter()
        asr(wave.copy(), chunk_length_s=30, return_timestamps=True, generate_kwargs=kwargs)
        anchor = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, facts = transcribe(model, audio, language="en", max_new_tokens=args.tokens)
        ours = time.perf_counter() - t0
    print(f"whisper {args.size} ({args.device}), {args.seconds:.0f} s of audio, {facts['windows']} windows")
    print(f"anchor (transformers ASR pipeline): {anchor:.2f} s | RTF {anchor / args.seconds:.3f}")
    print(f"ours   (nodeloom transcribe):       {ours:.2f} s | RTF {ours / args.seconds:.3f}")


if __name__ == "__main__":
    main()
