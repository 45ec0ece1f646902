"""The storyboard's camera vocabulary in English and Chinese, and how a line is searched for it.

Owns the *terms* a writer uses to direct a shot (``特写``, ``close-up``, ``低角度``, ``推``,
``3s``, ``2秒``...) → shot size / angle / move / duration, the bracket forms that hold them
(``[...]``, ``【...】``, ``［...］`` are always directions; ``(...)`` and ``（...）`` are when
every item in them is a term), and matching that works for spaced scripts (whole words)
and unspaced ones (Chinese: substrings). Pure Python; ``ops.storyboard`` applies it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "ANGLE_TERMS",
    "BRACKETS",
    "MOVE_TERMS",
    "SIZE_TERMS",
    "Direction",
    "find_all",
    "free_text_terms",
    "has_cjk",
    "read_brackets",
    "read_token",
    "spoken_seconds",
]

#: shot size terms → size code (explicit directions: they beat content keywords); `2S` is left
#: out because `2s` reads as two seconds
SIZE_TERMS: dict[str, str] = {
    "extreme wide shot": "EWS", "extreme wide": "EWS", "extreme long shot": "EWS", "ews": "EWS",
    "wide shot": "WS", "wide": "WS", "long shot": "WS", "ws": "WS",
    "full shot": "FS", "full": "FS", "fs": "FS",
    "medium shot": "MS", "medium": "MS", "ms": "MS",
    "medium close-up": "MCU", "medium close up": "MCU", "mcu": "MCU",
    "close-up": "CU", "close up": "CU", "closeup": "CU", "cu": "CU",
    "extreme close-up": "ECU", "extreme close up": "ECU", "ecu": "ECU",
    "over-the-shoulder shot": "OTS", "over-the-shoulder": "OTS", "ots": "OTS",
    "point-of-view shot": "POV", "point of view": "POV", "pov": "POV",
    "two shot": "2S", "insert shot": "INS", "insert": "INS", "ins": "INS",
    "大远景": "EWS", "远景": "WS", "全景": "FS", "中景": "MS", "中近景": "MCU", "近景": "MCU",
    "特写": "CU", "大特写": "ECU", "过肩": "OTS", "主观": "POV", "双人": "2S", "插入": "INS",
}
#: camera angle terms → angle
ANGLE_TERMS: dict[str, str] = {
    "eye level": "eye level", "eye": "eye level", "high angle": "high angle", "high": "high angle",
    "low angle": "low angle", "low": "low angle", "overhead": "overhead", "dutch angle": "dutch angle",
    "dutch": "dutch angle", "worm's-eye": "worm's-eye", "bird's-eye": "overhead",
    "平视": "eye level", "俯拍": "high angle", "俯视": "high angle", "俯角": "high angle", "高角度": "high angle",
    "仰拍": "low angle", "仰视": "low angle", "仰角": "low angle", "低角度": "low angle",
    "鸟瞰": "overhead", "俯瞰": "overhead", "顶拍": "overhead", "荷兰角": "dutch angle", "倾斜": "dutch angle",
    "虫视": "worm's-eye",
}
#: camera move terms → move (the English names of ``ops.storyboard.MOVES`` are terms too)
MOVE_TERMS: dict[str, str] = {
    "固定": "static", "静止": "static",
    "推": "push in", "推近": "push in", "推进": "push in", "推向": "push in",
    "拉": "pull out", "拉远": "pull out", "后拉": "pull out",
    "摇": "pan right", "横摇": "pan right", "右摇": "pan right", "左摇": "pan left",
    "上摇": "tilt up", "下摇": "tilt down",
    "移": "track right", "横移": "track right", "右移": "track right", "左移": "track left",
    "跟": "track right", "跟拍": "track right", "跟随": "track right",
    "升": "crane up", "升降": "crane up", "上升": "crane up", "降": "crane down", "下降": "crane down",
    "环绕": "orbit", "围绕": "orbit", "绕拍": "orbit",
    "甩": "whip pan", "甩镜": "whip pan", "甩向": "whip pan", "快摇": "whip pan", "滑动变焦": "dolly zoom", "希区柯克变焦": "dolly zoom",
    "whip": "whip pan", "follow": "track right", "tracking": "track right", "crane": "crane up",
}
#: opening bracket → (closing bracket, strict): strict brackets hold only directions
BRACKETS = {"[": ("]", True), "【": ("】", True), "［": ("］", True), "(": (")", False), "（": ("）", False)}

_SEPARATORS = re.compile(r"[,，、;；/|｜]")
_DURATION = re.compile(r"^(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>s|sec|secs|seconds?|秒钟|秒|f|frames?|帧)$", re.IGNORECASE)
_FREE_DURATION = re.compile(r"(?P<n>\d+(?:\.\d+)?)\s*(?:秒钟|秒)")
_SHOT_WORDS = re.compile(r"^(?:镜头)?(?P<core>.+?)(?:镜头|镜|拍摄|\s+shot|\s+angle)?$")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True)
class Direction:
    """One recognised term: which field it sets, to what, and the words that said so."""

    field: str  # "size" | "angle" | "movement" | "duration"
    value: str | float
    term: str


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds Chinese/Japanese characters (matched without word boundaries)."""
    return bool(_CJK.search(text))


def find_all(words: tuple[str, ...] | list[str], text: str) -> list[tuple[int, str]]:
    """``(position, word)`` of every word found: whole words for spaced words, substrings for CJK ones."""
    low = text.lower()
    hits = []
    for w in words:
        if has_cjk(w):
            pos = low.find(w)
        else:
            m = re.search(r"(?<![\w'])" + re.escape(w) + r"(?![\w'])", low)
            pos = m.start() if m else -1
        if pos >= 0:
            hits.append((pos, w))
    return hits


def read_token(token: str, fps: float, moves: tuple[str, ...] | list[str]) -> Direction | None:
    """One bracket item as a direction, or None when it is not a term.

    ``moves`` are the English move names (``push in``...); ``镜头``/``shot`` around a term are
    ignored (``全景镜头`` = ``全景``, ``low angle shot`` = ``low angle``).
    """
    tok = " ".join(token.strip().lower().split())
    if not tok:
        return None
    if m := _DURATION.match(tok):
        value = float(m["n"])
        unit = m["unit"].lower()
        return Direction("duration", value / fps if unit.startswith("f") or unit == "帧" else value, token.strip())
    for cand in dict.fromkeys((tok, (_SHOT_WORDS.match(tok) or {"core": tok})["core"].strip())):
        if cand in SIZE_TERMS:
            return Direction("size", SIZE_TERMS[cand], token.strip())
        if cand in ANGLE_TERMS:
            return Direction("angle", ANGLE_TERMS[cand], token.strip())
        if cand in moves:
            return Direction("movement", cand, token.strip())
        if cand in MOVE_TERMS:
            return Direction("movement", MOVE_TERMS[cand], token.strip())
    return None


def _read_group(body: str, fps: float, moves: tuple[str, ...] | list[str]) -> tuple[list[Direction], list[str]]:
    """The directions in one bracket body and the items that were not terms."""
    found, unknown = [], []
    for item in _SEPARATORS.split(body):
        if not item.strip():
            continue
        d = read_token(item, fps, moves)
        if d is not None:
            found.append(d)
            continue
        parts = [read_token(p, fps, moves) for p in item.split()]
        if len(parts) > 1 and all(parts):
            found.extend(p for p in parts if p is not None)
        else:
            unknown.append(item.strip())
    return found, unknown


def read_brackets(beat: str, fps: float, moves: tuple[str, ...] | list[str]) -> tuple[str, list[Direction], list[str]]:
    """Take the bracketed directions out of a beat.

    Returns:
        ``(text without the direction brackets, directions in order, unknown items of strict
        brackets)`` — a round bracket with anything but terms stays in the text untouched.
    """
    out, found, unknown = [], [], []
    i = 0
    while i < len(beat):
        ch = beat[i]
        close = BRACKETS.get(ch)
        end = beat.find(close[0], i + 1) if close else -1
        if close is None or end < 0:
            out.append(ch)
            i += 1
            continue
        dirs, bad = _read_group(beat[i + 1 : end], fps, moves)
        if close[1]:
            found.extend(dirs)
            unknown.extend(bad)
            out.append(" ")
        elif dirs and not bad:
            found.extend(dirs)
            out.append(" ")
        else:
            out.append(beat[i : end + 1])
        i = end + 1
    return " ".join("".join(out).split()), found, unknown


def free_text_terms(text: str, moves: tuple[str, ...] | list[str]) -> list[tuple[int, Direction]]:
    """Explicit terms written in running text, with their positions.

    Only unambiguous ones count outside brackets: multi-character Chinese terms, English
    terms of more than one word, and ``N秒`` durations.
    """
    hits: list[tuple[int, Direction]] = []
    tables = (("size", SIZE_TERMS), ("angle", ANGLE_TERMS), ("movement", MOVE_TERMS | {m: m for m in moves}))
    for name, table in tables:
        words = [w for w in table if (has_cjk(w) and len(w) > 1) or (not has_cjk(w) and re.search(r"[ \-]", w))]
        # a longer term hides the shorter ones inside it (大特写 is not also 特写)
        for pos, w in find_all(words, text):
            if not any(o != w and w in o and text.lower().find(o) <= pos < text.lower().find(o) + len(o)
                       for _, o in find_all(words, text)):
                hits.append((pos, Direction(name, table[w], w)))
    for m in _FREE_DURATION.finditer(text):
        hits.append((m.start(), Direction("duration", float(m["n"]), m.group(0))))
    return sorted(hits, key=lambda h: h[0])


def spoken_seconds(line: str, words_per_second: float, chars_per_second: float) -> float:
    """How long a line takes to say: Chinese characters at ``chars_per_second``, other words at ``words_per_second``."""
    chars = len(_CJK.findall(line))
    words = sum(1 for w in _CJK.sub(" ", line).split() if re.search(r"\w", w))
    return chars / chars_per_second + words / words_per_second
