"""V3 ``io.Autogrow`` and ``io.DynamicCombo``: their ``/object_info`` entries, validation of the
dotted socket names the frontend sends, and the grouped values ``execute`` receives."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from nodeloom.engine import Engine

DYNAMIC_PACK = r'''
from comfy_api.latest import ComfyExtension, io

SEEN = []


class GrowSum(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        template = io.Autogrow.TemplatePrefix(io.Float.Input("value", min=-10.0, max=10.0), prefix="value", min=2, max=4)
        return io.Schema(
            node_id="DynGrowSum", category="dyntest", description="Sum of the connected values.",
            inputs=[io.Autogrow.Input("values", template=template, tooltip="Values to add.")],
            outputs=[io.Float.Output()],
        )

    @classmethod
    def execute(cls, values):
        SEEN.append(("DynGrowSum", values))
        return io.NodeOutput(float(sum(values.values())))


class Named(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        template = io.Autogrow.TemplateNames(io.Float.Input("x", optional=True), names=["left", "right"], min=1)
        return io.Schema(node_id="DynNamed", category="dyntest",
                         inputs=[io.Autogrow.Input("sides", template=template)], outputs=[io.Float.Output()])

    @classmethod
    def validate_inputs(cls, **inputs):
        SEEN.append(("validate", inputs))
        return "13 is unlucky" if 13.0 in inputs["sides"].values() else True

    @classmethod
    def fingerprint_inputs(cls, **inputs):
        SEEN.append(("fingerprint", inputs))
        return sorted(inputs["sides"])

    @classmethod
    def execute(cls, sides):
        SEEN.append(("DynNamed", sides))
        return io.NodeOutput(float(len(sides)))


class Shape(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        terms = io.Autogrow.TemplatePrefix(io.Float.Input("t"), prefix="t", min=1, max=3)
        options = [
            io.DynamicCombo.Option("square", [io.Int.Input("size", default=4, min=1, max=64)]),
            io.DynamicCombo.Option("rect", [io.Int.Input("width", default=2, min=1), io.Int.Input("height", default=3)]),
            io.DynamicCombo.Option("sum", [io.Autogrow.Input("terms", template=terms)]),
            io.DynamicCombo.Option("none", []),
        ]
        return io.Schema(node_id="DynShape", category="dyntest",
                         inputs=[io.DynamicCombo.Input("shape", options=options, tooltip="The shape."),
                                 io.Float.Input("scale", default=1.0)],
                         outputs=[io.Float.Output()])

    @classmethod
    def execute(cls, shape, scale):
        SEEN.append(("DynShape", shape))
        kind = shape["shape"]
        if kind == "square":
            area = shape["size"] ** 2
        elif kind == "rect":
            area = shape["width"] * shape["height"]
        elif kind == "sum":
            area = sum(shape["terms"].values())
        else:
            area = 0
        return io.NodeOutput(float(area) * scale)


class Show(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="DynShow", category="dyntest", is_output_node=True,
                         inputs=[io.Float.Input("value", force_input=True)], outputs=[])

    @classmethod
    def execute(cls, value):
        return io.NodeOutput(ui={"text": [str(value)]})


class LazyFirst(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        template = io.Autogrow.TemplatePrefix(io.Float.Input("v", lazy=True), prefix="v", min=1, max=3)
        return io.Schema(node_id="DynLazyFirst", category="dyntest",
                         inputs=[io.Autogrow.Input("values", template=template)], outputs=[io.Float.Output()])

    @classmethod
    def check_lazy_status(cls, values):
        SEEN.append(("lazy", values))
        value, name = values["v0"]
        return [name] if value is None else []

    @classmethod
    def execute(cls, values):
        SEEN.append(("DynLazyFirst", values))
        return io.NodeOutput(values["v0"])


class Ext(ComfyExtension):
    async def get_node_list(self):
        return [GrowSum, Named, Shape, Show, LazyFirst]


async def comfy_entrypoint():
    return Ext()
'''


def write_dynamic_pack(custom_nodes: Path) -> Path:
    """Write the fixture pack as ``custom_nodes/dyn_pack``; returns the folder."""
    (custom_nodes / "dyn_pack").mkdir(parents=True, exist_ok=True)
    (custom_nodes / "dyn_pack" / "__init__.py").write_text(DYNAMIC_PACK)
    return custom_nodes


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    root = tmp_path_factory.mktemp("v3dyn")
    engine = Engine(base_dir=root / "base", custom_nodes_dirs=[write_dynamic_pack(root / "custom_nodes")])
    yield engine
    engine.close()


def _seen(engine: Engine) -> list[Any]:
    module = next(m for name, m in sys.modules.items() if name.startswith("nodeloom_custom_nodes.dyn_pack"))
    return module.SEEN  # type: ignore[no-any-return]


def _float(value: float) -> dict[str, Any]:
    return {"class_type": "PrimitiveFloat", "inputs": {"value": value}}


def _errors(engine: Engine, prompt: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    checked = engine.validate(prompt)
    return {nid: [(e["type"], e["extra_info"].get("input_name", "")) for e in entry["errors"]]
            for nid, entry in checked.node_errors.items()}


def test_object_info_shows_each_dynamic_input_as_comfyui_does(engine: Engine) -> None:
    grow = engine.object_info("DynGrowSum")["DynGrowSum"]
    assert grow["input"]["required"]["values"] == ["COMFY_AUTOGROW_V3", {
        "tooltip": "Values to add.",
        "template": {"input": {"required": {"value": ["FLOAT", {"forceInput": True, "min": -10.0, "max": 10.0}]}},
                     "prefix": "value", "min": 2, "max": 4}}]
    assert grow["input_order"] == {"required": ["values"]}
    named = engine.object_info("DynNamed")["DynNamed"]["input"]["required"]["sides"]
    assert named[1]["template"] == {"input": {"required": {}, "optional": {"x": ["FLOAT", {"forceInput": True}]}},
                                    "names": ["left", "right"], "min": 1}
    shape = engine.object_info("DynShape")["DynShape"]["input"]["required"]["shape"]
    assert shape[0] == "COMFY_DYNAMICCOMBO_V3"
    assert [o["key"] for o in shape[1]["options"]] == ["square", "rect", "sum", "none"]
    assert shape[1]["options"][0]["inputs"] == {"required": {"size": ["INT", {"default": 4, "min": 1, "max": 64}]}}
    assert shape[1]["options"][3]["inputs"] == {"required": {}}
    nested = shape[1]["options"][2]["inputs"]["required"]["terms"]
    assert nested[0] == "COMFY_AUTOGROW_V3" and nested[1]["template"]["prefix"] == "t"


def test_autogrow_values_arrive_grouped_by_name(engine: Engine) -> None:
    prompt = {"1": _float(1.5), "2": _float(2.0),
              "3": {"class_type": "DynGrowSum", "inputs": {"values.value0": ["1", 0], "values.value1": ["2", 0],
                                                          "values.value2": 4.0}},
              "4": {"class_type": "DynShow", "inputs": {"value": ["3", 0]}}}
    result = engine.run(prompt)
    assert result.status == "success", result.errors
    assert result.value("3") == 7.5
    assert ("DynGrowSum", {"value0": 1.5, "value1": 2.0, "value2": 4.0}) in _seen(engine)


def test_autogrow_names_template_and_empty_group(engine: Engine) -> None:
    both = engine.run({"1": {"class_type": "DynNamed", "inputs": {"sides.left": 1.0, "sides.right": 2.0}},
                       "2": {"class_type": "DynShow", "inputs": {"value": ["1", 0]}}})
    assert both.status == "success", both.errors
    assert ("DynNamed", {"left": 1.0, "right": 2.0}) in _seen(engine)
    empty = engine.run({"1": {"class_type": "DynNamed", "inputs": {}},
                        "2": {"class_type": "DynShow", "inputs": {"value": ["1", 0]}}})
    assert empty.status == "success", empty.errors  # an optional template: no copy is required
    assert empty.value("1") == 0.0 and ("DynNamed", {}) in _seen(engine)


def test_optional_hooks_receive_grouped_values(engine: Engine) -> None:
    prompt = {"1": {"class_type": "DynNamed", "inputs": {"sides.left": 13.0}},
              "2": {"class_type": "DynShow", "inputs": {"value": ["1", 0]}}}
    assert _errors(engine, prompt)["1"] == [("custom_validation_failed", "sides.left")]
    assert ("validate", {"sides": {"left": 13.0}}) in _seen(engine)
    prompt["1"]["inputs"] = {"sides.right": 1.0}
    assert engine.run(prompt).status == "success"
    assert ("fingerprint", {"sides": {"right": 1.0}}) in _seen(engine)


def test_lazy_grouped_inputs_are_asked_for_by_their_dotted_names(engine: Engine) -> None:
    prompt = {"1": _float(1.5), "2": _float(7.0),
              "3": {"class_type": "DynLazyFirst", "inputs": {"values.v0": ["1", 0], "values.v1": ["2", 0]}},
              "4": {"class_type": "DynShow", "inputs": {"value": ["3", 0]}}}
    result = engine.run(prompt)
    assert result.status == "success", result.errors
    assert result.value("3") == 1.5 and "2" not in result.node_runs  # the unrequested branch never ran
    assert ("lazy", {"v0": (None, "values.v0"), "v1": (None, "values.v1")}) in _seen(engine)
    assert ("DynLazyFirst", {"v0": 1.5, "v1": None}) in _seen(engine)


def test_autogrow_validation_checks_each_copy_against_the_template(engine: Engine) -> None:
    prompt = {"3": {"class_type": "DynGrowSum", "inputs": {"values.value0": 1.0, "values.value2": 99.0}},
              "4": {"class_type": "DynShow", "inputs": {"value": ["3", 0]}},
              "5": {"class_type": "DynGrowSum", "inputs": {"values.value0": 1.0, "values.value1": "x"}},
              "6": {"class_type": "DynShow", "inputs": {"value": ["5", 0]}}}
    errors = _errors(engine, prompt)
    assert sorted(errors["3"]) == [("required_input_missing", "values.value1"),
                                   ("value_bigger_than_max", "values.value2")]
    assert errors["5"] == [("invalid_input_type", "values.value1")]


def test_dynamic_combo_passes_the_choice_and_its_inputs(engine: Engine) -> None:
    cases = [({"shape": "square", "shape.size": 5}, 25.0, {"shape": "square", "size": 5}),
             ({"shape": "rect", "shape.width": 2, "shape.height": 7, "shape.size": 3}, 14.0,
              {"shape": "rect", "width": 2, "height": 7}),
             ({"shape": "sum", "shape.terms.t0": 1.0, "shape.terms.t1": 2.5}, 3.5,
              {"shape": "sum", "terms": {"t0": 1.0, "t1": 2.5}}),
             ({"shape": "none"}, 0.0, {"shape": "none"})]
    for inputs, area, grouped in cases:
        result = engine.run({"1": {"class_type": "DynShape", "inputs": {**inputs, "scale": 1.0}},
                             "2": {"class_type": "DynShow", "inputs": {"value": ["1", 0]}}})
        assert result.status == "success", (inputs, result.errors)
        assert result.value("1") == area
        assert _seen(engine)[-1] == ("DynShape", grouped)  # inputs of other choices are dropped


def test_dynamic_combo_validation(engine: Engine) -> None:
    prompt = {"1": {"class_type": "DynShape", "inputs": {"shape": "circle", "scale": 1.0}},
              "2": {"class_type": "DynShow", "inputs": {"value": ["1", 0]}},
              "3": {"class_type": "DynShape", "inputs": {"shape": "square", "shape.size": 100, "scale": 1.0}},
              "4": {"class_type": "DynShow", "inputs": {"value": ["3", 0]}},
              "5": {"class_type": "DynShape", "inputs": {"shape": "rect", "shape.width": 2, "scale": 1.0}},
              "6": {"class_type": "DynShow", "inputs": {"value": ["5", 0]}},
              "7": {"class_type": "DynShape", "inputs": {"shape": "sum", "scale": 1.0}},
              "8": {"class_type": "DynShow", "inputs": {"value": ["7", 0]}}}
    errors = _errors(engine, prompt)
    assert errors["1"] == [("value_not_in_list", "shape")]
    assert errors["3"] == [("value_bigger_than_max", "shape.size")]
    assert errors["5"] == [("required_input_missing", "shape.height")]
    assert errors["7"] == [("required_input_missing", "shape.terms.t0")]


def test_bad_dynamic_declarations_fail_clearly() -> None:
    from nodeloom.compat.comfy.api.latest import io

    with pytest.raises(ValueError, match="`max` must be an integer in 1..100"):
        io.Autogrow.TemplatePrefix(io.Float.Input("v"), prefix="v", max=101)
    with pytest.raises(ValueError, match="`min` must be an integer ≥ 0"):
        io.Autogrow.TemplateNames(io.Float.Input("v"), names=["a"], min=-1)
    with pytest.raises(TypeError, match="`template` must be Autogrow.TemplatePrefix"):
        io.Autogrow.Input("values", template=io.Float.Input("v"))
    with pytest.raises(ValueError, match="option keys must be unique"):
        io.DynamicCombo.Input("mode", options=[io.DynamicCombo.Option("a", []), io.DynamicCombo.Option("a", [])])
