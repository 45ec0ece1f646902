"""A safe, vectorised evaluator for element-wise image expressions.

``evaluate("where(mask > 0.5, a * 1.2, b) ** 0.9", {"a": img, "b": img2, "mask": m})``
parses the text with :mod:`ast`, checks every node against a whitelist (numbers, the given
names, arithmetic, comparisons, logic, conditional expressions and calls of the functions in
:data:`FUNCTIONS`), and runs it as whole-tensor torch operations with numpy-style
broadcasting. Nothing is ever passed to ``eval``/``exec``; attribute access, subscripts,
lambdas, comprehensions, strings and keyword arguments are refused before anything runs,
as are over-long, over-large or over-deep expressions. Errors point at the column.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import torch

from nodeloom.errors import ValidationError
from nodeloom.ops.expr_functions import FUNCTIONS, _Bool, _float_dtype, _lift, _num, _raw, _ref, _truth, _where, _xp

__all__ = ["FUNCTIONS", "MAX_DEPTH", "MAX_LENGTH", "MAX_NODES", "CompiledExpression", "ExpressionError", "compile_expression", "evaluate"]

MAX_LENGTH = 2000
MAX_NODES = 500
MAX_DEPTH = 48
MAX_ELEMENTS = 1 << 28

Value = Union[torch.Tensor, np.ndarray, float]


class ExpressionError(ValidationError):
    """The expression is malformed, not allowed, or failed; ``position`` is its 0-based column."""

    type = "expression_error"

    def __init__(self, message: str, source: str, position: int | None) -> None:
        pointer = ""
        if position is not None:
            pointer = f" at column {position + 1}:\n  {source}\n  {' ' * position}^"
        super().__init__(f"{message}{pointer}", extra_info={"expression": source, "position": position})
        self.position = position


CONSTANTS = {"pi": math.pi, "e": math.e, "true": 1.0, "false": 0.0, "True": 1.0, "False": 0.0}

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda x, y: x + y,
    ast.Sub: lambda x, y: x - y,
    ast.Mult: lambda x, y: x * y,
    ast.Div: lambda x, y: x / y,
    ast.FloorDiv: lambda x, y: x // y,
    ast.Mod: lambda x, y: x % y,
    ast.Pow: lambda x, y: x**y,
}
_UFUNCS: dict[type, Any] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.true_divide,
    ast.FloorDiv: np.floor_divide,
    ast.Mod: np.remainder,
    ast.Pow: np.power,
}
_LOGIC: dict[type, str] = {
    ast.BitAnd: "logical_and",
    ast.BitOr: "logical_or",
    ast.BitXor: "logical_xor",
    ast.And: "logical_and",
    ast.Or: "logical_or",
}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Lt: lambda x, y: x < y,
    ast.LtE: lambda x, y: x <= y,
    ast.Gt: lambda x, y: x > y,
    ast.GtE: lambda x, y: x >= y,
    ast.Eq: lambda x, y: x == y,
    ast.NotEq: lambda x, y: x != y,
}
_ALLOWED = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Call, ast.Name,
    ast.Constant, ast.Load, ast.operator, ast.unaryop, ast.boolop, ast.cmpop,
)  # fmt: skip
_REFUSED_NAMES = {
    ast.Attribute: "attribute access (`.`) is not allowed",
    ast.Subscript: "subscripts (`[...]`) are not allowed",
    ast.Lambda: "`lambda` is not allowed",
    ast.NamedExpr: "assignment (`:=`) is not allowed",
    ast.Starred: "`*` unpacking is not allowed",
}


@dataclass(frozen=True)
class CompiledExpression:
    """A parsed and whitelisted expression; :meth:`run` evaluates it on tensors."""

    source: str
    tree: ast.Expression
    names: frozenset[str]

    def run(self, variables: Mapping[str, Value], *, max_elements: int | None = None) -> Value:
        """Evaluate with ``variables`` (tensors broadcast numpy-style; floats are scalars).

        ``max_elements`` (default :data:`MAX_ELEMENTS`, never above it) bounds every
        intermediate result, checked from the broadcast shapes before it is computed.

        Raises:
            ExpressionError: a name has no value, shapes do not broadcast, a result would
                exceed :data:`MAX_ELEMENTS`, or a function rejects its arguments.
        """
        missing = sorted(self.names - set(variables) - set(CONSTANTS))
        if missing:
            node = next(n for n in ast.walk(self.tree) if isinstance(n, ast.Name) and n.id == missing[0])
            raise ExpressionError(f"`{missing[0]}` has no value (connect or set that input)", self.source, node.col_offset)
        with np.errstate(all="ignore"):
            limit = MAX_ELEMENTS if not max_elements else min(max_elements, MAX_ELEMENTS)
            value = _Evaluator(self.source, variables, limit).visit(self.tree.body)
        like = next((v for v in variables.values() if isinstance(v, torch.Tensor)), None)
        return _finish(value, like)


def _fail(source: str, node: ast.AST, message: str) -> ExpressionError:
    return ExpressionError(message, source, getattr(node, "col_offset", None))


def _check_node(source: str, node: ast.AST, allowed_names: set[str], callees: set[int]) -> None:
    for kind, why in _REFUSED_NAMES.items():
        if isinstance(node, kind):
            raise _fail(source, node, why)
    if not isinstance(node, _ALLOWED):
        raise _fail(source, node, f"`{type(node).__name__}` is not allowed in an expression")
    if isinstance(node, ast.Constant) and (isinstance(node.value, (str, bytes, complex)) or node.value is None or node.value is Ellipsis):
        raise _fail(source, node, f"only numbers are allowed as literals, got {node.value!r}")
    if isinstance(node, ast.Name) and id(node) not in callees and node.id not in allowed_names | set(CONSTANTS):
        hint = " (a function must be called)" if node.id in FUNCTIONS else ""
        raise _fail(source, node, f"unknown name `{node.id}`{hint}; known: {sorted(allowed_names | set(CONSTANTS))}")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            _check_node(source, node.func, allowed_names, callees)
            raise _fail(source, node, "only the listed functions may be called, by name")
        if node.func.id not in FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise _fail(source, node, f"`{name}` is not a known function; allowed: {sorted(FUNCTIONS)}")
        if node.keywords:
            raise _fail(source, node.keywords[0].value, "keyword arguments are not allowed")
        _, lo, hi = FUNCTIONS[node.func.id]
        n = len(node.args)
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else f"{lo} or more" if hi is None else f"{lo}..{hi}"
            raise _fail(source, node, f"`{node.func.id}` takes {want} argument(s), got {n}")


def _depth(node: ast.AST, limit: int, source: str) -> int:
    stack = [(node, 1)]
    deepest = 0
    while stack:
        cur, d = stack.pop()
        if d > limit:
            raise _fail(source, cur, f"the expression is nested too deeply (more than {limit} levels)")
        deepest = max(deepest, d)
        stack.extend((child, d + 1) for child in ast.iter_child_nodes(cur))
    return deepest


def compile_expression(source: str, names: Iterable[str]) -> CompiledExpression:
    """Parse and whitelist ``source``; nothing runs.

    Args:
        source: the expression text (one line, at most :data:`MAX_LENGTH` characters).
        names: the variable names it may use (besides ``pi``, ``e``, ``true``, ``false``).

    Returns:
        A :class:`CompiledExpression`.

    Raises:
        ExpressionError: empty, too long, a syntax error, too many nodes, too deep, or a
            construct outside the whitelist (with its column).
    """
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("the expression is empty", str(source), None)
    if len(source) > MAX_LENGTH:
        raise ExpressionError(f"the expression is {len(source)} characters long; the limit is {MAX_LENGTH}", source[:60] + "…", None)
    text = source.strip()
    if "\n" in text or "\r" in text:
        raise ExpressionError("the expression must be a single line", text.splitlines()[0], None)
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        col = (exc.offset or 1) - 1 if exc.lineno in (None, 1) else None
        raise ExpressionError(f"syntax error: {exc.msg}", text, col) from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise ExpressionError(f"the expression cannot be parsed: {type(exc).__name__}", text, None) from None
    allowed = set(names)
    callees = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    count = 0
    for node in ast.walk(tree):
        count += 1
        if count > MAX_NODES:
            raise _fail(text, node, f"the expression has more than {MAX_NODES} parts")
        _check_node(text, node, allowed, callees)
    _depth(tree, MAX_DEPTH, text)
    used = frozenset(
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in callees and n.id not in CONSTANTS
    )
    return CompiledExpression(text, tree, used)


def evaluate(source: str, variables: Mapping[str, Value]) -> Value:
    """Compile and run ``source`` with ``variables`` (see :class:`CompiledExpression`).

    Returns:
        A tensor (or a float when every operand is a scalar).

    Raises:
        ExpressionError: see :func:`compile_expression` and :meth:`CompiledExpression.run`.
    """
    return compile_expression(source, variables.keys()).run(variables)


class _Evaluator:
    """Walks a whitelisted tree; each node becomes one vectorised array operation.

    CPU tensors are evaluated as zero-copy numpy views (numpy reuses freed buffers, torch's
    CPU allocator pays page faults for every large temporary); other devices use torch.
    """

    def __init__(self, source: str, variables: Mapping[str, Value], max_elements: int = MAX_ELEMENTS) -> None:
        self.source = source
        self.max_elements = max_elements
        self.vars = {k: _backend_view(v) for k, v in variables.items()}

    def visit(self, node: ast.AST) -> Any:
        return getattr(self, f"_{type(node).__name__}")(node)

    def _guard(self, node: ast.AST, *values: Any) -> Any:
        shapes = [tuple(_raw(v).shape) for v in values if isinstance(_raw(v), (torch.Tensor, np.ndarray))]
        if not shapes:
            return None
        try:
            shape = np.broadcast_shapes(*shapes)
        except ValueError:
            raise _fail(self.source, node, f"shapes {shapes} do not broadcast together") from None
        if math.prod(shape) > self.max_elements:
            raise _fail(self.source, node, f"the result would have {math.prod(shape)} elements (limit {self.max_elements})")
        return _ref(values)

    def _Constant(self, node: ast.Constant) -> Any:
        return float(node.value)

    def _Name(self, node: ast.Name) -> Any:
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        return self.vars[node.id]

    def _BinOp(self, node: ast.BinOp) -> Any:
        x, y = self.visit(node.left), self.visit(node.right)
        op = type(node.op)
        ref = self._guard(node, x, y)
        if op in _LOGIC:
            return self._logic(_LOGIC[op], ref, x, y)
        if op not in _BINOPS:
            raise _fail(self.source, node, f"operator `{op.__name__}` is not allowed")
        if ref is None:
            # Scalars go through float64 numpy: 9 ** 9 ** 9 becomes inf instead of a huge
            # int or an OverflowError, and 1 / 0 becomes inf as it would element-wise.
            return float(_BINOPS[op](np.float64(_num(x)), np.float64(_num(y))))
        return self._arith(op, _num(x), _num(y))

    def _arith(self, op: type, x: Any, y: Any) -> Any:
        # Write into the left operand when it is a numpy temporary this evaluation made
        # (owns its data, is no input, already has the result's shape and dtype): one
        # allocation fewer per operator, so long expressions stay near copy bandwidth.
        if (
            isinstance(x, np.ndarray)
            and x.flags.owndata
            and x.flags.writeable
            and not any(x is v for v in self.vars.values())
            and np.broadcast_shapes(x.shape, np.shape(y)) == x.shape
            and np.result_type(x, y) == x.dtype
        ):
            return _UFUNCS[op](x, y, out=x)
        return _BINOPS[op](x, y)

    def _logic(self, name: str, ref: Any, *values: Any) -> _Bool:
        xp = _xp(ref)
        out = _truth(values[0])
        for v in values[1:]:
            out = getattr(xp, name)(out, _truth(v))
        return _Bool(out, _float_dtype(ref))

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        x = self.visit(node.operand)
        if isinstance(node.op, ast.USub):
            return -_num(x)
        if isinstance(node.op, ast.UAdd):
            return _num(x)
        return _Bool(~_truth(x), _float_dtype(_ref([x])))  # `not x`, `~x`: element-wise

    def _BoolOp(self, node: ast.BoolOp) -> Any:
        values = [self.visit(v) for v in node.values]
        return self._logic(_LOGIC[type(node.op)], self._guard(node, *values), *values)

    def _Compare(self, node: ast.Compare) -> Any:
        left = self.visit(node.left)
        result: Any = None
        ref: Any = None
        for op, comp in zip(node.ops, node.comparators):
            right = self.visit(comp)
            cur_ref = self._guard(node, left, right)
            ref = cur_ref if ref is None else ref
            cur = _COMPARE[type(op)](_lift(left, cur_ref), _num(right))
            result = cur if result is None else _xp(ref).logical_and(result, cur)
            left = right
        return _Bool(result, _float_dtype(ref))

    def _IfExp(self, node: ast.IfExp) -> Any:
        c, x, y = self.visit(node.test), self.visit(node.body), self.visit(node.orelse)
        self._guard(node, c, x, y)
        return _where(c, x, y)

    def _Call(self, node: ast.Call) -> Any:
        args = [self.visit(a) for a in node.args]
        self._guard(node, *args)
        name = node.func.id  # type: ignore[attr-defined]
        try:
            return FUNCTIONS[name][0](*args)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise _fail(self.source, node, f"`{name}` failed: {exc}") from None


def _backend_view(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        if v.device.type == "cpu" and v.dtype in (torch.float32, torch.float64) and not v.requires_grad:
            return v.numpy()
        return v
    if isinstance(v, np.ndarray):
        return v
    return float(v)


def _finish(value: Any, like: Any) -> Value:
    """Numbers out, as a torch tensor when any input was one."""
    value = _num(value)
    if isinstance(value, np.ndarray) and isinstance(like, torch.Tensor):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return float(value)
    return value
