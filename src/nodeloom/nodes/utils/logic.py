"""Model-free logic and number nodes of ComfyUI's core: switch, math expression, number
conversion, custom combo, seed and "preview as text".

The growable ``values`` group of the math node is declared in the frontend's Autogrow shape;
its sockets arrive as ``values.a``, ``values.b``... (a linked input the schema does not list is
still passed). Expressions run through :mod:`nodeloom.ops.scalar_expr`, never ``eval``.
"""

from __future__ import annotations

import json
import math
import string
from typing import Any

from nodeloom.node_api import (
    ANY,
    AnyInput,
    Boolean,
    Combo,
    Custom,
    Int,
    Node,
    NodeOutput,
    Output,
    Schema,
    String,
    ValidationError,
)
from nodeloom.ops.scalar_expr import evaluate_scalar

__all__ = ["ComfyMathExpression", "ComfyNumberConvert", "ComfySwitchNode", "CustomCombo", "PreviewAny", "SeedNode"]

#: letters naming the math node's values, in socket order
VALUE_NAMES = list(string.ascii_lowercase)


def autogrow(io_type: str, names: list[str] | None = None, *, prefix: str | None = None, min_count: int = 1,
             max_count: int | None = None, optional: bool = False, template_id: str = "value") -> dict[str, Any]:
    """The options of a frontend Autogrow group: sockets of ``io_type`` (``"*"``: any) added as
    links arrive; the first ``min_count`` are required unless the template is ``optional``.
    ``template_id`` is the template input's id, as the node's ComfyUI declaration names it."""
    spec = [ANY if io_type == "*" else io_type, {}]
    template: dict[str, Any] = {"input": {"optional" if optional else "required": {template_id: spec}}, "min": min_count}
    if names:
        template["names"] = names
    if prefix:
        template["prefix"] = prefix
    if max_count:
        template["max"] = max_count
    return {"template": template}


def group_values(inputs: dict[str, Any], group: str) -> dict[str, Any]:
    """The members of an Autogrow ``group`` (``{"a": v}`` from ``{"values.a": v}``), in socket order."""
    prefix = f"{group}."
    return {k[len(prefix):]: v for k, v in inputs.items() if k.startswith(prefix) and v is not None}


class ComfySwitchNode(Node):
    """If/else: pass ``on_true`` when the switch is on, ``on_false`` otherwise; only the chosen
    branch is evaluated."""

    SCHEMA = Schema(
        "ComfySwitchNode",
        display_name="Switch",
        category="logic",
        inputs=[
            Boolean("switch", False, tooltip="On: output on_true; off: output on_false."),
            AnyInput("on_false", optional=True, lazy=True, tooltip="Value passed on when the switch is off."),
            AnyInput("on_true", optional=True, lazy=True, tooltip="Value passed on when the switch is on."),
        ],
        outputs=[Output(ANY, "output", tooltip="The selected value.")],
    )

    @classmethod
    def check_lazy_status(cls, switch: bool, on_false: Any = None, on_true: Any = None) -> list[str]:
        wanted = "on_true" if switch else "on_false"
        return [wanted] if (on_true if switch else on_false) is None else []

    @classmethod
    def execute(cls, switch: bool, on_false: Any = None, on_true: Any = None) -> tuple[Any]:
        return (on_true if switch else on_false,)


def _number(name: str, value: Any) -> int | float | bool:
    if isinstance(value, (bool, int, float)):
        return value
    raise ValidationError(f"`{name}` must be a number or a boolean, got {type(value).__name__}")


class ComfyMathExpression(Node):
    """Evaluate a math expression over the connected values a, b, c... (and the list `values`);
    the result comes out as FLOAT, INT (truncated) and BOOL (non-zero)."""

    SCHEMA = Schema(
        "ComfyMathExpression",
        display_name="Math Expression",
        category="math",
        inputs=[
            String("expression", "a + b", multiline=True,
                   tooltip="A formula over a, b, c...; functions: sum, min, max, abs, round, pow, sqrt, ceil, floor, "
                           "log, log2, log10, sin, cos, tan, int, float."),
            Custom("COMFY_AUTOGROW_V3", "values", optional=True,
                   tooltip="Numbers or booleans named a, b, c... in the order they are connected.",
                   **autogrow("FLOAT,INT,BOOLEAN", VALUE_NAMES, optional=True)),
        ],
        outputs=[Output("FLOAT", "FLOAT", tooltip="The result as a float."),
                 Output("INT", "INT", tooltip="The result truncated to an integer."),
                 Output("BOOLEAN", "BOOL", tooltip="True when the result is not zero.")],
    )

    @classmethod
    def execute(cls, expression: str, **inputs: Any) -> tuple[float, int, bool]:
        named = {k: _number(f"values.{k}", v) for k, v in group_values(inputs, "values").items()}
        result = evaluate_scalar(expression, named, values=list(named.values()))
        if not isinstance(result, (bool, int, float)):
            raise ValidationError(f"`expression` must give a number or a boolean, got {type(result).__name__}")
        as_float = float(result)
        if not math.isfinite(as_float):
            raise ValidationError(f"`expression` gave {as_float}, which is not a finite number")
        return (as_float, int(as_float), as_float != 0.0)


class ComfyNumberConvert(Node):
    """Convert an integer, float, numeric text or boolean to FLOAT and INT (truncated)."""

    SCHEMA = Schema(
        "ComfyNumberConvert",
        display_name="Number Convert",
        category="math",
        inputs=[Custom("INT,FLOAT,STRING,BOOLEAN", "value", tooltip="The value to convert.")],
        outputs=[Output("FLOAT", "FLOAT", tooltip="The value as a float."),
                 Output("INT", "INT", tooltip="The value as an integer (decimals truncated).")],
    )

    @classmethod
    def execute(cls, value: Any) -> tuple[float, int]:
        if isinstance(value, str):
            text = value.strip()
            if not text:
                raise ValidationError("`value` is an empty string; expected a number such as '3.5'")
            try:
                number = float(text)
            except ValueError:
                raise ValidationError(f"`value` {value!r} is not a number") from None
        elif isinstance(value, (bool, int, float)):
            number = float(value)
        else:
            raise ValidationError(f"`value` must be INT, FLOAT, STRING or BOOLEAN, got {type(value).__name__}")
        if not math.isfinite(number):
            raise ValidationError(f"`value` {value!r} is not a finite number")
        return (number, int(value) if isinstance(value, int) else int(number))


class CustomCombo(Node):
    """A drop-down whose options the user writes in the frontend; outputs the chosen text and
    its index. The backend accepts any choice."""

    SCHEMA = Schema(
        "CustomCombo",
        display_name="Custom Combo",
        category="utils",
        experimental=True,
        inputs=[
            Combo("choice", [], tooltip="The chosen option (options are edited in the frontend)."),
            Int("index", 0, optional=True, tooltip="Index of the chosen option (kept in step by the frontend)."),
        ],
        outputs=[Output("STRING", "STRING", tooltip="The chosen option."),
                 Output("INT", "INDEX", tooltip="Its position in the option list.")],
    )

    @classmethod
    def validate_inputs(cls, choice: Any = None) -> bool:
        return True  # the options live in the frontend only

    @classmethod
    def execute(cls, choice: str, index: int = 0) -> tuple[str, int]:
        return (str(choice), int(index))


class SeedNode(Node):
    """A seed value to share between nodes."""

    SCHEMA = Schema(
        "SeedNode",
        display_name="Seed",
        category="utils",
        inputs=[Int("seed", 0, min=0, max=0x7FFFFFFFFFFFFFFF, control_after_generate=True,
                    tooltip="The seed; the frontend may change it after each run.")],
        outputs=[Output("INT", "seed", tooltip="The seed.")],
    )

    @classmethod
    def execute(cls, seed: int) -> tuple[int]:
        return (seed,)


def preview_text(source: Any) -> str:
    """How "Preview as Text" writes a value: text as is, numbers plainly, the rest as JSON."""
    if source is None:
        return "None"
    if isinstance(source, str):
        return source
    if isinstance(source, (bool, int, float)):
        return str(source)
    try:
        return json.dumps(source, indent=4)
    except (TypeError, ValueError):
        try:
            return str(source)
        except Exception:  # a broken __str__ of a third-party object  # noqa: BLE001
            return "source exists, but could not be serialized."


class PreviewAny(Node):
    """Show any value as text in the frontend and pass the text on."""

    SCHEMA = Schema(
        "PreviewAny",
        display_name="Preview as Text",
        category="utils",
        output_node=True,
        inputs=[AnyInput("source", tooltip="The value to show.")],
        outputs=[Output("STRING", "STRING", tooltip="The text shown.")],
    )

    @classmethod
    def execute(cls, source: Any = None) -> NodeOutput:
        text = preview_text(source)
        return NodeOutput(text, ui={"text": (text,)})
