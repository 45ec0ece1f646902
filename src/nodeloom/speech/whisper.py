"""Whisper speech recognition: a local transformers Whisper folder → timed text segments.

Owns loading (``local_files_only``; the folder holds ``config.json``, the weights, the
tokenizer, ``preprocessor_config.json`` and ``generation_config.json``), resampling to the
model's rate, cutting long audio into windows at quiet points, and reading each window's
timestamp tokens into segments on the whole audio's clock. Imports no node code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nodeloom.errors import ModelNotFoundError, ValidationError, require
from nodeloom.ops.audio import resample
from nodeloom.ops.subtitles import Segment, chunk_bounds, clean_segments

__all__ = ["TASKS", "WhisperModel", "load_whisper", "transcribe"]

TASKS = ("transcribe", "translate")
MAX_WINDOW = 30.0  # seconds: Whisper's encoder sees 30 s of audio at a time


@dataclass
class WhisperModel:
    """A loaded Whisper: the transformers model and processor, and the languages it knows."""

    model: Any
    processor: Any
    path: Path
    languages: list[str] = field(default_factory=list)

    @property
    def sample_rate(self) -> int:
        return int(self.processor.feature_extractor.sampling_rate)


def load_whisper(path: str | Path, device: Any = None) -> WhisperModel:
    """Load a transformers Whisper folder with no network access.

    Raises:
        ModelNotFoundError: the folder does not hold a Whisper model.
    """
    transformers = require("transformers", "speech")
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"`{path.name}` is not a Whisper folder (no config.json); put a transformers "
                                 "Whisper checkpoint folder under models/speech")
    processor = transformers.WhisperProcessor.from_pretrained(path, local_files_only=True)
    model = transformers.WhisperForConditionalGeneration.from_pretrained(path, local_files_only=True).eval()
    if device is not None:
        model = model.to(device)
    langs = sorted(k.strip("<|>") for k in (getattr(model.generation_config, "lang_to_id", None) or {}))
    return WhisperModel(model, processor, path, langs)


def _mono(audio: dict[str, Any], rate: int) -> np.ndarray:
    wave = audio["waveform"]
    if wave.shape[0] != 1:
        raise ValidationError(f"`audio` must hold one clip to transcribe, got a batch of {wave.shape[0]}")
    mono = wave.to(torch.float32).mean(dim=1, keepdim=True)
    return resample(mono, int(audio["sample_rate"]), rate)[0, 0].numpy()


def _token_segments(ids: list[int], timestamp_begin: int, decode: Callable[[list[int]], str],
                    precision: float) -> list[Segment]:
    """Pair timestamp tokens around text: ``<|t0|> text <|t1|>`` → Segment(t0, t1, text).
    Text with no closing timestamp ends at the last time seen (or stays open as -1)."""
    segments, start, text_ids, last = [], None, [], 0.0
    for tok in ids:
        if tok >= timestamp_begin:
            t = (tok - timestamp_begin) * precision
            if text_ids:
                segments.append(Segment(start if start is not None else last, t, decode(text_ids)))
                text_ids, start = [], None
            else:
                start = t
            last = t
        else:
            text_ids.append(tok)
    if text_ids:
        segments.append(Segment(start if start is not None else last, -1.0, decode(text_ids)))
    return segments


def _generate(whisper: WhisperModel, piece: np.ndarray, language: str | None, task: str,
              max_new_tokens: int) -> list[int]:
    proc, model = whisper.processor, whisper.model
    # the prompt (start, language, task tokens) and the new tokens share the decoder's positions
    max_new_tokens = max(1, min(max_new_tokens, int(model.config.max_target_positions) - 4))
    feats = proc(piece, sampling_rate=whisper.sample_rate, return_tensors="pt").input_features
    feats = feats.to(model.device, model.dtype)
    with torch.inference_mode():
        out = model.generate(feats, return_timestamps=True, language=language, task=task,
                             max_new_tokens=max_new_tokens)
    seq = out["sequences"] if isinstance(out, dict) else out
    return [int(t) for t in seq[0].tolist()]


def transcribe(whisper: WhisperModel, audio: dict[str, Any], *, language: str = "auto", task: str = "transcribe",
               chunk_seconds: float = 30.0, max_new_tokens: int = 224,
               progress: Callable[[int, int], None] | None = None) -> tuple[list[Segment], dict[str, Any]]:
    """Transcribe (or translate to English) one AUDIO clip.

    Long audio is cut into windows of at most ``chunk_seconds`` at quiet points; each window's
    segment times are offset by where it starts, clamped into it and kept monotonic, so the
    result is ordered and inside the audio however the model's timestamps fall.

    Returns:
        The segments and run facts (duration, windows, seconds spent, real-time factor).
    """
    if task not in TASKS:
        raise ValidationError(f"`task` must be one of {list(TASKS)}, got {task!r}")
    if not 0 < chunk_seconds <= MAX_WINDOW:
        raise ValidationError(f"`chunk_seconds` must be within (0, {MAX_WINDOW:g}], got {chunk_seconds}")
    lang = None if language in ("", "auto") else language
    if lang is not None and whisper.languages and lang not in whisper.languages:
        raise ValidationError(f"`language` must be `auto` or one of the model's {whisper.languages}, got {language!r}")
    rate = whisper.sample_rate
    wave = _mono(audio, rate)
    duration = len(wave) / rate
    tok = whisper.processor.tokenizer
    ts_begin = int(whisper.model.generation_config.no_timestamps_token_id) + 1
    decode = lambda ids: tok.decode(ids, skip_special_tokens=True)  # noqa: E731
    bounds = chunk_bounds(wave, rate, chunk_seconds)
    segments: list[Segment] = []
    t0 = time.perf_counter()
    for i, (a, b) in enumerate(bounds):
        offset, span = a / rate, (b - a) / rate
        ids = _generate(whisper, wave[a:b], lang, task, max_new_tokens)
        local = _token_segments(ids, ts_begin, decode, 0.02)
        local = [Segment(s.start, span if s.end < 0 else s.end, s.text) for s in local]
        segments += [Segment(offset + s.start, offset + s.end, s.text) for s in clean_segments(local, span)]
        if progress is not None:
            progress(i + 1, len(bounds))
    seconds = time.perf_counter() - t0
    facts = {"duration": duration, "windows": len(bounds), "seconds": seconds,
             "real_time_factor": seconds / duration if duration else 0.0}
    return clean_segments(segments, duration), facts
