"""Timed text: speech segments, their SRT / WebVTT forms, sentence splitting and chunk cuts.

Owns :class:`Segment` (seconds from the start of the audio), the checks that keep a segment
list ordered and inside the audio, the SRT/VTT writers and readers, and splitting long audio
at quiet points for models with a fixed window. Pure Python + numpy; imports no node code.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from nodeloom.errors import ValidationError

__all__ = ["Segment", "chunk_bounds", "clean_segments", "parse_subtitles", "segments_from_json", "segments_to_json",
           "sentence_segments", "to_srt", "to_vtt"]

_SENTENCE_END = re.compile(r"(?<=[.!?。！？…])[\"'”’」』)]*\s*")


@dataclass(frozen=True)
class Segment:
    """A stretch of speech: ``start`` and ``end`` in seconds from the start of the audio."""

    start: float
    end: float
    text: str


def clean_segments(segments: list[Segment], duration: float) -> list[Segment]:
    """Clamp times into ``[0, duration]`` and make them monotonic (each starts where the last
    ended or later); drop segments with no text. Model timestamps may overlap or run past the
    audio; what leaves here never does."""
    out: list[Segment] = []
    last = 0.0
    for seg in segments:
        text = seg.text.strip()
        if not text:
            continue
        start = min(max(seg.start, last, 0.0), duration)
        end = min(max(seg.end, start), duration)
        out.append(Segment(round(start, 3), round(end, 3), text))
        last = end
    return out


def sentence_segments(segments: list[Segment]) -> list[Segment]:
    """Regroup segments into sentences. Text is joined across segments and cut after ``.!?``
    (and the CJK stops); a sentence inside a segment gets a share of its time by characters."""
    pieces: list[tuple[float, float, str]] = []
    for seg in segments:
        parts = [p for p in _SENTENCE_END.split(seg.text.strip()) if p] if seg.text.strip() else []
        total = sum(len(p) for p in parts) or 1
        t = seg.start
        for part in parts:
            dt = (seg.end - seg.start) * len(part) / total
            pieces.append((t, t + dt, part.strip()))
            t += dt
    out: list[Segment] = []
    start, words = None, []
    for s, e, text in pieces:
        start = s if start is None else start
        words.append(text)
        if _SENTENCE_END.search(text + " ") and re.search(r"[.!?。！？…][\"'”’」』)]*$", text):
            out.append(Segment(round(start, 3), round(e, 3), " ".join(words)))
            start, words = None, []
    if words and start is not None:
        out.append(Segment(round(start, 3), round(pieces[-1][1], 3), " ".join(words)))
    return out


def _stamp(seconds: float, sep: str) -> str:
    ms = int(round(max(seconds, 0.0) * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_srt(segments: list[Segment]) -> str:
    """SubRip text: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, a blank line after each."""
    return "".join(f"{i}\n{_stamp(s.start, ',')} --> {_stamp(s.end, ',')}\n{s.text}\n\n"
                   for i, s in enumerate(segments, 1))


def to_vtt(segments: list[Segment]) -> str:
    """WebVTT text: the ``WEBVTT`` header, then cues with ``HH:MM:SS.mmm`` times."""
    cues = "".join(f"{_stamp(s.start, '.')} --> {_stamp(s.end, '.')}\n{s.text}\n\n" for s in segments)
    return "WEBVTT\n\n" + cues


_CUE_TIME = re.compile(r"^(\d+):(\d\d):(\d\d)[,.](\d{3})\s+-->\s+(\d+):(\d\d):(\d\d)[,.](\d{3})")


def parse_subtitles(text: str) -> list[Segment]:
    """Read SRT or WebVTT text back into segments.

    Raises:
        ValidationError: a cue line that is not ``start --> end`` with valid times.
    """
    segments = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip()):
        lines = [ln for ln in block.split("\n") if ln.strip()]
        timing = next((i for i, ln in enumerate(lines) if "-->" in ln), None)
        if timing is None:
            continue  # the WEBVTT header, NOTE blocks, a cue without times
        m = _CUE_TIME.match(lines[timing].strip())
        if m is None:
            raise ValidationError(f"subtitle cue time `{lines[timing]}` must look like `00:00:01,000 --> 00:00:02,500`")
        g = [int(x) for x in m.groups()]
        start = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
        end = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
        segments.append(Segment(start, end, "\n".join(lines[timing + 1:])))
    return segments


def segments_to_json(segments: list[Segment]) -> str:
    return json.dumps({"segments": [asdict(s) for s in segments]}, ensure_ascii=False)


def segments_from_json(text: str | dict[str, Any]) -> list[Segment]:
    """Segments from ``{"segments": [{"start", "end", "text"}, ...]}`` (or the bare list)."""
    data = json.loads(text) if isinstance(text, str) else text
    items = data.get("segments") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ValidationError("segments JSON must be a list or an object with a `segments` list")
    try:
        return [Segment(float(i["start"]), float(i["end"]), str(i["text"])) for i in items]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValidationError(f"each segment needs numeric `start`, `end` and a `text`: {exc}") from exc


def chunk_bounds(wave: np.ndarray, rate: int, window: float, search: float = 2.0) -> list[tuple[int, int]]:
    """Split mono ``wave`` into pieces of at most ``window`` seconds, each cut at the quietest
    20 ms in the last ``search`` seconds of its window (so words are rarely cut in two).

    Returns sample ranges ``(start, end)`` covering the whole wave, in order, without gaps.
    """
    if window <= 0:
        raise ValidationError(f"`chunk_seconds` must be > 0, got {window}")
    size, hop = int(window * rate), max(int(0.02 * rate), 1)
    bounds, start, n = [], 0, len(wave)
    while n - start > size:
        lo = start + max(size - int(search * rate), size // 2)
        hi = start + size
        frames = (hi - lo) // hop
        energy = np.square(wave[lo:lo + frames * hop]).reshape(frames, hop).sum(axis=1) if frames else np.zeros(1)
        cut = lo + int(np.argmin(energy)) * hop + hop // 2 if frames else hi
        bounds.append((start, cut))
        start = cut
    bounds.append((start, n))
    return bounds
