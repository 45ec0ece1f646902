"""ComfyUI's String Format, Color To RGB Int and Convert Array / Dictionary to String nodes.

String Format fills ``{a}``, ``{b:.3f}``... from its growable ``values`` group with Python's
format mini-language, but only plain names: attribute and index lookups (``{a.__class__}``,
``{a[0]}``) are refused and field widths are capped, so a template cannot reach into objects
or allocate gigabytes.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

from nodeloom.node_api import Custom, Int, Node, Output, Schema, String, ValidationError
from nodeloom.nodes.utils.logic import VALUE_NAMES, autogrow, group_values

__all__ = ["ColorToRGBInt", "ConvertArrayToString", "ConvertDictionaryToString", "StringFormat", "safe_format"]

#: the widest field a format spec may ask for
MAX_FIELD_WIDTH = 10_000
_NUMBERS = re.compile(r"\d+")


class _SafeFormatter(string.Formatter):
    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if not field_name.isidentifier():
            raise ValidationError(f"`f_string`: `{{{field_name}}}` may only name a value (a, b, c...), "
                                  "without attributes or indexes")
        if field_name not in kwargs:
            raise ValidationError(f"`f_string` uses `{{{field_name}}}` but no value `{field_name}` is connected; "
                                  f"connected: {sorted(kwargs)}")
        return kwargs[field_name], field_name

    def format_field(self, value: Any, format_spec: str) -> str:
        if any(int(n) > MAX_FIELD_WIDTH for n in _NUMBERS.findall(format_spec)):
            raise ValidationError(f"`f_string`: the format spec `{format_spec}` asks for more than {MAX_FIELD_WIDTH} characters")
        try:
            return super().format_field(value, format_spec)
        except (ValueError, TypeError) as exc:
            raise ValidationError(f"`f_string`: cannot format {type(value).__name__} with `{format_spec}`: {exc}") from None


def safe_format(template: str, values: Mapping[str, Any]) -> str:
    """``template.format(**values)`` restricted to plain names and bounded widths.

    Raises:
        ValidationError: a malformed template, a missing or non-plain field, or a bad spec.
    """
    try:
        return _SafeFormatter().vformat(template, (), values)
    except ValidationError:
        raise
    except (ValueError, IndexError, KeyError) as exc:
        raise ValidationError(f"`f_string` is not a valid format string: {exc}") from None


class StringFormat(Node):
    """Fill a format string's {a}, {b}... placeholders (with optional specs like {a:.3f}) from
    the connected values; {{ and }} give literal braces."""

    SCHEMA = Schema(
        "StringFormat",
        display_name="String Format",
        category="utils/string",
        inputs=[
            String("f_string", "{a}", multiline=True, tooltip="The template, e.g. 'cx: {a:.3f}, cy: {b:.3f}'."),
            Custom("COMFY_AUTOGROW_V3", "values", optional=True,
                   tooltip="Values named a, b, c... in the order they are connected.", **autogrow("*", VALUE_NAMES)),
        ],
        outputs=[Output("STRING", "STRING", tooltip="The filled-in text.")],
    )

    @classmethod
    def execute(cls, f_string: str, **inputs: Any) -> tuple[str]:
        return (safe_format(f_string, group_values(inputs, "values")),)


_HEX = re.compile(r"#([0-9a-fA-F]{6})([0-9a-fA-F]{2})?")


class ColorToRGBInt(Node):
    """Split a #RRGGBB or #RRGGBBAA colour into its RGB integer, its #RRGGBB text and its alpha."""

    SCHEMA = Schema(
        "ColorToRGBInt",
        display_name="Color to RGB Int",
        category="utils",
        inputs=[Custom("COLOR", "color", default="#ffffff", tooltip="A colour as #RRGGBB or #RRGGBBAA.")],
        outputs=[Output("INT", "rgb_int", tooltip="Red × 65536 + green × 256 + blue."),
                 Output("COLOR", "hex", tooltip="The colour as #RRGGBB."),
                 Output("FLOAT", "alpha", tooltip="Opacity 0..1 (1 without an alpha pair).")],
    )

    @classmethod
    def execute(cls, color: str) -> tuple[int, str, float]:
        match = _HEX.fullmatch(color.strip()) if isinstance(color, str) else None
        if match is None:
            raise ValidationError(f"`color` must look like #RRGGBB or #RRGGBBAA, got {color!r}")
        rgb, alpha = match.group(1).lower(), match.group(2)
        return (int(rgb, 16), f"#{rgb}", int(alpha, 16) / 255.0 if alpha else 1.0)


def _to_json(value: Any, indent: int, name: str, kinds: tuple[type, ...]) -> str:
    if not isinstance(value, kinds):
        raise ValidationError(f"`{name}` must be {' or '.join(k.__name__ for k in kinds)}, got {type(value).__name__}")
    return json.dumps(value, indent=int(indent) or None, ensure_ascii=False, default=str)


def _json_node(node_id: str, display: str, name: str, io_type: str, kinds: tuple[type, ...]) -> type[Node]:
    """A node writing its one ``name`` input as JSON text (indent 0: one compact line)."""

    def execute(cls: type[Node], indent: int = 2, **value: Any) -> tuple[str]:
        return (_to_json(value[name], indent, name, kinds),)

    schema = Schema(
        node_id, display_name=display, category="utils/string",
        inputs=[Custom(io_type, name, tooltip=f"The {name} to convert to a JSON string."),
                Int("indent", 2, min=0, max=8, optional=True,
                    tooltip="Spaces per indent level. 0 produces compact single-line string.")],
        outputs=[Output("STRING", "STRING", tooltip=f"The {name} as JSON text (non-JSON values as their text).")],
    )
    doc = f"Convert {'an' if name[0] in 'aeiou' else 'a'} {name} to a JSON string with the chosen indent."
    return type(node_id, (Node,), {"__doc__": doc, "__module__": __name__, "SCHEMA": schema,
                                   "execute": classmethod(execute)})


ConvertArrayToString = _json_node("ConvertArrayToString", "Convert Array to String", "array", "ARRAY", (list, tuple))
ConvertDictionaryToString = _json_node("ConvertDictionaryToString", "Convert Dictionary to String", "dictionary",
                                       "DICT", (dict,))
