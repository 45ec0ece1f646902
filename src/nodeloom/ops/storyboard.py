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
from nodeloom.ops.storyboard_terms import Direction, find_all, free_text_terms, read_brackets, spoken_seconds

__all__ = [
    "ANGLE_RULES",
    "MOVES",
    "MOVE_PROMPTS",
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
    "whip pan": ("pan right", {}, 3.0),
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

#: how each move reads in a shot's prompt (video models are prompted with the camera move)
MOVE_PROMPTS: dict[str, str] = {
    "static": "static camera", "push in": "slow push-in", "pull out": "camera pulls back", "pan left": "camera pans left",
    "pan right": "camera pans right", "whip pan": "fast whip pan", "tilt up": "camera tilts up",
    "tilt down": "camera tilts down", "track left": "camera tracks left", "track right": "camera tracks right",
    "orbit": "camera orbits the subject", "crane up": "crane shot rising", "crane down": "crane shot descending",
    "dolly zoom": "dolly zoom", "roll": "camera rolls",
}

#: first matching rule wins; keywords match whole words, case-insensitively.
SIZE_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("OTS", ("over the shoulder", "over-the-shoulder", "over his shoulder", "over her shoulder", "over their shoulder")),
    ("POV", ("pov", "point of view", "through his eyes", "through her eyes", "through their eyes")),
    ("ECU", ("extreme close", "eyes", "eye", "lips", "fingers", "detail", "macro", "tear", "ring", "keyhole",
             "眼睛", "双眼", "眼神", "瞳孔", "嘴唇", "手指", "泪", "细节")),
    ("CU", ("close-up", "close up", "closeup", "face", "smile", "smiles", "frowns", "expression", "whispers", "cries",
            "脸", "面部", "表情", "微笑", "低语")),
    ("INS", ("insert", "note", "letter", "screen", "phone", "clock", "watch", "手机", "信件", "屏幕", "时钟")),
    ("EWS", ("establishing", "skyline", "landscape", "vista", "aerial", "horizon", "panorama", "city", "planet", "desert", "ocean",
             "航拍", "天际线", "地平线", "城市", "星球", "沙漠", "海洋")),
    ("WS", ("wide", "room", "street", "crowd", "enters", "arrives", "runs", "walks", "field", "hall", "battle",
            "人群", "街道", "房间", "大厅", "战场", "走进")),
    ("2S", ("together", "both", "two of them", "each other", "face to face", "两人", "二人", "双方")),
]
ANGLE_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("overhead", ("overhead", "bird's-eye", "birds-eye", "bird's eye", "top-down", "top down")),
    ("worm's-eye", ("worm's-eye", "worms-eye", "worm's eye", "from the ground")),
    ("high angle", ("from above", "looks down at", "high angle", "small and alone", "tiny", "从上方", "居高临下")),
    ("low angle", ("from below", "towering", "towers", "looming", "looms", "looks up at", "low angle", "giant", "heroic",
                   "从下方", "高耸", "仰望")),
    ("dutch angle", ("dutch", "tilted", "uneasy", "disoriented", "off-kilter", "dizzy", "drunk")),
]
MOVE_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("dolly zoom", ("dolly zoom", "vertigo", "realization hits", "realisation hits")),
    ("orbit", ("orbit", "orbits", "circles", "circling", "spins around", "around him", "around her", "绕着")),
    ("crane up", ("crane up", "rises", "ascends", "lifts off", "takes off", "soars", "升空", "飞起")),
    ("crane down", ("crane down", "descends", "lands", "sinks", "falls", "降落", "落下")),
    ("push in", ("push in", "pushes in", "moves closer", "approaches", "zoom in", "realizes", "realises", "focuses",
                 "靠近", "逼近")),
    ("pull out", ("pull out", "pull back", "pulls back", "reveal", "reveals", "zoom out", "leaves", "recedes", "远去")),
    ("whip pan", ("whip pan", "whip pans", "swish pan")),
    ("pan left", ("pan left", "pans left", "looks left")),
    ("pan right", ("pan right", "pans right", "pans across", "scans", "looks right", "sweeps")),
    ("tilt up", ("tilt up", "tilts up", "looks up", "抬头")),
    ("tilt down", ("tilt down", "tilts down", "looks down", "低头")),
    ("track right", ("runs", "chases", "follows", "tracking", "walks", "drives", "rides", "奔跑", "追逐")),
    ("roll", ("roll", "rolls", "tumbles", "capsizes")),
]
DEFAULT_DURATION = 2.0
WORDS_PER_SECOND = 2.5
CHARS_PER_SECOND = 4.0
_DIALOGUE = re.compile(r"^\s*(?P<speaker>[A-Z][A-Z0-9 .'\-]{0,30})\s*(\([^)]*\))?\s*:\s*(?P<line>.+)$")
_QUOTED = re.compile(r"[\"“「『]([^\"”」』]+)[\"”」』]")
_DIALOGUE_ZH = re.compile(r"^\s*(?P<speaker>[\u4e00-\u9fff·]{1,10})\s*[：:]\s*(?P<line>[“「『\"].+)$")


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


def _keyword_hits(rules: list[tuple[str, tuple[str, ...]]], text: str) -> list[tuple[str, str]]:
    """``(value, word)`` for every rule with a keyword in ``text``, in table order."""
    hits = []
    for value, words in rules:
        found = find_all(words, text)
        if found:
            hits.append((value, min(found)[1]))
    return hits


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


def parse_script(script: str, *, fps: float = 24.0, default_duration: float = DEFAULT_DURATION,
                 style: str = "", title: str = "") -> Storyboard:
    """Turn a script (English, Chinese or both) into a storyboard using the rule tables of this module.

    Each beat (line or paragraph) becomes a shot. What decides each field, strongest first:
    directions in brackets (``[CU, push in, 3s]``, ``【特写，推，2秒】``, or round brackets
    holding only terms: ``(全景镜头,2秒)``), explicit terms in the text (``特写``,
    ``low angle``, ``3秒``; the first in the line wins), then the keyword tables (the first
    matching rule wins). When candidates disagree, the field's ``rules`` entry says which won
    over which. Dialogue (``NAME: line``, ``名字：“台词”`` or quoted text) defaults to a
    medium close-up and lasts at least as long as it takes to say (2.5 words/s, 4 Chinese
    characters/s).

    Args:
        script: the text; ``#`` lines are comments.
        fps: frame rate for frame counts and ``48f`` / ``48帧`` durations.
        default_duration: seconds for a shot without dialogue or a duration.
        style: appended to every prompt (e.g. ``"cinematic, 35mm film"``).
        title: stored with the board.

    Returns:
        The storyboard.

    Raises:
        ValidationError: an empty script or a square-bracket item that is not a term.
    """
    if fps <= 0:
        raise ValidationError(f"`fps` must be > 0, got {fps}")
    if default_duration <= 0:
        raise ValidationError(f"`default_duration` must be > 0, got {default_duration}")
    shots = []
    for n, beat in _beats(script):
        text, directions, unknown = read_brackets(beat, fps, list(MOVES))
        if unknown:
            raise ValidationError(
                f"line {n}: override `{unknown[0]}` is not a shot size ({', '.join(SHOT_SIZES)}), an angle "
                f"({', '.join(ANGLES)}), a move ({', '.join(MOVES)}) or a duration like `3s` / `2秒` / `48f`"
            )
        shots.append(_make_shot(len(shots) + 1, n, text, directions, default_duration, style))
    if not shots:
        raise ValidationError("`script` has no lines to turn into shots")
    return Storyboard(shots=shots, fps=float(fps), title=title)


def _dialogue(text: str) -> tuple[str | None, str | None]:
    """``(speaker, line)`` of a dialogue beat, or ``(None, quoted words)``, or ``(None, None)``."""
    if m := _DIALOGUE.match(text) or _DIALOGUE_ZH.match(text):
        return m["speaker"].strip().title(), m["line"].strip().strip("\"“”「」『』")
    if q := _QUOTED.findall(text):
        return None, " ".join(q)
    return None, None


def _decide(field_name: str, candidates: list[tuple[str, Any, str]], default: Any, default_rule: str) -> tuple[Any, str]:
    """The first candidate ``(how, value, words)`` wins; the rule text names the ones it beat."""
    if not candidates:
        return default, default_rule
    how, value, words = candidates[0]
    rule = "override" if how == "override" else f"{how} `{words}`"
    beaten = list(dict.fromkeys(f"`{w}` → {v:g}s" if field_name == "duration" else f"`{w}` → {v}"
                                for _, v, w in candidates[1:] if v != value))
    return value, f"{rule} (won over {', '.join(beaten)})" if beaten else rule


def _make_shot(idx: int, n: int, text: str, directions: list[Direction], default_duration: float, style: str) -> Shot:
    speaker, dialogue = _dialogue(text)
    # on a dialogue line only the action around the spoken words directs the camera
    scope = (_QUOTED.sub(" ", text) if not speaker else "") if dialogue else text
    terms = free_text_terms(scope, list(MOVES))
    tables = {"size": SIZE_RULES, "angle": ANGLE_RULES, "movement": MOVE_RULES}
    spoken = math.ceil(spoken_seconds(dialogue, WORDS_PER_SECOND, CHARS_PER_SECOND) * 2) / 2 if dialogue else 0.0
    defaults = {"size": ("MCU", "dialogue") if dialogue else ("MS", "default"), "angle": ("eye level", "default"),
                "movement": ("static", "default"),
                "duration": (spoken, "dialogue length") if spoken > default_duration else (default_duration, "default")}
    chosen: dict[str, Any] = {}
    rules: dict[str, str] = {}
    for key in ("size", "angle", "movement", "duration"):
        cands = [("override", d.value, d.term) for d in directions if d.field == key]
        cands += [("term", d.value, d.term) for _, d in terms if d.field == key]
        if key in tables:
            cands += [("keyword", v, w) for v, w in _keyword_hits(tables[key], scope)]
        chosen[key], rules[key] = _decide(key, cands, *defaults[key])
    duration = float(chosen["duration"])
    if duration <= 0:
        raise ValidationError(f"line {n}: duration must be > 0, got {duration}")
    size, angle = chosen["size"], chosen["angle"]
    subject = f"{speaker} speaking: {dialogue}" if speaker else text
    move = chosen["movement"]
    parts = [SHOT_SIZES[size], angle if angle != "eye level" else "", subject,
             MOVE_PROMPTS[move] if move != "static" else "", style]
    prompt = ", ".join(p.strip() for p in parts if p and p.strip())
    return Shot(id=f"S{idx:02d}", size=size, angle=angle, movement=chosen["movement"], duration=duration, text=text,
                prompt=prompt, dialogue=dialogue, speaker=speaker, line=n, rules=rules)
