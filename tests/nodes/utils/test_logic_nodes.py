"""Switch, math expression, number convert, custom combo, seed and preview-as-text nodes."""

from __future__ import annotations

import math

import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.nodes.utils import NODE_CLASS_MAPPINGS as NODES
from nodeloom.ops.expr import ExpressionError
from nodeloom.ops.scalar_expr import evaluate_scalar
from tests.nodes.conftest import run_prompt


def call(class_type: str, **inputs):
    cls = NODES[class_type]
    return getattr(cls(), cls.FUNCTION)(**inputs)


def test_scalar_expressions_follow_python_arithmetic_and_functions() -> None:
    assert evaluate_scalar("a + b", {"a": 2, "b": 3}) == 5
    assert evaluate_scalar("a > 2048", {"a": 4096}) is True
    assert evaluate_scalar("sum(values) / 2", {}, values=[1, 2, 3]) == 3.0
    assert evaluate_scalar("max(a, b) if a != b else -1", {"a": 1.5, "b": 7}) == 7
    assert evaluate_scalar("floor(log2(a)) + ceil(0.2) + round(2.6) + int(3.9)", {"a": 1024}) == 10 + 1 + 3 + 3
    assert evaluate_scalar("not a and (b or c)", {"a": False, "b": 0, "c": True}) is True
    assert evaluate_scalar("2 ** 10 % 1000 // 3", {}) == 8
    assert math.isclose(evaluate_scalar("sqrt(pow(a, 2)) * pi", {"a": 2.0}), 2 * math.pi)


@pytest.mark.parametrize(("source", "message"), [
    ("__import__('os')", "not a known function"),
    ("a.real", "`Attribute` is not allowed"),
    ("values[0]", "`Subscript` is not allowed"),
    ("'text'", "only numbers"),
    ("lambda: 1", "`Lambda` is not allowed"),
    ("9 ** 9 ** 9", "too large"),
    ("1 / 0", "division by zero"),
    ("b + 1", "unknown name `b`"),
    ("", "empty"),
    ("a +", "syntax error"),
])
def test_scalar_expressions_refuse_what_is_not_math(source: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        evaluate_scalar(source, {"a": 1})


def test_math_expression_node_outputs_float_int_and_bool() -> None:
    assert call("ComfyMathExpression", expression="a * b - 0.5", **{"values.a": 3, "values.b": 2.5}) == (7.0, 7, True)
    assert call("ComfyMathExpression", expression="a - a", **{"values.a": 3}) == (0.0, 0, False)
    assert call("ComfyMathExpression", expression="a and b", **{"values.a": True, "values.b": True}) == (1.0, 1, True)
    with pytest.raises(ValidationError, match="not a finite number"):
        call("ComfyMathExpression", expression="a * 1e308 * 10", **{"values.a": 10.0})
    with pytest.raises(ValidationError, match="`values.a` must be a number"):
        call("ComfyMathExpression", expression="a", **{"values.a": "3"})


def test_math_expression_declares_a_frontend_autogrow_group() -> None:
    spec = NODES["ComfyMathExpression"].INPUT_TYPES()
    kind, opts = spec["optional"]["values"]
    assert kind == "COMFY_AUTOGROW_V3" and opts["template"]["names"][:3] == ["a", "b", "c"]
    assert spec["required"]["expression"][1]["default"] == "a + b"


def test_number_convert_parses_text_and_truncates() -> None:
    assert call("ComfyNumberConvert", value="3.75") == (3.75, 3)
    assert call("ComfyNumberConvert", value=-2.5) == (-2.5, -2)
    assert call("ComfyNumberConvert", value=True) == (1.0, 1)
    assert call("ComfyNumberConvert", value=12345678901234567) == (float(12345678901234567), 12345678901234567)
    for bad, why in (("", "empty"), ("abc", "not a number"), ("inf", "not a finite"), ([1], "must be INT")):
        with pytest.raises(ValidationError, match=why):
            call("ComfyNumberConvert", value=bad)


def test_custom_combo_accepts_any_choice_and_seed_passes_through() -> None:
    assert NODES["CustomCombo"].VALIDATE_INPUTS(choice="made up") is True
    assert call("CustomCombo", choice="Grainy", index=1) == ("Grainy", 1)
    assert call("SeedNode", seed=42) == (42,)


def test_preview_any_writes_values_as_text() -> None:
    out = call("PreviewAny", source={"steps": 20, "cfg": 7.5})
    assert out["result"] == ('{\n    "steps": 20,\n    "cfg": 7.5\n}',) and out["ui"] == {"text": out["result"]}
    assert call("PreviewAny", source=3)["result"] == ("3",)
    assert call("PreviewAny", source=None)["result"] == ("None",)
    assert call("PreviewAny", source=torch.zeros(1))["result"][0].startswith("tensor(")


def test_switch_evaluates_only_the_chosen_branch(image_engine) -> None:
    prompt = {
        "s": {"class_type": "ComfySwitchNode", "inputs": {"switch": True, "on_true": ["t", 0], "on_false": ["f", 0]}},
        "t": {"class_type": "PrimitiveString", "inputs": {"value": "chosen"}},
        "f": {"class_type": "ComfyNumberConvert", "inputs": {"value": "not a number"}},
    }
    result = run_prompt(image_engine, prompt, sinks=[["s", 0]])
    assert result.ok, result.errors
    assert result.value("s") == "chosen" and "f" not in result.ran()


def test_math_expression_reads_linked_values_through_the_engine(image_engine) -> None:
    prompt = {
        "a": {"class_type": "PrimitiveInt", "inputs": {"value": 4096}},
        "b": {"class_type": "PrimitiveFloat", "inputs": {"value": 0.5}},
        "m": {"class_type": "ComfyMathExpression",
              "inputs": {"expression": "a * b > 2048", "values.a": ["a", 0], "values.b": ["b", 0]}},
        "p": {"class_type": "PreviewAny", "inputs": {"source": ["m", 1]}},
    }
    result = run_prompt(image_engine, prompt, sinks=[["m", 2]])
    assert result.ok, result.errors
    assert result.value("m", 0) == 0.0 and result.value("m", 2) is False
    assert result.outputs["p"] == {"text": ["0"]}
