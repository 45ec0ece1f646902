"""Keyframe schedules in Deforum's syntax: ``"0:(1.0), 30:(1.02), 60:(sin(t/10))"``.

Owns parsing (with errors that point at the character), a small safe expression
evaluator (names ``t``, ``max_f``, ``W``, ``H``, ``fps`` and math functions) and
interpolation between numeric keyframes (linear, step, cubic, easing curves).
Imports numpy only (scipy optional for the cubic spline); no torch, no nodes.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from nodeloom.errors import ValidationError

__all__ = [
    "EASINGS",
    "INTERPOLATIONS",
    "Keyframe",
    "ScheduleError",
    "evaluate_expression",
    "parse_schedule",
    "schedule_values",
]


class ScheduleError(ValidationError):
    """A schedule string is malformed; ``extra_info["position"]`` is the 0-based offset."""

    type = "invalid_schedule"

    def __init__(self, message: str, text: str, position: int) -> None:
        pointer = f"{text}\n{' ' * position}^"
        super().__init__(
            f"{message} at position {position}",
            details=pointer,
            extra_info={"position": position, "schedule": text},
        )
        self.position = position


@dataclass(frozen=True)
class Keyframe:
    """One ``frame:(value)`` entry.

    Attributes:
        frame: the frame index the entry sits at.
        expression: the text between the parentheses.
        offset: where ``expression`` starts in the schedule string (for error positions).
        number: the value when the expression is a plain number, else None.
    """

    frame: int
    expression: str
    offset: int
    number: float | None


_MATH_FUNCS: dict[str, Callable[..., float]] = {
    name: getattr(math, name)
    for name in ("sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh",
                 "sqrt", "exp", "log", "log10", "log2", "floor", "ceil", "fmod", "hypot", "radians", "degrees")
}
_MATH_FUNCS.update({"abs": abs, "min": min, "max": max, "pow": pow, "round": round,
                    "where": lambda c, a, b: a if c else b,
                    "clip": lambda x, lo, hi: min(max(x, lo), hi)})
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}
_BINOPS: dict[type, Callable[[float, float], float]] = {
    ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b, ast.Mod: lambda a, b: a % b, ast.Pow: lambda a, b: a**b,
    ast.FloorDiv: lambda a, b: a // b,
}
_CMPOPS: dict[type, Callable[[float, float], bool]] = {
    ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b, ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b,
}


def evaluate_expression(expression: str, variables: Mapping[str, float], *, text: str | None = None, offset: int = 0) -> float:
    """Evaluate an arithmetic expression safely (no attribute access, no calls but math).

    Args:
        expression: e.g. ``"1.0 + 0.02*sin(2*pi*t/max_f)"``; ``^`` means power as in numexpr.
        variables: values for names such as ``t`` and ``max_f``.
        text: the full schedule the expression came from (for error messages).
        offset: where the expression starts in ``text``.

    Returns:
        The value as a float.

    Raises:
        ScheduleError: a syntax error, unknown name or failed evaluation, pointing at the position.
    """
    source = expression.replace("^", "**")
    full = text if text is not None else expression
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        col = max((exc.offset or 1) - 1, 0) + (len(source) - len(source.lstrip()))
        raise ScheduleError(f"invalid expression `{expression.strip()}`: {exc.msg}", full, offset + min(col, len(expression))) from None
    lead = len(source) - len(source.lstrip())
    try:
        value = _eval_node(tree.body, variables)
    except _EvalError as exc:
        raise ScheduleError(exc.message, full, offset + lead + exc.col) from None
    except (ArithmeticError, ValueError, TypeError) as exc:
        raise ScheduleError(f"cannot evaluate `{expression.strip()}`: {exc}", full, offset + lead) from None
    return float(value)


class _EvalError(Exception):
    def __init__(self, message: str, col: int) -> None:
        super().__init__(message)
        self.message, self.col = message, col


def _eval_node(node: ast.AST, env: Mapping[str, float]) -> float:
    col = getattr(node, "col_offset", 0)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in env:
            return env[node.id]
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        known = sorted(set(env) | set(_CONSTANTS))
        raise _EvalError(f"unknown name `{node.id}` (known: {', '.join(known)})", col)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_eval_node(node.left, env), _eval_node(node.right, env))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _eval_node(node.operand, env)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.Compare) and all(type(o) in _CMPOPS for o in node.ops):
        left = _eval_node(node.left, env)
        for op, right_node in zip(node.ops, node.comparators):
            right = _eval_node(right_node, env)
            if not _CMPOPS[type(op)](left, right):
                return 0.0
            left = right
        return 1.0
    if isinstance(node, ast.IfExp):
        return _eval_node(node.body if _eval_node(node.test, env) else node.orelse, env)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        func = _MATH_FUNCS.get(node.func.id)
        if func is None:
            raise _EvalError(f"unknown function `{node.func.id}` (known: {', '.join(sorted(_MATH_FUNCS))})", col)
        return func(*(_eval_node(a, env) for a in node.args))
    raise _EvalError(f"unsupported syntax `{ast.unparse(node)}`", col)


_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def parse_schedule(text: str, max_frames: int | None = None) -> list[Keyframe]:
    """Split a schedule into keyframes (sorted by frame, later duplicates win).

    Frames are integers or expressions in ``max_f`` (e.g. ``max_f:(0)``). Values are kept
    as text; plain numbers are also stored in :attr:`Keyframe.number`.

    Args:
        text: the schedule, e.g. ``"0:(1.0), 30:(1.02)"``. A bare number means ``0:(number)``.
        max_frames: the clip length, needed for frames written as expressions.

    Returns:
        The keyframes.

    Raises:
        ScheduleError: naming what was expected and where.
    """
    if not isinstance(text, str):
        raise ValidationError(f"schedule must be a string, got {type(text).__name__}")
    if _NUMBER.fullmatch(text) and text.strip():
        return [Keyframe(0, text.strip(), len(text) - len(text.lstrip()), float(text))]
    keys: dict[int, Keyframe] = {}
    pos, n = 0, len(text)
    while True:
        pos = _skip_space(text, pos)
        if pos >= n:
            break
        colon = text.find(":", pos)
        if colon < 0:
            raise ScheduleError("expected `frame:(value)`, found no `:`", text, pos)
        frame = _parse_frame(text, pos, colon, max_frames)
        p = _skip_space(text, colon + 1)
        if p >= n or text[p] != "(":
            raise ScheduleError("expected `(` after `:`", text, p)
        close = _matching_paren(text, p)
        expr = text[p + 1 : close]
        if not expr.strip():
            raise ScheduleError("empty value `()`", text, p + 1)
        number = float(expr) if _NUMBER.fullmatch(expr) else None
        if number is None:  # check it parses now, so errors point at the schedule
            evaluate_expression(expr, _probe_env(max_frames), text=text, offset=p + 1)
        keys[frame] = Keyframe(frame, expr.strip(), p + 1, number)
        pos = _skip_space(text, close + 1)
        if pos < n:
            if text[pos] != ",":
                raise ScheduleError("expected `,` between keyframes", text, pos)
            pos += 1
    if not keys:
        raise ScheduleError("schedule is empty; expected e.g. `0:(1.0)`", text, 0)
    return [keys[f] for f in sorted(keys)]


def _probe_env(max_frames: int | None) -> dict[str, float]:
    mf = float((max_frames or 2) - 1)
    return {"t": 0.0, "max_f": mf, "W": 512.0, "H": 512.0, "fps": 24.0}


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _parse_frame(text: str, start: int, colon: int, max_frames: int | None) -> int:
    raw = text[start:colon]
    if raw.strip().isdigit():
        return int(raw)
    if max_frames is None and "max_f" in raw:
        raise ScheduleError("a frame written with `max_f` needs the clip length (`max_frames`)", text, start)
    env = {"max_f": float((max_frames or 1) - 1)}
    value = evaluate_expression(raw, env, text=text, offset=start)
    if value < 0 or value != int(value):
        raise ScheduleError(f"frame must be a whole number ≥ 0, got {value:g}", text, start)
    return int(value)


def _matching_paren(text: str, open_pos: int) -> int:
    depth = 0
    for i in range(open_pos, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    raise ScheduleError("unclosed `(`", text, open_pos)


# --------------------------------------------------------------------------- interpolation


def _ease_in(u: np.ndarray) -> np.ndarray:
    return u**3


def _ease_out(u: np.ndarray) -> np.ndarray:
    return 1.0 - (1.0 - u) ** 3


def _ease_in_out(u: np.ndarray) -> np.ndarray:
    return np.where(u < 0.5, 4 * u**3, 1 - (-2 * u + 2) ** 3 / 2)


def _smoothstep(u: np.ndarray) -> np.ndarray:
    return u * u * (3 - 2 * u)


def _sine_in_out(u: np.ndarray) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.pi * u)


#: easing curves u∈[0,1] → [0,1] applied between consecutive numeric keyframes.
EASINGS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "ease_in": _ease_in,
    "ease_out": _ease_out,
    "ease_in_out": _ease_in_out,
    "smoothstep": _smoothstep,
    "sine_in_out": _sine_in_out,
}
INTERPOLATIONS = ("linear", "step", "cubic", *EASINGS)


def schedule_values(
    text: str,
    max_frames: int,
    *,
    interpolation: str = "linear",
    variables: Mapping[str, float] | None = None,
) -> np.ndarray:
    """Evaluate a schedule at every frame ``0..max_frames-1`` (Deforum's semantics).

    A numeric keyframe pins its frame; an expression keyframe is evaluated at every frame
    (``t`` = frame) from its frame until the next numeric keyframe. Frames between numeric
    keyframes are interpolated; before the first and after the last value is held.

    Args:
        text: the schedule string.
        max_frames: number of frames (``max_f`` = ``max_frames - 1``).
        interpolation: one of :data:`INTERPOLATIONS`.
        variables: extra names for expressions (``W``, ``H``, ``fps``...).

    Returns:
        ``float64`` array of shape ``[max_frames]``.

    Raises:
        ValidationError: bad ``max_frames`` or ``interpolation``; ScheduleError for the text.
    """
    if not isinstance(max_frames, int) or max_frames < 1:
        raise ValidationError(f"`max_frames` must be ≥ 1, got {max_frames!r}")
    if interpolation not in INTERPOLATIONS:
        raise ValidationError(f"`interpolation` must be one of {list(INTERPOLATIONS)}, got `{interpolation}`")
    keys = [k for k in parse_schedule(text, max_frames) if k.frame < max_frames]
    if not keys:
        raise ScheduleError(f"no keyframe falls inside the {max_frames} frames", text, 0)
    env = {"max_f": float(max_frames - 1), "W": 512.0, "H": 512.0, "fps": 24.0, **(variables or {})}
    values = np.full(max_frames, np.nan)
    key_at = {k.frame: k for k in keys}
    current: Keyframe | None = None
    for f in range(max_frames):
        if f in key_at:
            current = key_at[f]
        if current is None:
            continue
        if current.number is not None:
            if current.frame == f:
                values[f] = current.number
        else:
            values[f] = evaluate_expression(current.expression, {**env, "t": float(f)}, text=text, offset=current.offset)
    return _fill(values, interpolation)


def _fill(values: np.ndarray, interpolation: str) -> np.ndarray:
    known = np.flatnonzero(~np.isnan(values))
    out = values.copy()
    out[: known[0]] = values[known[0]]
    out[known[-1] + 1 :] = values[known[-1]]
    if len(known) == 1:
        return out
    frames = np.arange(len(values))
    gaps = np.flatnonzero(np.isnan(out))
    if not len(gaps):
        return out
    if interpolation == "cubic" and len(known) >= 3:
        out[gaps] = _cubic(known, values[known], gaps)
        return out
    right = np.searchsorted(known, gaps)
    x0, x1 = known[right - 1], known[right]
    u = (frames[gaps] - x0) / (x1 - x0)
    if interpolation == "step":
        u = np.zeros_like(u)
    elif interpolation in EASINGS:
        u = EASINGS[interpolation](u)
    out[gaps] = values[x0] + (values[x1] - values[x0]) * u
    return out


def _cubic(x: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    """A natural cubic spline through the known points (Deforum drops to linear below 3 keys)."""
    n = len(x)
    h = np.diff(x).astype(float)
    a = np.zeros((n, n))
    rhs = np.zeros(n)
    a[0, 0] = a[-1, -1] = 1.0
    for i in range(1, n - 1):
        a[i, i - 1], a[i, i], a[i, i + 1] = h[i - 1], 2 * (h[i - 1] + h[i]), h[i]
        rhs[i] = 3 * ((y[i + 1] - y[i]) / h[i] - (y[i] - y[i - 1]) / h[i - 1])
    c = np.linalg.solve(a, rhs)
    seg = np.clip(np.searchsorted(x, at) - 1, 0, n - 2)
    dx = at - x[seg]
    b = (y[seg + 1] - y[seg]) / h[seg] - h[seg] * (2 * c[seg] + c[seg + 1]) / 3
    d = (c[seg + 1] - c[seg]) / (3 * h[seg])
    return y[seg] + b * dx + c[seg] * dx**2 + d * dx**3
