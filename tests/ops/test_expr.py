"""Expression evaluator: equals hand-written numpy; hostile inputs are refused, nothing runs."""

from __future__ import annotations

import builtins
import os

import numpy as np
import pytest
import torch

from nodeloom.ops.expr import FUNCTIONS, MAX_LENGTH, ExpressionError, compile_expression, evaluate

RNG = np.random.default_rng(7)
A = RNG.random((2, 8, 8, 3), dtype=np.float32)
B = RNG.random((2, 8, 8, 3), dtype=np.float32)
M = RNG.random((2, 8, 8, 1), dtype=np.float32)
VARS = {"a": torch.from_numpy(A), "b": torch.from_numpy(B), "mask": torch.from_numpy(M), "x": 0.25}

CASES = [
    ("where(mask > 0.5, a * 1.2, b) ** 0.9", lambda: np.where(M > 0.5, A * 1.2, B) ** 0.9),
    ("a + b * x - 1 / (b + 1)", lambda: A + B * 0.25 - 1 / (B + 1)),
    ("sqrt(a) + exp(-b) + log(a + 1) + abs(a - b)", lambda: np.sqrt(A) + np.exp(-B) + np.log(A + 1) + np.abs(A - B)),
    ("sin(a * pi) * cos(b) + tan(x)", lambda: np.sin(A * np.pi) * np.cos(B) + np.tan(0.25)),
    ("clip(a * 2 - 0.5, 0, 1)", lambda: np.clip(A * 2 - 0.5, 0, 1)),
    ("min(a, b, mask) + max(a, 0.3)", lambda: np.minimum(np.minimum(A, B), M) + np.maximum(A, 0.3)),
    ("pow(a, 2.2) + a ** b", lambda: A**2.2 + A**B),
    ("lerp(a, b, mask)", lambda: A + (B - A) * M),
    ("(a > 0.5) & (b < 0.5) | (mask >= 0.9)", lambda: ((A > 0.5) & (B < 0.5) | (M >= 0.9)).astype(np.float32)),
    ("a > 0.5 and not b > 0.5", lambda: ((A > 0.5) & ~(B > 0.5)).astype(np.float32)),
    ("0.2 < a < 0.8", lambda: ((A > 0.2) & (A < 0.8)).astype(np.float32)),
    ("a if mask > 0.5 else 1 - a", lambda: np.where(M > 0.5, A, 1 - A)),
    ("(a > 0.5) + (b > 0.5)", lambda: (A > 0.5).astype(np.float32) + (B > 0.5).astype(np.float32)),
    ("a % 0.3 + a // 0.3", lambda: A % 0.3 + A // 0.3),
    ("atan2(a - 0.5, b - 0.5) + hypot(a, b)", lambda: np.arctan2(A - 0.5, B - 0.5) + np.hypot(A, B)),
    ("smoothstep(0.2, 0.8, a) + step(0.5, b)", lambda: _smooth(A) + (B >= 0.5)),
    ("luma(a) * mask", lambda: (A @ np.array([[0.2126], [0.7152], [0.0722]], dtype=np.float32)) * M),
    ("-a + +b", lambda: -A + B),
]


def _smooth(x):
    t = np.clip((x - 0.2) / 0.6, 0, 1)
    return t * t * (3 - 2 * t)


@pytest.mark.parametrize("source,expected", CASES, ids=[c[0] for c in CASES])
def test_equals_hand_written_numpy(source, expected):
    out = evaluate(source, VARS)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), expected(), rtol=2e-5, atol=2e-6)


def test_inputs_are_not_mutated_and_numpy_inputs_stay_numpy():
    before = {k: v.clone() for k, v in VARS.items() if isinstance(v, torch.Tensor)}
    for source in ("(a * 2 + b) ** 2 - mask", "-a * 3", "where(mask > 0.5, a, b) * 2"):
        evaluate(source, VARS)
    for k, v in before.items():
        torch.testing.assert_close(VARS[k], v)
    out = evaluate("a * 2", {"a": A})
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(A * 2, out)


def test_scalars_and_constants():
    assert evaluate("1 + 2 * 3", {}) == 7.0
    assert evaluate("9 ** 9 ** 9 ** 9", {}) == float("inf")
    assert evaluate("1 / 0", {}) == float("inf")
    assert evaluate("pi", {}) == pytest.approx(np.pi)


def test_broadcasting_mask_against_image_and_batch_of_one():
    out = evaluate("a * mask", {"a": torch.ones(1, 4, 4, 3), "mask": torch.zeros(3, 4, 4, 1)})
    assert out.shape == (3, 4, 4, 3)


HOSTILE = [
    ("__import__('os').system('echo hacked')", "attribute access"),
    ("__import__('os')", "not a known function"),
    ("a.__class__.__bases__", "attribute access"),
    ("(lambda: 1)()", "`lambda` is not allowed"),
    ("[x for x in a]", "not allowed"),
    ("a[0]", "subscripts"),
    ("'rm -rf'", "only numbers"),
    ("open('/etc/passwd')", "not a known function"),
    ("eval('1')", "not a known function"),
    ("sqrt(a, out=b)", "keyword arguments"),
    ("(y := a)", "assignment"),
    ("sqrt(*a)", "unpacking"),
    ("{'a': 1}", "not allowed"),
    ("a +", "syntax error"),
    ("a\n+ b", "single line"),
    ("a" + " + a" * 300, "more than"),
    ("sqrt(" * 60 + "a" + ")" * 60, "nested too deeply"),
    ("(" * 300 + "a" + ")" * 300, "syntax error"),
    ("-" * 200 + "a", "nested too deeply"),
    ("-" * 1000 + "a", "more than"),
    ("a" * (MAX_LENGTH + 1), "characters long"),
    ("foo + a", "unknown name `foo`"),
    ("sqrt", "must be called"),
    ("max(a)", "takes 2 or more"),
    ("", "empty"),
]


@pytest.mark.parametrize("source,fragment", HOSTILE, ids=[h[0][:40] for h in HOSTILE])
def test_hostile_inputs_give_clear_errors_and_run_nothing(source, fragment, monkeypatch):
    ran = []
    monkeypatch.setattr(os, "system", lambda *a: ran.append(a))
    monkeypatch.setattr(builtins, "open", lambda *a, **k: ran.append(a))
    with pytest.raises(ExpressionError) as info:
        evaluate(source, {"a": torch.zeros(1, 2, 2, 3), "b": 0.5})
    assert ran == []
    assert fragment in str(info.value)
    assert info.value.to_dict()["type"] == "expression_error"


def test_errors_point_at_the_column():
    with pytest.raises(ExpressionError) as info:
        compile_expression("a * 2 + foo", ["a"])
    assert info.value.position == 8
    assert str(info.value).endswith("a * 2 + foo\n          ^")


def test_runtime_errors_name_the_problem():
    with pytest.raises(ExpressionError, match="do not broadcast"):
        evaluate("a + b", {"a": torch.zeros(1, 4, 4, 3), "b": torch.zeros(1, 5, 5, 3)})
    with pytest.raises(ExpressionError, match="has no value"):
        compile_expression("a + b", ["a", "b"]).run({"a": torch.zeros(2)})
    with pytest.raises(ExpressionError, match="luma"):
        evaluate("luma(a)", {"a": torch.zeros(1, 4, 4, 2)})


def test_function_table_is_the_documented_whitelist():
    assert {"sqrt", "exp", "log", "sin", "cos", "abs", "clip", "min", "max", "pow", "where", "lerp"} <= set(FUNCTIONS)
    assert not {"eval", "exec", "open", "getattr", "__import__"} & set(FUNCTIONS)


@pytest.mark.parametrize("source,expected", CASES, ids=[c[0] for c in CASES])
def test_torch_backend_matches_numpy(source, expected):
    # float64 CPU tensors that require grad stay on the torch path (the path CUDA inputs take)
    tvars = {k: (torch.from_numpy(v.numpy().astype(np.float64)).requires_grad_(True) if isinstance(v, torch.Tensor) else v)
             for k, v in VARS.items()}
    with torch.no_grad():
        out = evaluate(source, tvars)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    np.testing.assert_allclose(out.detach().numpy(), expected(), rtol=1e-4, atol=1e-5)
