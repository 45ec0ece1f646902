"""Storyboards: a short script becomes a shot list with sizes, angles, moves and timing.

Owns the explicit keyword rules (the tables below are the whole rule set; the docs
print them), per-line overrides such as ``[CU, push in, 3s]``, the :class:`Shot` and
:class:`Storyboard` records, their JSON form, and compiling each shot's move into a
semantic camera spec (``ops.camera_paths``). Pure Python + numpy; rendering the
contact sheet lives in ``ops.video_plots``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from nodeloom.errors import ValidationError
from nodeloom.ops.camera import CameraPath
from nodeloom.ops.camera_paths import semantic_path

__all__ = [
    "ANGLE_RULES",
    "MOVES",
    "MOVE_RULES",
    "SHOT_SIZES",
    "SIZE_RULES",
    "Shot",
    "Storyboard",
    "parse_script",
]

SHOT_SIZES = {
    "EWS": "extreme wide shot", "WS": "wide shot", "FS": "full shot", "MS": "medium shot",
    "MCU": "medium close-up", "CU": "close-up", "ECU": "extreme close-up",
    "OTS": "over-the-shoulder shot", "POV": "point-of-view shot", "2S": "two shot", "INS": "insert shot",
}
ANGLES = ("eye level", "high angle", "low angle", "overhead", "dutch angle", "worm's-eye")

#: movement → (camera preset, extra axes, preset strength) for ``semantic_path``.
MOVES: dict[str, tuple[str, dict[str, float], float]] = {
    "static": ("static", {}, 1.0),
    "push in": ("zoom in", {}, 0.8),
    "pull out": ("zoom out", {}, 0.8),
    "pan left": ("pan left", {}, 1.0),
    "pan right": ("pan right", {}, 1.0),
    "tilt up": ("static", {"tilt": 4.0}, 1.0),
    "tilt down": ("static", {"tilt": -4.0}, 1.0),
    "track left": ("static", {"horizontal": -5.0}, 1.0),
    "track right": ("static", {"horizontal": 5.0}, 1.0),
    "orbit": ("orbit right", {}, 1.0),
    "crane up": ("crane up", {}, 1.0),
    "crane down": ("crane down", {}, 1.0),
    "dolly zoom": ("dolly zoom", {}, 1.0),
    "roll": ("static", {"roll": 3.0}, 1.0),
}

#: first matching rule wins; keywords match whole words, case-insensitively.
SIZE_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("OTS", ("over the shoulder", "over-the-shoulder", "over his shoulder", "over her shoulder", "over their shoulder")),
    ("POV", ("pov", "point of view", "through his eyes", "through her eyes", "through their eyes")),
    ("ECU", ("extreme close", "eyes", "eye", "lips", "fingers", "detail", "macro", "tear", "ring", "keyhole")),
    ("CU", ("close-up", "close up", "closeup", "face", "smile", "smiles", "frowns", "expression", "whispers", "cries")),
    ("INS", ("insert", "note", "letter", "screen", "phone", "clock", "watch")),
    ("EWS", ("establishing", "skyline", "landscape", "vista", "aerial", "horizon", "panorama", "city", "planet", "desert", "ocean")),
    ("WS", ("wide", "room", "street", "crowd", "enters", "arrives", "runs", "walks", "field", "hall", "battle")),
    ("2S", ("together", "both", "two of them", "each other", "face to face")),
]
ANGLE_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("overhead", ("overhead", "bird's-eye", "birds-eye", "bird's eye", "top-down", "top down")),
    ("worm's-eye", ("worm's-eye", "worms-eye", "worm's eye", "from the ground")),
    ("high angle", ("from above", "looks down at", "high angle", "small and alone", "tiny")),
    ("low angle", ("from below", "towering", "towers", "looming", "looms", "looks up at", "low angle", "giant", "heroic")),
    ("dutch angle", ("dutch", "tilted", "uneasy", "disoriented", "off-kilter", "dizzy", "drunk")),
]
MOVE_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("dolly zoom", ("dolly zoom", "vertigo", "realization hits", "realisation hits")),
    ("orbit", ("orbit", "orbits", "circles", "circling", "spins around", "around him", "around her")),
    ("crane up", ("crane up", "rises", "ascends", "lifts off", "takes off", "soars")),
    ("crane down", ("crane down", "descends", "lands", "sinks", "falls")),
    ("push in", ("push in", "pushes in", "moves closer", "approaches", "zoom in", "realizes", "realises", "focuses")),
    ("pull out", ("pull out", "pull back", "pulls back", "reveal", "reveals", "zoom out", "leaves", "recedes")),
    ("pan left", ("pan left", "pans left", "looks left")),
    ("pan right", ("pan right", "pans right", "pans across", "scans", "looks right", "sweeps")),
    ("tilt up", ("tilt up", "tilts up", "looks up")),
    ("tilt down", ("tilt down", "tilts down", "looks down")),
    ("track right", ("runs", "chases", "follows", "tracking", "walks", "drives", "rides")),
    ("roll", ("roll", "rolls", "tumbles", "capsizes")),
]
DEFAULT_DURATION = 2.0
WORDS_PER_SECOND = 2.5
_DIALOGUE = re.compile(r"^\s*(?P<speaker>[A-Z][A-Z0-9 .'\-]{0,30})\s*(\([^)]*\))?\s*:\s*(?P<line>.+)$")
_QUOTED = re.compile(r"[\"“]([^\"”]+)[\"”]")
_OVERRIDE = re.compile(r"\[([^\[\]]*)\]")
_DURATION = re.compile(r"^(?P<n>\d+(\.\d+)?)\s*(?P<unit>s|sec|secs|seconds?|f|frames?)$", re.IGNORECASE)


@dataclass
class Shot:
    """One shot of a storyboard (all fields are JSON-friendly)."""

    id: str
    size: str
    angle: str
    movement: str
    duration: float
    text: str
    prompt: str
    dialogue: str | None = None
    speaker: str | None = None
    line: int = 0
    rules: dict[str, str] = field(default_factory=dict)

    def frames(self, fps: float) -> int:
        """Frame count of this shot at ``fps`` (at least 1)."""
        return max(1, int(round(self.duration * fps)))

    def camera_spec(self, fps: float) -> dict[str, Any]:
        """The semantic camera parameters this shot's move compiles to."""
        preset, axes, strength = MOVES[self.movement]
        return {"preset": preset, "axes": dict(axes), "strength": strength, "easing": "ease_in_out", "frames": self.frames(fps)}

    def camera_path(self, fps: float, width: int, height: int) -> CameraPath:
        """The camera path of this shot (see :meth:`camera_spec`)."""
        spec = self.camera_spec(fps)
        return semantic_path(spec["frames"], width, height, spec["axes"], preset=spec["preset"],
                             strength=spec["strength"], easing=spec["easing"])


@dataclass
class Storyboard:
    """A shot list with its frame rate."""

    shots: list[Shot]
    fps: float = 24.0
    title: str = ""

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.shots)

    def camera_path(self, width: int, height: int) -> CameraPath:
        """All shots' camera paths back to back (each shot starts from its own still)."""
        path = self.shots[0].camera_path(self.fps, width, height)
        for shot in self.shots[1:]:
            path = path.concat(shot.camera_path(self.fps, width, height))
        return path

    def shot_starts(self) -> list[int]:
        """The first frame of every shot in :meth:`camera_path`."""
        starts, total = [], 0
        for shot in self.shots:
            starts.append(total)
            total += shot.frames(self.fps)
        return starts

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``version`` 1), each shot with its camera spec."""
        shots = []
        for s in self.shots:
            d = asdict(s)
            d["frames"] = s.frames(self.fps)
            d["camera"] = s.camera_spec(self.fps)
            shots.append(d)
        return {"version": 1, "title": self.title, "fps": self.fps, "duration": round(self.duration, 3), "shots": shots}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | dict[str, Any]) -> Storyboard:
        """Load what :meth:`to_json` wrote (derived keys ``frames``/``camera`` are recomputed).

        Raises:
            ValidationError: not a version-1 storyboard, or a shot with unknown values.
        """
        try:
            data = json.loads(text) if isinstance(text, str) else text
        except json.JSONDecodeError as exc:
            raise ValidationError(f"storyboard JSON is invalid: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(data.get("shots"), list):
            raise ValidationError("storyboard JSON must be an object with `version: 1` and a `shots` list")
        names = {f for f in Shot.__dataclass_fields__}
        shots = []
        for i, raw in enumerate(data["shots"]):
            if not isinstance(raw, dict):
                raise ValidationError(f"storyboard shot {i + 1} must be an object")
            try:
                shot = Shot(**{k: v for k, v in raw.items() if k in names})
            except TypeError as exc:
                raise ValidationError(f"storyboard shot {i + 1}: {exc}") from None
            _validate_shot(shot, i + 1)
            shots.append(shot)
        fps = float(data.get("fps", 24.0))
        if fps <= 0:
            raise ValidationError(f"storyboard `fps` must be > 0, got {fps}")
        return cls(shots=shots, fps=fps, title=str(data.get("title", "")))


def _validate_shot(shot: Shot, n: int) -> None:
    if shot.size not in SHOT_SIZES:
        raise ValidationError(f"shot {n}: `size` must be one of {list(SHOT_SIZES)}, got `{shot.size}`")
    if shot.angle not in ANGLES:
        raise ValidationError(f"shot {n}: `angle` must be one of {list(ANGLES)}, got `{shot.angle}`")
    if shot.movement not in MOVES:
        raise ValidationError(f"shot {n}: `movement` must be one of {list(MOVES)}, got `{shot.movement}`")
    if not shot.duration > 0:
        raise ValidationError(f"shot {n}: `duration` must be > 0 seconds, got {shot.duration}")


def _match(rules: list[tuple[str, tuple[str, ...]]], text: str) -> tuple[str, str] | None:
    low = text.lower()
    for value, words in rules:
        for w in words:
            if re.search(r"(?<![\w'])" + re.escape(w) + r"(?![\w'])", low):
                return value, w
    return None


def _beats(script: str) -> list[tuple[int, str]]:
    """One beat per line, or per paragraph when blank lines separate multi-line blocks."""
    lines = script.splitlines()
    paragraphs: list[tuple[int, list[str]]] = []
    current: list[str] = []
    start = 0
    for i, raw in enumerate(lines, start=1):
        text = raw.strip()
        if text.startswith("#"):
            continue
        if not text:
            if current:
                paragraphs.append((start, current))
                current = []
            continue
        if not current:
            start = i
        current.append(text)
    if current:
        paragraphs.append((start, current))
    if any(len(p) > 1 for _, p in paragraphs) and len(paragraphs) > 1:
        return [(n, " ".join(p)) for n, p in paragraphs]
    out = []
    for n, p in paragraphs:
        out.extend((n + k, t) for k, t in enumerate(p))
    return out


def _apply_overrides(tokens: list[str], n: int, fps: float) -> dict[str, Any]:
    found: dict[str, Any] = {}
    sizes = {k.lower(): k for k in SHOT_SIZES} | {v.lower(): k for k, v in SHOT_SIZES.items()}
    sizes |= {"close-up": "CU", "close up": "CU", "wide": "WS", "medium": "MS"}
    angles = {a: a for a in ANGLES} | {"high": "high angle", "low": "low angle", "dutch": "dutch angle", "eye": "eye level"}
    for raw in tokens:
        tok = raw.strip()
        low = tok.lower()
        if not tok:
            continue
        if m := _DURATION.match(tok):
            value = float(m["n"])
            found["duration"] = value / fps if m["unit"].lower().startswith("f") else value
        elif low in sizes:
            found["size"] = sizes[low]
        elif low in angles:
            found["angle"] = angles[low]
        elif low in MOVES:
            found["movement"] = low
        else:
            raise ValidationError(
                f"line {n}: override `{tok}` is not a shot size ({', '.join(SHOT_SIZES)}), an angle "
                f"({', '.join(ANGLES)}), a move ({', '.join(MOVES)}) or a duration like `3s` / `48f`"
            )
    return found


def parse_script(script: str, *, fps: float = 24.0, default_duration: float = DEFAULT_DURATION,
                 style: str = "", title: str = "") -> Storyboard:
    """Turn a script into a storyboard using the rule tables of this module.

    Each beat (line or paragraph) becomes a shot. Overrides in square brackets anywhere
    in the beat (``[CU, low angle, push in, 3s]``) win over the rules. Dialogue
    (``NAME: line`` or quoted text) defaults to a medium close-up and lasts at least
    as long as the words take to say at 2.5 words/s.

    Args:
        script: the text; ``#`` lines are comments.
        fps: frame rate for frame counts and ``48f`` durations.
        default_duration: seconds for a shot without dialogue or override.
        style: appended to every prompt (e.g. ``"cinematic, 35mm film"``).
        title: stored with the board.

    Returns:
        The storyboard.

    Raises:
        ValidationError: an empty script or an override token that is not understood.
    """
    if fps <= 0:
        raise ValidationError(f"`fps` must be > 0, got {fps}")
    if default_duration <= 0:
        raise ValidationError(f"`default_duration` must be > 0, got {default_duration}")
    shots = []
    for n, beat in _beats(script):
        tokens = [t for group in _OVERRIDE.findall(beat) for t in group.split(",")]
        text = " ".join(_OVERRIDE.sub(" ", beat).split())
        over = _apply_overrides(tokens, n, fps)
        shots.append(_make_shot(len(shots) + 1, n, text, over, default_duration, style))
    if not shots:
        raise ValidationError("`script` has no lines to turn into shots")
    return Storyboard(shots=shots, fps=float(fps), title=title)


def _make_shot(idx: int, n: int, text: str, over: dict[str, Any], default_duration: float, style: str) -> Shot:
    speaker = dialogue = None
    if m := _DIALOGUE.match(text):
        speaker, dialogue = m["speaker"].strip().title(), m["line"].strip().strip("\"“”")
    elif q := _QUOTED.findall(text):
        dialogue = " ".join(q)
    action = _QUOTED.sub(" ", text) if dialogue and not speaker else (text if not speaker else "")
    rules: dict[str, str] = {}
    size_hit = _match(SIZE_RULES, action or text)
    size = size_hit[0] if size_hit else ("MCU" if dialogue else "MS")
    rules["size"] = f"keyword `{size_hit[1]}`" if size_hit else ("dialogue" if dialogue else "default")
    angle_hit, move_hit = _match(ANGLE_RULES, text), _match(MOVE_RULES, text)
    angle = angle_hit[0] if angle_hit else "eye level"
    move = move_hit[0] if move_hit else "static"
    rules["angle"] = f"keyword `{angle_hit[1]}`" if angle_hit else "default"
    rules["movement"] = f"keyword `{move_hit[1]}`" if move_hit else "default"
    duration = default_duration
    if dialogue:
        duration = max(duration, math.ceil(len(dialogue.split()) / WORDS_PER_SECOND * 2) / 2)
    rules["duration"] = "dialogue length" if duration != default_duration else "default"
    for key in ("size", "angle", "movement", "duration"):
        if key in over:
            rules[key] = "override"
    size, angle = over.get("size", size), over.get("angle", angle)
    move, duration = over.get("movement", move), float(over.get("duration", duration))
    if duration <= 0:
        raise ValidationError(f"line {n}: duration must be > 0, got {duration}")
    subject = f"{speaker} speaking: {dialogue}" if speaker else text
    parts = [SHOT_SIZES[size], angle if angle != "eye level" else "", subject, style]
    prompt = ", ".join(p.strip() for p in parts if p and p.strip())
    return Shot(id=f"S{idx:02d}", size=size, angle=angle, movement=move, duration=duration, text=text,
                prompt=prompt, dialogue=dialogue, speaker=speaker, line=n, rules=rules)
