"""A safe evaluator for scalar math expressions (ComfyUI's Math Expression node).

``evaluate_scalar("max(a, b) / 2 + sum(values)", {"a": 3, "b": 5}, values=[3, 5])`` parses
the text with :mod:`ast` and walks the tree itself: numbers, booleans, the given names,
arithmetic, comparisons, ``and``/``or``/``not``, conditional expressions and calls of the
functions in :data:`SCALAR_FUNCTIONS`. Nothing reaches ``eval``/``exec``; attributes,
subscripts, strings, lambdas and keywords are refused before anything runs, and powers and
shifts are bounded so one expression cannot eat the machine. Plain Python, no arrays.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nodeloom.ops.expr import MAX_DEPTH, MAX_LENGTH, MAX_NODES, ExpressionError

__all__ = ["SCALAR_FUNCTIONS", "evaluate_scalar"]

Number = int | float | bool

#: the largest magnitude an intermediate integer may reach (keeps ``9**9**9`` from running)
MAX_INT_BITS = 4096


def _flat(args: Sequence[Any]) -> list[Number]:
    """``sum(values)`` and ``max(a, b)`` alike: one list argument is spread."""
    if len(args) == 1 and isinstance(args[0], (list, tuple)):
        return list(args[0])
    return list(args)


SCALAR_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sum": lambda *a: sum(_flat(a)),
    "min": lambda *a: min(_flat(a)),
    "max": lambda *a: max(_flat(a)),
    "abs": abs,
    "round": round,
    "pow": lambda x, y: _power(x, y),
    "sqrt": math.sqrt,
    "ceil": math.ceil,
    "floor": math.floor,
    "log": math.log,
    "log2": math.log2,
    "log10": math.log10,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "int": int,
    "float": float,
}
_CONSTANTS: dict[str, Number] = {"pi": math.pi, "e": math.e, "True": True, "False": False, "true": True, "false": False}
_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
}  # fmt: skip
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}  # fmt: skip


def _power(x: Number, y: Number) -> Number:
    if isinstance(x, int) and isinstance(y, int) and y > 0 and abs(x) > 1 and y * max(abs(x), 2).bit_length() > MAX_INT_BITS:
        raise OverflowError(f"{x} ** {y} is too large")
    return x**y


def _check_int(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise OverflowError("an intermediate integer is too large")
    return value


class _Walker:
    def __init__(self, source: str, names: Mapping[str, Any]) -> None:
        self.source = source
        self.names = names

    def fail(self, node: ast.AST, message: str) -> ExpressionError:
        return ExpressionError(message, self.source, getattr(node, "col_offset", None))

    def run(self, node: ast.AST) -> Any:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise self.fail(node, f"`{type(node).__name__}` is not allowed in a math expression")
        return _check_int(method(node))

    def _Expression(self, node: ast.Expression) -> Any:
        return self.run(node.body)

    def _Constant(self, node: ast.Constant) -> Any:
        if isinstance(node.value, bool) or isinstance(node.value, (int, float)):
            return node.value
        raise self.fail(node, f"only numbers are allowed as literals, got {node.value!r}")

    def _Name(self, node: ast.Name) -> Any:
        if node.id in self.names:
            return self.names[node.id]
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise self.fail(node, f"unknown name `{node.id}`; known: {sorted(set(self.names) | set(_CONSTANTS))}")

    def _BinOp(self, node: ast.BinOp) -> Any:
        left, right = self.run(node.left), self.run(node.right)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise self.fail(node, f"the operator `{type(node.op).__name__}` is not allowed")
        return op(left, right)

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = self.run(node.operand)
        if isinstance(node.op, ast.Not):
            return not value
        if isinstance(node.op, ast.USub):
            return -value
        if isinstance(node.op, ast.UAdd):
            return +value
        raise self.fail(node, "`~` is not allowed")

    def _BoolOp(self, node: ast.BoolOp) -> Any:
        values = [self.run(v) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)

    def _Compare(self, node: ast.Compare) -> bool:
        left = self.run(node.left)
        for op, comp in zip(node.ops, node.comparators):
            fn = _COMPARE.get(type(op))
            if fn is None:
                raise self.fail(node, f"the comparison `{type(op).__name__}` is not allowed")
            right = self.run(comp)
            if not fn(left, right):
                return False
            left = right
        return True

    def _IfExp(self, node: ast.IfExp) -> Any:
        return self.run(node.body) if self.run(node.test) else self.run(node.orelse)

    def _Call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name) or node.func.id not in SCALAR_FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise self.fail(node, f"`{name}` is not a known function; allowed: {sorted(SCALAR_FUNCTIONS)}")
        if node.keywords:
            raise self.fail(node.keywords[0].value, "keyword arguments are not allowed")
        args = [self.run(a) for a in node.args]
        try:
            return SCALAR_FUNCTIONS[node.func.id](*args)
        except (TypeError, ValueError) as exc:
            raise self.fail(node, f"`{node.func.id}`: {exc}") from None


def _parse(source: str) -> ast.Expression:
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("the expression is empty", str(source), None)
    if len(source) > MAX_LENGTH:
        raise ExpressionError(f"the expression is {len(source)} characters long; the limit is {MAX_LENGTH}", source[:60] + "…", None)
    text = " ".join(source.split())
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error: {exc.msg}", text, (exc.offset or 1) - 1) from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ExpressionError(f"the expression has more than {MAX_NODES} parts", text, None)
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ExpressionError(f"the expression is nested too deeply (more than {MAX_DEPTH} levels)", text, None)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return tree


def evaluate_scalar(source: str, variables: Mapping[str, Number], values: Sequence[Number] = ()) -> Number:
    """Evaluate a scalar math expression.

    Args:
        source: the expression (line breaks are treated as spaces).
        variables: names it may use, e.g. ``{"a": 2, "b": 0.5}``.
        values: bound to the name ``values`` (a list for ``sum``/``min``/``max``).

    Returns:
        The result: an int, float or bool.

    Raises:
        ExpressionError: malformed, not allowed, or failed while running (division by zero,
            a math domain error, a too-large number), with the column where it applies.
    """
    tree = _parse(source)
    text = " ".join(source.split())
    walker = _Walker(text, {**variables, "values": list(values)})
    try:
        return walker.run(tree)
    except ExpressionError:
        raise
    except (ArithmeticError, ValueError, TypeError) as exc:
        raise ExpressionError(f"the expression failed: {exc}", text, None) from None
