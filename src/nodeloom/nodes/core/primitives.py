"""Primitive value nodes (ComfyUI's ``comfy_extras/nodes_primitive.py`` ids): a widget as an output."""

from __future__ import annotations

import sys

from nodeloom.node_api import Boolean, Float, Int, Node, Output, Schema, String

__all__ = ["PrimitiveBoolean", "PrimitiveFloat", "PrimitiveInt", "PrimitiveString", "PrimitiveStringMultiline"]

_CATEGORY = "utils/primitive"


class PrimitiveString(Node):
    """A string value."""

    SCHEMA = Schema("PrimitiveString", display_name="String", category=_CATEGORY,
                    inputs=[String("value", tooltip="The string to output.")], outputs=[Output("STRING", "STRING")])

    @classmethod
    def execute(cls, value: str) -> tuple[str]:
        return (value,)


class PrimitiveStringMultiline(Node):
    """A multi-line string value (prompts, notes)."""

    SCHEMA = Schema("PrimitiveStringMultiline", display_name="String (Multiline)", category=_CATEGORY,
                    inputs=[String("value", multiline=True, tooltip="The text to output.")],
                    outputs=[Output("STRING", "STRING")])

    @classmethod
    def execute(cls, value: str) -> tuple[str]:
        return (value,)


class PrimitiveInt(Node):
    """An integer value (with the frontend's control-after-generate widget, e.g. for seeds)."""

    SCHEMA = Schema("PrimitiveInt", display_name="Int", category=_CATEGORY,
                    inputs=[Int("value", 0, min=-sys.maxsize, max=sys.maxsize, control_after_generate=True,
                                tooltip="The integer to output.")],
                    outputs=[Output("INT", "INT")])

    @classmethod
    def execute(cls, value: int) -> tuple[int]:
        return (value,)


class PrimitiveFloat(Node):
    """A floating-point value."""

    SCHEMA = Schema("PrimitiveFloat", display_name="Float", category=_CATEGORY,
                    inputs=[Float("value", 0.0, min=-sys.maxsize, max=sys.maxsize, tooltip="The number to output.")],
                    outputs=[Output("FLOAT", "FLOAT")])

    @classmethod
    def execute(cls, value: float) -> tuple[float]:
        return (value,)


class PrimitiveBoolean(Node):
    """A true/false value."""

    SCHEMA = Schema("PrimitiveBoolean", display_name="Boolean", category=_CATEGORY,
                    inputs=[Boolean("value", tooltip="The boolean to output.")], outputs=[Output("BOOLEAN", "BOOLEAN")])

    @classmethod
    def execute(cls, value: bool) -> tuple[bool]:
        return (value,)
