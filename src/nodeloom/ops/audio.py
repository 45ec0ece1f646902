"""AUDIO operations: load, encode, resample, trim, join and mix waveforms.

AUDIO is ComfyUI's ``{"waveform": float32 [B,C,T], "sample_rate": int}``. Owns reading any
media file's first audio track, writing FLAC / MP3 / Opus / WAV with container tags, and the
waveform arithmetic behind the audio nodes. Decoding, encoding and resampling go through
PyAV (the ``video`` extra); no nodes, no engine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nodeloom.errors import ValidationError, require
from nodeloom.ops.video_read import read_audio
from nodeloom.ops.video_value import check_audio

__all__ = [
    "AUDIO_FORMATS",
    "OPUS_RATES",
    "QUALITIES",
    "concat_audio",
    "load_audio",
    "match_rates",
    "merge_audio",
    "resample",
    "save_audio",
    "trim_audio",
]

#: container format → encoder
AUDIO_FORMATS = {"flac": "flac", "mp3": "libmp3lame", "opus": "libopus", "wav": "pcm_s16le"}
#: encoder qualities the Save Audio nodes offer (``V0`` = LAME's best variable bit rate)
QUALITIES = {"mp3": ["V0", "128k", "320k"], "opus": ["64k", "96k", "128k", "192k", "320k"]}
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def load_audio(path: str | Path) -> dict[str, Any]:
    """The first audio track of a media file as AUDIO (batch of one).

    Raises:
        ValidationError: the file is missing, unreadable, or has no audio track.
    """
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"audio file `{path.name}` does not exist")
    audio = read_audio(path)
    if audio is None or audio["waveform"].shape[-1] == 0:
        raise ValidationError(f"`{path.name}` has no audio track")
    return {"waveform": torch.from_numpy(np.ascontiguousarray(audio["waveform"])), "sample_rate": audio["sample_rate"]}


def resample(waveform: torch.Tensor, rate: int, new_rate: int) -> torch.Tensor:
    """``[B,C,T]`` at ``rate`` → the same at ``new_rate`` (FFmpeg's resampler)."""
    if rate == new_rate:
        return waveform
    av = require("av", "video")
    out = []
    for item in waveform.detach().to("cpu", torch.float32).numpy():
        chans = []
        for channel in item:  # one mono pass per channel keeps any channel count
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(channel[None]), format="fltp", layout="mono")
            frame.sample_rate = rate
            rs = av.AudioResampler(format="fltp", layout="mono", rate=new_rate)
            chunks = [f.to_ndarray() for f in rs.resample(frame)] + [f.to_ndarray() for f in rs.resample(None)]
            chans.append(np.concatenate(chunks, axis=1)[0] if chunks else np.zeros(0, np.float32))
        length = min(len(c) for c in chans)
        out.append(np.stack([c[:length] for c in chans]))
    return torch.from_numpy(np.stack(out).astype(np.float32))


def match_rates(a: dict[str, Any], b: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Both waveforms at the higher of the two sample rates."""
    rate = max(a["sample_rate"], b["sample_rate"])
    return resample(a["waveform"], a["sample_rate"], rate), resample(b["waveform"], b["sample_rate"], rate), rate


def trim_audio(audio: dict[str, Any], start: float, duration: float) -> dict[str, Any]:
    """Keep ``duration`` seconds from ``start`` (negative: counted from the end).

    Raises:
        ValidationError: the range is empty or outside the audio.
    """
    audio = check_audio(audio)
    wave, rate = audio["waveform"], audio["sample_rate"]
    length = wave.shape[-1]
    first = length + int(round(start * rate)) if start < 0 else int(round(start * rate))
    first = max(0, min(first, length - 1))
    last = max(0, min(first + int(round(duration * rate)), length))
    if first >= last:
        raise ValidationError(f"`start_index` {start} s and `duration` {duration} s select nothing of "
                              f"{length / rate:.3f} s of audio")
    return {"waveform": wave[..., first:last], "sample_rate": rate}


def _stereo(wave: torch.Tensor) -> torch.Tensor:
    return wave.repeat(1, 2, 1) if wave.shape[1] == 1 else wave


def concat_audio(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """``first`` then ``second`` (mono becomes stereo; rates are matched upwards)."""
    a, b, rate = match_rates(check_audio(first, "audio1"), check_audio(second, "audio2"))
    a, b = _stereo(a), _stereo(b)
    if a.shape[0] != b.shape[0]:
        raise ValidationError(f"`audio1` and `audio2` batch sizes differ: {a.shape[0]} vs {b.shape[0]}")
    return {"waveform": torch.cat((a, b), dim=2), "sample_rate": rate}


def merge_audio(first: dict[str, Any], second: dict[str, Any], method: str) -> dict[str, Any]:
    """Overlay ``second`` on ``first`` (cut or zero-padded to its length); peaks above 1 are normalised."""
    a, b, rate = match_rates(check_audio(first, "audio1"), check_audio(second, "audio2"))
    if b.shape[-1] > a.shape[-1]:
        b = b[..., : a.shape[-1]]
    elif b.shape[-1] < a.shape[-1]:
        b = torch.nn.functional.pad(b, (0, a.shape[-1] - b.shape[-1]))
    ops = {"add": lambda: a + b, "mean": lambda: (a + b) / 2, "subtract": lambda: a - b, "multiply": lambda: a * b}
    if method not in ops:
        raise ValidationError(f"`merge_method` must be one of {list(ops)}, got `{method}`")
    try:
        wave = ops[method]()
    except RuntimeError as exc:
        raise ValidationError(f"`audio1` {tuple(a.shape)} and `audio2` {tuple(b.shape)} cannot be merged: {exc}") from None
    peak = float(wave.abs().max()) if wave.numel() else 0.0
    return {"waveform": wave / peak if peak > 1.0 else wave, "sample_rate": rate}


def save_audio(audio: dict[str, Any], path: str | Path, fmt: str, quality: str = "",
               metadata: dict[str, Any] | None = None, index: int = 0) -> Path:
    """Encode one item of an AUDIO batch to ``path``.

    Args:
        audio: the AUDIO value.
        path: the file to write.
        fmt: ``flac``, ``mp3``, ``opus`` or ``wav``.
        quality: ``mp3``: V0 / 128k / 320k; ``opus``: 64k ... 320k (bit rates); ignored otherwise.
        metadata: container tags (values that are not strings are stored as JSON).
        index: which batch item.

    Raises:
        ValidationError: an unknown format or quality, or an unusable waveform.
    """
    audio = check_audio(audio)
    if fmt not in AUDIO_FORMATS:
        raise ValidationError(f"`format` must be one of {list(AUDIO_FORMATS)}, got `{fmt}`")
    if quality and quality not in QUALITIES.get(fmt, [quality]):
        raise ValidationError(f"`quality` for {fmt} must be one of {QUALITIES[fmt]}, got `{quality}`")
    wave, rate = audio["waveform"][index : index + 1], audio["sample_rate"]
    if wave.shape[1] > 2:
        raise ValidationError(f"`audio` has {wave.shape[1]} channels; mono or stereo is expected")
    if fmt == "opus" and rate not in OPUS_RATES:
        new_rate = next((r for r in OPUS_RATES if r > rate), 48000)
        wave, rate = resample(wave, rate, new_rate), new_rate
    _encode(wave[0].detach().to("cpu", torch.float32).numpy(), rate, Path(path), fmt, quality, metadata or {})
    return Path(path)


def _encode(wave: np.ndarray, rate: int, path: Path, fmt: str, quality: str, metadata: dict[str, Any]) -> None:
    av = require("av", "video")
    layout = "mono" if wave.shape[0] == 1 else "stereo"
    with av.open(str(path), "w", format=fmt) as container:
        for key, value in metadata.items():
            container.metadata[key] = value if isinstance(value, str) else json.dumps(value)
        stream = container.add_stream(AUDIO_FORMATS[fmt], rate=rate, layout=layout)
        if quality.endswith("k"):
            stream.bit_rate = int(quality[:-1]) * 1000
        elif quality == "V0":
            stream.codec_context.qscale = 1
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave, dtype=np.float32), format="fltp", layout=layout)
        frame.sample_rate = rate
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=rate)
        for chunk in list(resampler.resample(frame)) + list(resampler.resample(None)):
            for packet in stream.encode(chunk):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
