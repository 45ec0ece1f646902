"""List nodes of ComfyUI's core: gather the lists of several sockets into one list, and take one
item out of a list. Both use ComfyUI's list semantics (INPUT_IS_LIST / OUTPUT_IS_LIST)."""

from __future__ import annotations

from typing import Any

from nodeloom.node_api import ANY, AnyInput, Custom, Int, Node, Output, Schema, ValidationError
from nodeloom.nodes.utils.logic import autogrow, group_values

__all__ = ["CreateList", "GetItemFromList"]


class CreateList(Node):
    """Join the items of every connected socket into one list, in socket order (all of one type)."""

    SCHEMA = Schema(
        "CreateList",
        display_name="Create List",
        category="utils",
        input_is_list=True,
        inputs=[Custom("COMFY_AUTOGROW_V3", "inputs", optional=True,
                       tooltip="Values or lists to join; a new socket appears for each one connected.",
                       **autogrow("*", prefix="input", min_count=1))],
        outputs=[Output(ANY, "list", is_list=True, tooltip="Every item, socket by socket.")],
    )

    @classmethod
    def execute(cls, **inputs: Any) -> tuple[list[Any]]:
        return ([item for items in group_values(inputs, "inputs").values() for item in items],)


class GetItemFromList(Node):
    """The item at `index` of a list (0 is the first; negative counts from the end)."""

    SCHEMA = Schema(
        "GetItemFromList",
        display_name="Get Item From List",
        category="utils",
        input_is_list=True,
        inputs=[AnyInput("list", tooltip="The list to take an item from."),
                Int("index", 0, min=-0x7FFFFFFF, max=0x7FFFFFFF, tooltip="Position of the item.")],
        outputs=[Output(ANY, "*", tooltip="The item.")],
    )

    @classmethod
    def execute(cls, list: list[Any], index: list[int]) -> tuple[Any]:  # noqa: A002 - ComfyUI's input name
        position = int(index[0])
        if not -len(list) <= position < len(list):
            raise ValidationError(f"`index` {position} is outside the list of {len(list)} item(s)")
        return (list[position],)
