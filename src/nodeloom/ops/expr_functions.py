"""The functions an expression may call, and the value helpers they share.

Values are numpy arrays (CPU), torch tensors (other devices), Python floats, or
:class:`_Bool` (a comparison result kept as booleans). Every function here is element-wise
and works on both backends; :mod:`nodeloom.ops.expr` decides which names may be called.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

__all__ = ["FUNCTIONS"]


class _Bool:
    """A comparison/logic result kept as booleans until arithmetic needs numbers.

    ``where(a > 0.5, ...)`` then indexes with the booleans directly, as hand-written numpy
    would, instead of converting to float and back.
    """

    __slots__ = ("b", "dtype")

    def __init__(self, b: Any, dtype: Any) -> None:
        self.b = b
        self.dtype = dtype


def _ref(args: Iterable[Any]) -> Any:
    """The first array among ``args`` (array, tensor or :class:`_Bool`): it decides the
    backend, the float dtype and the device of the result."""
    for a in args:
        if isinstance(a, (torch.Tensor, np.ndarray, _Bool)):
            return a
    return None


def _num(x: Any) -> Any:
    if isinstance(x, _Bool):
        if isinstance(x.b, torch.Tensor):
            return x.b.to(x.dtype)
        return x.b.astype(x.dtype) if isinstance(x.b, np.ndarray) else float(x.b)
    return x


def _truth(x: Any) -> Any:
    if isinstance(x, _Bool):
        return x.b
    if isinstance(x, (torch.Tensor, np.ndarray)):
        return x != 0
    return np.bool_(x != 0)


def _raw(ref: Any) -> Any:
    return ref.b if isinstance(ref, _Bool) else ref


def _float_dtype(ref: Any) -> Any:
    if isinstance(ref, _Bool):
        return ref.dtype
    if isinstance(ref, torch.Tensor):
        return ref.dtype if ref.is_floating_point() else torch.float32
    if isinstance(ref, np.ndarray) and ref.dtype.kind == "f":
        return ref.dtype
    return np.float32


def _lift(x: Any, ref: Any) -> Any:
    """``x`` as an array of ``ref``'s backend (scalars become 0-d arrays)."""
    x = _num(x)
    if isinstance(x, (torch.Tensor, np.ndarray)):
        return x
    raw = _raw(ref)
    if isinstance(raw, torch.Tensor):
        return torch.tensor(x, dtype=_float_dtype(ref), device=raw.device)
    return np.asarray(x, dtype=_float_dtype(ref))


def _xp(ref: Any) -> Any:
    return torch if isinstance(_raw(ref), torch.Tensor) else np


def _unary(name: str) -> Callable[[Any], Any]:
    def run(x: Any) -> Any:
        x = _lift(x, _ref([x]))
        return getattr(_xp(x), name)(x)

    return run


def _binary(name: str) -> Callable[[Any, Any], Any]:
    def run(x: Any, y: Any) -> Any:
        ref = _ref([x, y])
        return getattr(_xp(ref), name)(_lift(x, ref), _lift(y, ref))

    return run


def _where(c: Any, x: Any, y: Any) -> Any:
    cond = _truth(c)
    if not isinstance(cond, (torch.Tensor, np.ndarray)):  # a scalar condition picks a side
        return _num(x) if bool(cond) else _num(y)
    ref = _ref([x, y, c])
    return _xp(ref).where(cond, _lift(x, ref), _lift(y, ref))


def _minmax(name: str) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        ref = _ref(args)
        fn = getattr(_xp(ref), name)
        out = _lift(args[0], ref)
        for a in args[1:]:
            out = fn(out, _lift(a, ref))
        return out

    return run


def _clip(x: Any, lo: Any, hi: Any) -> Any:
    return _minmax("minimum")(_minmax("maximum")(x, lo), hi)


def _lerp(a: Any, b: Any, t: Any) -> Any:
    a, b, t = _num(a), _num(b), _num(t)
    return a + (b - a) * t


def _step(edge: Any, x: Any) -> Any:
    ref = _ref([x, edge])
    return _Bool(_lift(x, ref) >= _num(edge), _float_dtype(ref))


def _smoothstep(e0: Any, e1: Any, x: Any) -> Any:
    e0, e1 = _num(e0), _num(e1)
    t = _clip((_num(x) - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _luma(x: Any) -> Any:
    t = _lift(x, _ref([x]))
    if t.ndim == 0 or t.shape[-1] not in (1, 3, 4):
        raise ValueError(f"luma() needs 1, 3 or 4 channels in the last axis, got shape {tuple(t.shape)}")
    if t.shape[-1] == 1:
        return t
    weights = [[0.2126], [0.7152], [0.0722]]
    if isinstance(t, torch.Tensor):
        w = torch.tensor(weights, dtype=t.dtype, device=t.device)
    else:
        w = np.array(weights, dtype=t.dtype)
    return t[..., :3] @ w


#: name -> (function, min args, max args or None for any number)
FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int | None]] = {
    **{n: (_unary(n), 1, 1) for n in ("sqrt", "exp", "log", "log2", "log10", "sin", "cos", "tan", "tanh")},
    **{n: (_unary(n), 1, 1) for n in ("abs", "sign", "floor", "ceil", "round")},
    "asin": (_unary("arcsin"), 1, 1),
    "acos": (_unary("arccos"), 1, 1),
    "atan": (_unary("arctan"), 1, 1),
    "luma": (_luma, 1, 1),
    "atan2": (_binary("arctan2"), 2, 2),
    "hypot": (_binary("hypot"), 2, 2),
    "pow": (lambda x, y: _num(x) ** _num(y), 2, 2),
    "clip": (_clip, 3, 3),
    "min": (_minmax("minimum"), 2, None),
    "max": (_minmax("maximum"), 2, None),
    "where": (_where, 3, 3),
    "lerp": (_lerp, 3, 3),
    "step": (_step, 2, 2),
    "smoothstep": (_smoothstep, 3, 3),
}
FUNCTIONS["clamp"] = FUNCTIONS["clip"]
FUNCTIONS["mix"] = FUNCTIONS["lerp"]
