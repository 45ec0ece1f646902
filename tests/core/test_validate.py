"""Validation: every ComfyUI error type, all errors at once, cycles, branch isolation."""

from __future__ import annotations

import pytest

from nodeloom.core.registry import PackInfo
from nodeloom.errors import ValidationError


def _types(result):
    return {nid: sorted(e["type"] for e in entry["errors"]) for nid, entry in result.node_errors.items()}


def test_valid_prompt(engine):
    p = {"1": {"class_type": "Const", "inputs": {"value": 3}}, "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}}}
    r = engine.validate(p)
    assert r.ok and r.outputs_to_execute == ["2"] and r.node_errors == {}


def test_structural_errors(engine):
    assert engine.validate([]).error["type"] == "invalid_prompt"
    assert engine.validate({}).error["type"] == "invalid_prompt"
    r = engine.validate({"1": {"class_type": "Const", "inputs": {"value": 1}}})
    assert not r.ok and r.error["type"] == "prompt_no_outputs"


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({}, "required_input_missing"),
        ({"value": ["1", 0, 3]}, "bad_linked_input"),
        ({"value": ["nope", 0]}, "bad_linked_input"),
        ({"value": "abc"}, "invalid_input_type"),
        ({"value": -5000}, "value_smaller_than_min"),
        ({"value": 5000}, "value_bigger_than_max"),
    ],
)
def test_input_error_types(engine, inputs, expected):
    p = {"1": {"class_type": "Const", "inputs": inputs}, "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}}}
    r = engine.validate(p)
    assert not r.ok
    assert r.error["type"] == "prompt_outputs_failed_validation"
    assert _types(r) == {"1": [expected]}
    assert r.node_errors["1"]["dependent_outputs"] == ["2"]
    assert r.node_errors["1"]["class_type"] == "Const"


def test_return_type_mismatch_and_combo(engine):
    class Combo:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"mode": (["a", "b"],), "n": ("STRING",)}}

        RETURN_TYPES = ("STRING",)
        FUNCTION = "run"

        def run(self, mode, n):
            return (mode,)

    engine.registry.register_pack(PackInfo("c", "c"), {"Combo": Combo})
    p = {
        "1": {"class_type": "Combo", "inputs": {"mode": "z", "n": "x"}},
        "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 1}},
        "3": {"class_type": "Output", "inputs": {"value": ["2", 0]}},
    }
    r = engine.validate(p)
    assert _types(r) == {"1": ["value_not_in_list"], "2": ["return_type_mismatch"]}
    assert "'z' not in ['a', 'b']" in r.node_errors["1"]["errors"][0]["details"]


def test_custom_validation_and_exception(engine):
    class Broken:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"value": ("INT",)}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        @classmethod
        def VALIDATE_INPUTS(cls, value):
            raise RuntimeError("validator crashed")

    engine.registry.register_pack(PackInfo("b", "b"), {"Broken": Broken})
    p = {
        "1": {"class_type": "Validated", "inputs": {"value": -3}},
        "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}},
        "3": {"class_type": "Broken", "inputs": {"value": 1}},
        "4": {"class_type": "Output", "inputs": {"value": ["3", 0]}},
    }
    r = engine.validate(p)
    assert _types(r) == {"1": ["custom_validation_failed"], "3": ["exception_during_validation"]}
    assert "value must be non-negative" in r.node_errors["1"]["errors"][0]["details"]


def test_validate_inputs_disables_builtin_range_check(engine):
    class Wide:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"value": ("INT", {"min": 0, "max": 1})}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        @classmethod
        def VALIDATE_INPUTS(cls, value):
            return True

        def run(self, value):
            return (value,)

    engine.registry.register_pack(PackInfo("w", "w"), {"Wide": Wide})
    p = {"1": {"class_type": "Wide", "inputs": {"value": 99}}, "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}}}
    assert engine.validate(p).ok


def test_input_types_argument_receives_linked_types(engine):
    seen = {}

    class Typed:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"value": ("FLOAT",)}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        @classmethod
        def VALIDATE_INPUTS(cls, input_types):
            seen.update(input_types)
            return True

        def run(self, value):
            return (int(value),)

    engine.registry.register_pack(PackInfo("t", "t"), {"Typed": Typed})
    p = {"1": {"class_type": "Const", "inputs": {"value": 1}}, "2": {"class_type": "Typed", "inputs": {"value": ["1", 0]}}, "3": {"class_type": "Output", "inputs": {"value": ["2", 0]}}}
    assert engine.validate(p).ok
    assert seen == {"value": "INT"}


def test_all_errors_reported_at_once(engine):
    p = {
        "1": {"class_type": "Const", "inputs": {"value": 9999}},
        "2": {"class_type": "Add", "inputs": {"b": "x"}},
        "3": {"class_type": "Output", "inputs": {"value": ["1", 0]}},
        "4": {"class_type": "Output", "inputs": {"value": ["2", 0]}},
    }
    r = engine.validate(p)
    assert _types(r) == {"1": ["value_bigger_than_max"], "2": ["invalid_input_type", "required_input_missing"]}


def test_missing_node_type_in_one_branch_other_output_runs(engine):
    p = {
        "1": {"class_type": "NoSuchNode", "inputs": {}},
        "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}},
        "3": {"class_type": "Const", "inputs": {"value": 4}},
        "4": {"class_type": "Output", "inputs": {"value": ["3", 0]}},
    }
    r = engine.validate(p)
    assert r.ok and r.outputs_to_execute == ["4"]
    assert r.node_errors["1"]["errors"][0]["message"] == "Cannot execute because node NoSuchNode does not exist."
    result = engine.run(p)
    assert result.status == "success" and result.outputs == {"4": {"values": [4]}}
    assert "1" in result.node_errors


def test_unknown_class_suggests_closest(engine):
    r = engine.validate({"1": {"class_type": "Cnst", "inputs": {}}, "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}}})
    assert r.node_errors["1"]["errors"][0]["extra_info"]["suggestion"] == "Const"


def test_static_cycle_is_a_validation_error(engine):
    p = {
        "1": {"class_type": "Add", "inputs": {"a": ["2", 0], "b": 1}},
        "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 1}},
        "3": {"class_type": "Output", "inputs": {"value": ["2", 0]}},
    }
    r = engine.validate(p)
    assert not r.ok
    assert any(e["type"] == "dependency_cycle" for entry in r.node_errors.values() for e in entry["errors"])
    with pytest.raises(ValidationError) as info:
        engine.run(p)
    assert info.value.type == "prompt_outputs_failed_validation"
    assert info.value.node_errors


def test_literal_coercion_and_value_unwrap(engine):
    p = {"1": {"class_type": "Const", "inputs": {"value": "7"}}, "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}}}
    assert engine.run(p).value("1") == 7
    p["1"]["inputs"]["value"] = {"__value__": 8}
    assert engine.run(p).value("1") == 8
    assert p["1"]["inputs"]["value"] == {"__value__": 8}  # the caller's prompt is not mutated


def test_partial_execution_targets(engine, calls):
    p = {
        "1": {"class_type": "Const", "inputs": {"value": 1}},
        "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}},
        "3": {"class_type": "Const", "inputs": {"value": 2}},
        "4": {"class_type": "Output", "inputs": {"value": ["3", 0]}},
    }
    result = engine.run(p, targets=["4"])
    assert set(result.outputs) == {"4"}
    assert "1" not in result.node_runs
    assert engine.validate(p, targets=[]).error["type"] == "prompt_no_outputs"


def test_deep_chain_validates_without_recursion_limit(engine):
    n = 5000
    p = {"0": {"class_type": "Const", "inputs": {"value": 0}}}
    for i in range(1, n):
        p[str(i)] = {"class_type": "Add", "inputs": {"a": [str(i - 1), 0], "b": 0}}
    p["out"] = {"class_type": "Output", "inputs": {"value": [str(n - 1), 0]}}
    assert engine.validate(p).ok
    assert engine.run(p).outputs["out"] == {"values": [0]}


def test_validation_error_carries_node_errors_in_its_payload(engine):
    p = {"1": {"class_type": "Const", "inputs": {}}, "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}}}
    with pytest.raises(ValidationError) as info:
        engine.run(p)
    payload = info.value.to_dict()
    assert set(payload) == {"type", "message", "details", "extra_info", "node_errors"}
    assert payload["node_errors"] == info.value.node_errors and "1" in payload["node_errors"]
    plain = ValidationError("`steps` must be ≥ 1, got 0")
    assert plain.node_errors == {} and set(plain.to_dict()) == {"type", "message", "details", "extra_info"}
