"""Audio-driven storyboard timing: shot boundaries from speech sentences or from beats, cuts
snapped to beats, and frame-exact shot lengths (cuts rounded on the film's clock, so lengths
never drift from the audio). Pure Python; the storyboard records are ``ops.storyboard``'s.
"""

from __future__ import annotations

import dataclasses
import re

from nodeloom.errors import ValidationError
from nodeloom.ops.storyboard import Storyboard, parse_script
from nodeloom.ops.subtitles import Segment

__all__ = ["beat_cuts", "board_from_cuts", "parse_times", "sentence_cuts", "snap_cuts"]


def parse_times(text: str, name: str = "beats") -> list[float]:
    """``"0.5, 1.0 1.5"`` → sorted seconds; anything else is an error naming the input."""
    out = []
    for item in text.replace(",", " ").split():
        try:
            out.append(float(item))
        except ValueError:
            raise ValidationError(f"`{name}` must be times in seconds separated by commas, got `{item}`") from None
    if any(t < 0 for t in out):
        raise ValidationError(f"`{name}` must hold times ≥ 0")
    return sorted(out)


def sentence_cuts(segments: list[Segment], duration: float) -> tuple[list[float], list[str]]:
    """One shot per segment: cuts where each later segment starts; the first shot starts at 0
    and the last runs to the end of the audio. Returns the inner cut times and the shot texts."""
    if not segments:
        raise ValidationError("`segments` is empty: no sentences to make shots from")
    cuts = [s.start for s in segments[1:] if 0.0 < s.start < duration]
    return cuts, [s.text for s in segments[: len(cuts) + 1]]


def beat_cuts(beats: list[float], per_shot: int, duration: float) -> list[float]:
    """A cut on every ``per_shot``-th beat (counting from the first), inside the audio."""
    if per_shot < 1:
        raise ValidationError(f"`beats_per_shot` must be ≥ 1, got {per_shot}")
    return [t for t in beats[::per_shot] if 0.0 < t < duration]


def snap_cuts(cuts: list[float], beats: list[float], window: float) -> list[float]:
    """Move each cut to the nearest beat within ``window`` seconds (others stay); keep order and
    drop cuts that land on the same beat."""
    out: list[float] = []
    for c in cuts:
        near = min(beats, key=lambda b: abs(b - c)) if beats else c
        t = near if abs(near - c) <= window else c
        if not out or t > out[-1]:
            out.append(t)
    return out


def _plain(text: str) -> str:
    """Text as one script line that the script rules read as words only (no directions,
    no comment marker, no paragraph break)."""
    text = re.sub(r"[\[\]【】]", " ", text)
    return " ".join(text.split()).lstrip("#").strip()


def board_from_cuts(cuts: list[float], duration: float, texts: list[str], *, fps: float, style: str = "") -> Storyboard:
    """A storyboard whose shots end at the cuts (rounded to frames on the film's clock).

    Each shot's text goes through the script rules (size, angle, move); its length is set
    from the audio, overriding what the rules would give.
    """
    if duration <= 0:
        raise ValidationError("`audio` is empty: no length to time shots by")
    edges = [0] + [round(c * fps) for c in cuts] + [round(duration * fps)]
    edges = [e for i, e in enumerate(edges) if i == 0 or e > edges[i - 1]]
    if len(edges) < 2:
        edges = [0, max(1, round(duration * fps))]
    count = len(edges) - 1
    lines = [_plain(texts[i] if i < len(texts) else "") or f"Shot {i + 1}" for i in range(count)]
    board = parse_script("\n".join(lines), fps=fps, style=style)
    if len(board.shots) != count:
        raise ValidationError(f"the shot texts gave {len(board.shots)} shots for {count} audio spans")
    shots = [dataclasses.replace(s, duration=(edges[i + 1] - edges[i]) / fps) for i, s in enumerate(board.shots)]
    return Storyboard(shots=shots, fps=float(fps), title=board.title)
