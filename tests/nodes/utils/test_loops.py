"""Start Loop / End Loop: the body runs once per iteration (simple, For and List modes), carries
a value from one iteration to the next, and End Loop returns the last or every output."""

from __future__ import annotations

from typing import Any

import pytest

from nodeloom.errors import ValidationError
from nodeloom.nodes.utils.loop_graph import iteration_plan


def _loop(mode: dict[str, Any], body: dict[str, Any], accumulate: bool, **start: Any) -> dict[str, Any]:
    return {
        "s": {"class_type": "StartLoop", "inputs": {**mode, "cache_iterations": False, **start}},
        **body,
        "e": {"class_type": "EndLoop", "inputs": {"output_value": ["m", 0], "next_iteration_value": ["m", 0],
                                                  "accumulate": accumulate}},
        "v": {"class_type": "PreviewAny", "inputs": {"source": ["e", 0]}},
    }


def _math(expression: str, **values: Any) -> dict[str, Any]:
    return {"m": {"class_type": "ComfyMathExpression",
                  "inputs": {"expression": expression, **{f"values.{k}": v for k, v in values.items()}}}}


def test_simple_loop_carries_a_value_and_accumulates(image_engine: Any) -> None:
    init = {"init": {"class_type": "PrimitiveFloat", "inputs": {"value": 1.0}}}
    body = {**init, **_math("a * 2 + b", a=["s", 4], b=["s", 0])}
    mode = {"mode": "simple", "mode.num_iterations": 3}
    every = image_engine.run(_loop(mode, body, True, initial_iteration_value=["init", 0]))
    assert every.status == "success", every.errors
    assert every.value("e") == [2.0, 5.0, 12.0]  # 1·2+0, 2·2+1, 5·2+2
    last = image_engine.run(_loop(mode, body, False, initial_iteration_value=["init", 0]))
    assert last.value("e") == 12.0  # one item
    init["init"]["inputs"]["value"] = 2.0  # upstream of the body: every iteration runs again
    again = image_engine.run(_loop(mode, body, True, initial_iteration_value=["init", 0]))
    assert again.value("e") == [4.0, 9.0, 20.0]


def test_for_loop_indices_and_flags(image_engine: Any) -> None:
    mode = {"mode": "For", "mode.start_iteration_index": 2, "mode.max_iteration": 9, "mode.step": 3}
    indices = image_engine.run(_loop(mode, _math("a", a=["s", 0]), True))
    assert indices.status == "success", indices.errors
    assert indices.value("e") == [2.0, 5.0, 8.0]
    flags = image_engine.run(_loop(mode, _math("a + 10 * b", a=["s", 1], b=["s", 2]), True))
    assert flags.value("e") == [1.0, 0.0, 10.0]  # is_first on the first, is_last on the last


def test_list_loop_visits_every_item(image_engine: Any) -> None:
    prompt = {
        "x": {"class_type": "PrimitiveFloat", "inputs": {"value": 3.0}},
        "y": {"class_type": "PrimitiveFloat", "inputs": {"value": 4.0}},
        "l": {"class_type": "CreateList", "inputs": {"inputs.input0": ["x", 0], "inputs.input1": ["y", 0]}},
        **_loop({"mode": "List", "mode.list": ["l", 0]}, _math("a * a", a=["s", 3]), True),
    }
    result = image_engine.run(prompt)
    assert result.status == "success", result.errors
    assert result.value("e") == [9.0, 16.0]


def test_zero_iterations_skip_the_body(image_engine: Any) -> None:
    result = image_engine.run(_loop({"mode": "simple", "mode.num_iterations": 0}, _math("a", a=["s", 0]), True))
    assert result.status == "success", result.errors
    assert "m" not in result.outputs and "e" not in result.outputs


def test_iteration_plans() -> None:
    assert iteration_plan({"mode": ["simple"], "mode.num_iterations": [2]}) == ([0, 1], None)
    assert iteration_plan({"mode": ["For"], "mode.start_iteration_index": [5], "mode.max_iteration": [0],
                           "mode.step": [1]}) == ([], None)
    assert iteration_plan({"mode": ["List"], "mode.list": ["a", "b"]}) == ([0, 1], ["a", "b"])
    with pytest.raises(ValidationError, match="mode.step"):
        iteration_plan({"mode": ["For"], "mode.step": [0]})


def test_end_loop_without_start_loop_is_an_error(image_engine: Any) -> None:
    prompt = {"m": {"class_type": "ComfyMathExpression", "inputs": {"expression": "1"}},
              "e": {"class_type": "EndLoop", "inputs": {"output_value": ["m", 0], "accumulate": False}},
              "v": {"class_type": "PreviewAny", "inputs": {"source": ["e", 0]}}}
    result = image_engine.run(prompt)
    assert result.status == "error" and "no Start Loop upstream" in result.errors[0]["exception_message"]


def test_nested_loops_pair_inside_out(image_engine: Any) -> None:
    prompt = {
        "os": {"class_type": "StartLoop", "inputs": {"mode": "simple", "mode.num_iterations": 2, "cache_iterations": False}},
        "is": {"class_type": "StartLoop", "inputs": {"mode": "simple", "mode.num_iterations": 3, "cache_iterations": False,
                                                     "parent_iteration": ["os", 0]}},
        **_math("a + 10 * b", a=["is", 0], b=["os", 0]),
        "ie": {"class_type": "EndLoop", "inputs": {"output_value": ["m", 0], "accumulate": True}},
        "oe": {"class_type": "EndLoop", "inputs": {"output_value": ["ie", 0], "accumulate": True}},
        "v": {"class_type": "PreviewAny", "inputs": {"source": ["oe", 0]}},
    }
    result = image_engine.run(prompt)
    assert result.status == "success", result.errors
    assert result.value("oe") == [0.0, 1.0, 2.0, 10.0, 11.0, 12.0]
