"""The utils pack's dynamic inputs (Autogrow groups, dynamic combos) declared the declarative way
are expanded and checked per template and option like V3 ones — on hand-made prompts and on
every use of these nodes in the official templates, with the widget values the templates carry."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from nodeloom.core.dynamic_inputs import expand_input_types
from nodeloom.core.graph import input_info
from nodeloom.core.workflow_ui import ui_to_api
from nodeloom.nodes.utils import NODE_CLASS_MAPPINGS as NODES

DYNAMIC = sorted(name for name, cls in NODES.items() if getattr(cls, "EXPAND_INPUT_TYPES", None))
_VALUE_ERRORS = {"value_not_in_list", "value_bigger_than_max", "value_smaller_than_min", "invalid_input_type",
                 "return_type_mismatch"}


def _errors(engine: Any, prompt: dict[str, Any], node: str) -> list[tuple[str, str]]:
    checked = engine.validate(prompt)
    entry = checked.node_errors.get(node) or {"errors": []}
    return [(e["type"], e["extra_info"].get("input_name", "")) for e in entry["errors"]]


def _sink(link: list[Any]) -> dict[str, Any]:
    return {"class_type": "PreviewAny", "inputs": {"source": link}}


def test_every_dynamic_declaration_gets_the_expansion_hook() -> None:
    assert {"ComfyMathExpression", "StringFormat", "BatchImagesNode", "CreateList", "ResizeImageMaskNode",
            "SaveImageAdvanced", "ColorTransfer"} <= set(DYNAMIC)
    assert getattr(NODES["GetImageSize"], "EXPAND_INPUT_TYPES", None) is None


def test_autogrow_copies_are_checked_against_the_template(image_engine: Any) -> None:
    image = {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}
    math_bad = {"i": image, "m": {"class_type": "ComfyMathExpression",
                                  "inputs": {"expression": "a + b", "values.a": ["i", 0], "values.b": 2.0}},
                "s": _sink(["m", 0])}
    assert ("return_type_mismatch", "values.a") in _errors(image_engine, math_bad, "m")
    alone = {"m": {"class_type": "ComfyMathExpression", "inputs": {"expression": "1 + 2"}}, "s": _sink(["m", 0])}
    assert _errors(image_engine, alone, "m") == []  # an optional template, as ComfyUI declares it
    one = {"i": image, "b": {"class_type": "BatchImagesNode", "inputs": {"images.image0": ["i", 0]}}, "s": _sink(["b", 0])}
    assert ("required_input_missing", "images.image1") in _errors(image_engine, one, "b")
    two = {"i": image, "b": {"class_type": "BatchImagesNode", "inputs": {"images.image0": ["i", 0],
                                                                       "images.image1": ["i", 0]}}, "s": _sink(["b", 0])}
    assert _errors(image_engine, two, "b") == []


def test_dynamic_combo_inputs_are_checked_against_the_chosen_option(image_engine: Any) -> None:
    image = {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}

    def resize(**inputs: Any) -> dict[str, Any]:
        node = {"class_type": "ResizeImageMaskNode", "inputs": {"input": ["i", 0], "scale_method": "area", **inputs}}
        return {"i": image, "r": node, "s": _sink(["r", 0])}

    assert _errors(image_engine, resize(**{"resize_type": "scale by multiplier", "resize_type.multiplier": 2.0}), "r") == []
    too_big = resize(**{"resize_type": "scale by multiplier", "resize_type.multiplier": 1e9})
    assert [t for t, n in _errors(image_engine, too_big, "r") if n == "resize_type.multiplier"] == ["value_bigger_than_max"]
    unknown = resize(**{"resize_type": "scale sideways"})
    assert ("value_not_in_list", "resize_type") in _errors(image_engine, unknown, "r")


def _templates_dir() -> Path:
    spec = importlib.util.find_spec("comfyui_workflow_templates_json")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the official templates are not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "templates"


def _template_nodes() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(_templates_dir().glob("*.json")):
        workflow = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(workflow, dict):
            continue
        graphs = [workflow, *((workflow.get("definitions") or {}).get("subgraphs") or [])]
        found += [(path.stem, n) for g in graphs for n in g.get("nodes") or [] if n.get("type") in DYNAMIC]
    return found


def test_template_widget_values_fit_the_expanded_inputs(image_engine: Any) -> None:
    """Each template use, alone (links cut), converts to dotted inputs that the expansion knows
    and whose widget values pass the template's / option's checks."""
    uses = _template_nodes()
    assert len(uses) >= 20, f"only {len(uses)} uses of {DYNAMIC} in the templates"
    problems = []
    for template, node in uses:
        raw = {**node, "id": 1, "mode": 0, "inputs": [{**i, "link": None} for i in node.get("inputs") or []]}
        inputs = ui_to_api({"nodes": [raw], "links": []}, lambda t: NODES[t].INPUT_TYPES())["1"]["inputs"]
        expanded = expand_input_types(NODES[node["type"]].INPUT_TYPES(), inputs)[0]
        unknown = [n for n in inputs if input_info(expanded, n)[1] is None]
        prompt = {"n": {"class_type": node["type"], "inputs": inputs}, "s": _sink(["n", 0])}
        bad = [e for e in _errors(image_engine, prompt, "n") if e[0] in _VALUE_ERRORS]
        if unknown or bad:
            problems.append((template, node["type"], unknown, bad))
    assert problems == []
