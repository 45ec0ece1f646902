"""Onsets and beats in audio: a spectral-flux onset envelope, peak picking refined to the
sample where the energy rises, tempo by autocorrelation and a dynamic-programming beat grid.

Plain numpy on mono waveforms; times are seconds from the start. Imports no node code.
"""

from __future__ import annotations

import numpy as np

from nodeloom.errors import ValidationError

__all__ = ["detect_beats", "detect_onsets", "estimate_tempo", "onset_envelope"]

HOP_SECONDS = 0.01
WINDOW_SECONDS = 0.04


def onset_envelope(wave: np.ndarray, rate: int) -> tuple[np.ndarray, float]:
    """Spectral flux: the summed rise of log-magnitude spectra between 10 ms frames.

    Returns:
        The envelope (one value per frame, normalised to peak 1) and the frame rate in Hz.
    """
    wave = np.asarray(wave, np.float32)
    if wave.ndim != 1:
        raise ValidationError(f"onset detection needs a mono waveform, got shape {wave.shape}")
    hop, win = max(1, int(rate * HOP_SECONDS)), max(8, int(rate * WINDOW_SECONDS))
    if wave.size < win:
        return np.zeros(0, np.float32), rate / hop
    padded = np.pad(wave, (win // 2, win // 2))
    count = 1 + (padded.size - win) // hop
    frames = np.lib.stride_tricks.as_strided(padded, (count, win), (padded.strides[0] * hop, padded.strides[0]))
    spec = np.log1p(100.0 * np.abs(np.fft.rfft(frames * np.hanning(win).astype(np.float32), axis=1)))
    flux = np.maximum(np.diff(spec, axis=0, prepend=spec[:1]), 0.0).sum(axis=1)
    peak = float(flux.max())
    return (flux / peak if peak > 0 else flux).astype(np.float32), rate / hop


def _refine(wave: np.ndarray, rate: int, t: float) -> float:
    """Move an onset to the sample (±one window) where the 1 ms energy rises most."""
    lo = max(0, int((t - WINDOW_SECONDS) * rate))
    hi = min(wave.size, int((t + WINDOW_SECONDS) * rate))
    k = max(1, rate // 1000)
    if hi - lo <= 2 * k:
        return t
    energy = np.convolve(np.abs(wave[lo:hi]), np.ones(k) / k, mode="same")
    return (lo + int(np.argmax(np.diff(energy)))) / rate


def detect_onsets(wave: np.ndarray, rate: int, *, threshold: float = 0.3, min_gap: float = 0.1) -> list[float]:
    """Times where new sound starts: envelope peaks above ``threshold`` (0..1 of the strongest)
    and above the local mean, at least ``min_gap`` seconds apart, each refined to the sample."""
    if not 0.0 <= threshold <= 1.0:
        raise ValidationError(f"`threshold` must be within 0..1, got {threshold}")
    env, fr = onset_envelope(wave, rate)
    if env.size < 3:
        return []
    gap = max(1, int(round(min_gap * fr)))
    local = np.convolve(env, np.ones(2 * gap + 1) / (2 * gap + 1), mode="same")
    times: list[float] = []
    for i in np.flatnonzero((env >= threshold) & (env > local)):
        window = env[max(0, i - gap):i + gap + 1]
        if env[i] < window.max() or (times and i / fr - times[-1] < min_gap):
            continue
        t = _refine(np.asarray(wave, np.float32), rate, i / fr)
        if not times or t - times[-1] >= min_gap:
            times.append(round(t, 4))
    return times


def estimate_tempo(env: np.ndarray, frame_rate: float, lo_bpm: float = 60.0, hi_bpm: float = 200.0) -> float:
    """The tempo (BPM) whose period best autocorrelates the onset envelope, weighted toward 120."""
    x = env - env.mean()
    if x.size < 4 or not np.any(x):
        return 0.0
    ac = np.correlate(x, x, mode="full")[x.size - 1:]
    lags = np.arange(max(1, int(frame_rate * 60 / hi_bpm)), min(x.size - 1, int(frame_rate * 60 / lo_bpm)) + 1)
    if lags.size == 0:
        return 0.0
    bpm = 60.0 * frame_rate / lags
    weight = np.exp(-0.5 * (np.log2(bpm / 120.0)) ** 2)
    return float(bpm[int(np.argmax(ac[lags] * weight))])


def detect_beats(wave: np.ndarray, rate: int, *, tightness: float = 100.0) -> tuple[list[float], float]:
    """A steady beat grid: the tempo from :func:`estimate_tempo`, then the beat times that best
    follow the onset envelope while keeping near that period (dynamic programming).

    Returns:
        Beat times in seconds and the tempo in BPM (no beats and 0 for silence).
    """
    env, fr = onset_envelope(wave, rate)
    bpm = estimate_tempo(env, fr)
    if bpm <= 0:
        return [], 0.0
    period = 60.0 * fr / bpm
    score, back = env.astype(np.float64).copy(), np.full(env.size, -1)
    for t in range(env.size):
        lo, hi = int(t - 2 * period), int(t - period / 2)
        if hi <= 0:
            continue
        prev = np.arange(max(0, lo), hi)
        penalty = -tightness * np.log((t - prev) / period) ** 2
        best = int(np.argmax(score[prev] + penalty))
        score[t] += score[prev[best]] + penalty[best]
        back[t] = prev[best]
    tail = np.arange(max(0, int(env.size - period)), env.size)
    t = int(tail[np.argmax(score[tail])])
    frames = []
    while t >= 0:
        frames.append(t)
        t = int(back[t])
    frames = _trim_weak(frames[::-1], env)
    wave = np.asarray(wave, np.float32)
    return [round(_refine(wave, rate, f / fr), 4) for f in frames], round(bpm, 2)


def _trim_weak(frames: list[int], env: np.ndarray) -> list[int]:
    """Drop grid beats at either end that fall where nothing sounds (the grid runs on past
    the music's first and last hits otherwise)."""
    strength = [float(env[max(0, f - 2):f + 3].max()) for f in frames]
    floor = 0.2 * float(np.median(strength)) if strength else 0.0
    lo, hi = 0, len(frames)
    while lo < hi and strength[lo] < floor:
        lo += 1
    while hi > lo and strength[hi - 1] < floor:
        hi -= 1
    return frames[lo:hi]
