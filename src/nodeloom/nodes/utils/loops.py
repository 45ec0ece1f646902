"""ComfyUI's Start Loop / End Loop, built on node expansion (see :mod:`.loop_graph`): the body
between them runs once per iteration — a count (simple), an index range (For) or the items of a
list (List) — with the index, first/last flags, the list item and a value carried from one
iteration to the next; End Loop returns the last iteration's value or all of them. Three
helper nodes (``NodeloomLoop*``) carry out the unrolled iterations."""

from __future__ import annotations

import json
from typing import Any

from nodeloom.node_api import (
    ANY,
    Boolean,
    Custom,
    ExecutionBlocker,
    GraphBuilder,
    Hidden,
    Int,
    Node,
    NodeOutput,
    Output,
    Schema,
    String,
)
from nodeloom.nodes.utils.logic import autogrow
from nodeloom.nodes.utils.loop_graph import APPEND, ITERATION, UNROLL, iteration_plan, loop_body, start_inputs, unroll

__all__ = ["EndLoop", "LoopAppend", "LoopIteration", "LoopUnroll", "StartLoop"]

_CATEGORY = "utilities/looping"
_MODE = Custom("COMFY_DYNAMICCOMBO_V3", "mode", tooltip="How the iterations are counted.", options=[
    {"key": "simple", "inputs": {"required": {"num_iterations": ["INT", {
        "default": 4, "min": 0, "tooltip": "How many times the loop body runs."}]}}},
    {"key": "For", "inputs": {"required": {
        "start_iteration_index": ["INT", {"default": 0, "tooltip": "Index of the first iteration."}],
        "max_iteration": ["INT", {"default": 4, "max": 0xFFFFFFFFFFFFFFFF,
                                  "tooltip": "The exclusive stopping value for iteration_index."}],
        "step": ["INT", {"default": 1, "min": 1, "tooltip": "The index step between iterations."}]}}},
    {"key": "List", "inputs": {"required": {"list": [ANY, {
        "tooltip": "List of items the loop iterates on; the body executes once per item."}]}}},
])
_AFTER = Custom("COMFY_AUTOGROW_V3", "after", optional=True, tooltip="Values that must be computed first.",
                **autogrow("*", prefix="after", min_count=0, max_count=64, optional=True))
_ITERATION_OUTPUTS = [
    Output("INT", "iteration_index", tooltip="Index of the current iteration."),
    Output("BOOLEAN", "is_first", tooltip="True during the first iteration."),
    Output("BOOLEAN", "is_last", tooltip="True during the last iteration."),
    Output(ANY, "list_item", tooltip="The current item in List mode; None otherwise."),
    Output(ANY, "current_iteration_value", is_list=True,
           tooltip="initial_iteration_value on the first iteration, then End Loop's next_iteration_value."),
]


def _iteration(inputs: dict[str, Any], position: int, carried: Any) -> tuple[Any, ...]:
    values, items = iteration_plan(inputs)
    return (values[position], position == 0, position == len(values) - 1,
            items[position] if items is not None else None, carried if carried is not None else [None])


class StartLoop(Node):
    """Start a loop: the nodes between this and an End Loop run once per iteration. The first
    iteration's index, flags, item and carried value come out here."""

    SCHEMA = Schema(
        "StartLoop", display_name="Start Loop", category=_CATEGORY, input_is_list=True,
        inputs=[
            _MODE,
            Boolean("cache_iterations", False, advanced=True,
                    tooltip="Reuse unchanged iteration results (nodeloom's cache always does)."),
            Int("parent_iteration", optional=True, force_input=True,
                tooltip="To nest this loop, wire in the iteration_index of the enclosing Start Loop."),
            Custom(ANY, "initial_iteration_value", optional=True,
                   tooltip="What current_iteration_value holds on iteration one."),
        ],
        outputs=_ITERATION_OUTPUTS,
    )

    @classmethod
    def execute(cls, **inputs: Any) -> tuple[Any, ...]:
        values, _ = iteration_plan(inputs)
        if not values:  # no iteration: the body and End Loop are skipped
            return tuple(ExecutionBlocker(None) for _ in _ITERATION_OUTPUTS)
        return _iteration(inputs, 0, inputs.get("initial_iteration_value"))


class EndLoop(Node):
    """End a loop: returns `output_value` of the last iteration, or of every iteration with
    `accumulate`; `next_iteration_value` goes back to Start Loop for the next iteration."""

    SCHEMA = Schema(
        "EndLoop", display_name="End Loop", category=_CATEGORY, input_is_list=True,
        inputs=[
            Custom(ANY, "output_value", optional=True, tooltip="The value End Loop returns."),
            Custom(ANY, "next_iteration_value", optional=True, tooltip="Sent back to Start Loop for the next iteration."),
            Boolean("accumulate", False, tooltip="Return output_value of every iteration, not only the last."),
            Custom("COMFY_AUTOGROW_V3", "terminations", optional=True,
                   tooltip="Outputs that must execute on every iteration; their values are not returned.",
                   **autogrow("*", prefix="termination", min_count=0, max_count=50, optional=True)),
        ],
        hidden={"unique_id": Hidden.unique_id, "dynprompt": Hidden.dynprompt},
        outputs=[Output(ANY, "outputs", is_list=True, tooltip="The last or every iteration's output_value.")],
    )

    @classmethod
    def execute(cls, accumulate: list[bool], unique_id: Any = None, dynprompt: Any = None, **_: Any) -> NodeOutput:
        end = str(unique_id[0] if isinstance(unique_id, list) else unique_id)
        dp = dynprompt[0] if isinstance(dynprompt, list) else dynprompt
        start, body = loop_body(dp, end, "StartLoop")
        own = dp.get_node(end).get("inputs") or {}
        meta = {"start": start, "body": body, "accumulate": bool(accumulate[0]), "output": own.get("output_value"),
                "next": own.get("next_iteration_value"),
                "terminations": [v for k, v in sorted(own.items()) if k.startswith("terminations.")]}
        graph = GraphBuilder()
        # the step depends on what the first iteration read, so a change upstream of the body re-runs it
        deps = [v for v in (meta["output"], meta["next"], *meta["terminations"]) if v is not None]
        step = graph.node(UNROLL, loop=json.dumps(meta), **start_inputs(dp, start),
                          **{f"after.after{i}": link for i, link in enumerate(deps)})
        return NodeOutput(step.out(0), expand=graph.finalize())


class LoopUnroll(Node):
    """An internal step of End Loop: with the iteration count known, the loop body copied once
    per further iteration and the results gathered."""

    SCHEMA = Schema(
        UNROLL, display_name="Loop Unroll", category=_CATEGORY, input_is_list=True,
        inputs=[_MODE, String("loop", tooltip="The loop's start, end, body and links, as JSON."), _AFTER],
        hidden={"dynprompt": Hidden.dynprompt},
        outputs=[Output(ANY, "outputs", tooltip="End Loop's result (one value: the list).")],
    )

    @classmethod
    def execute(cls, loop: list[str], dynprompt: Any = None, **inputs: Any) -> NodeOutput:
        dp = dynprompt[0] if isinstance(dynprompt, list) else dynprompt
        meta = json.loads(loop[0])
        values, _ = iteration_plan(inputs)
        graph, result = unroll(dp, meta, start_inputs(dp, meta["start"]), len(values))
        return NodeOutput(result, expand=graph.finalize())


class LoopIteration(Node):
    """An internal step of End Loop: Start Loop's outputs for iteration `position`."""

    SCHEMA = Schema(
        ITERATION, display_name="Loop Iteration", category=_CATEGORY, input_is_list=True,
        inputs=[_MODE, Int("position", 0, min=0, tooltip="Which iteration (0 is the first)."),
                Custom(ANY, "carried", optional=True, tooltip="The previous iteration's next_iteration_value.")],
        outputs=_ITERATION_OUTPUTS,
    )

    @classmethod
    def execute(cls, position: list[int], carried: Any = None, **inputs: Any) -> tuple[Any, ...]:
        return _iteration(inputs, int(position[0]), carried)


class LoopAppend(Node):
    """An internal step of End Loop: `items` followed by `value`, once the `after` inputs ran."""

    SCHEMA = Schema(
        APPEND, display_name="Loop Append", category=_CATEGORY, input_is_list=True,
        inputs=[Custom(ANY, "items", optional=True, tooltip="The list so far."),
                Custom(ANY, "value", optional=True, tooltip="This iteration's output_value."),
                _AFTER],
        outputs=[Output(ANY, "items", tooltip="The list with this iteration's value (one value: the list).")],
    )

    @classmethod
    def execute(cls, items: list[Any] | None = None, value: list[Any] | None = None, **_: Any) -> tuple[list[Any]]:
        # one output value holding the list: an expansion's result link hands on each value of the
        # linked output (as ComfyUI's does), so End Loop receives exactly this list
        return (list(items[0] if items else []) + list(value or []),)
