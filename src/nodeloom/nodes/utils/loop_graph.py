"""The graph side of Start Loop / End Loop: the iteration plan a Start Loop's inputs describe,
finding a loop's body in the prompt, and unrolling the body for the iterations after the first.

The first iteration runs as the workflow is drawn (Start Loop hands out iteration 0). End Loop
then expands into a step that, with the plan's inputs resolved, expands into one copy of the
body per further iteration — each copy's links to Start Loop replaced by an iteration source
node and its carried value linked to the previous copy's. No engine state; no I/O.
"""

from __future__ import annotations

from typing import Any

from nodeloom.node_api import GraphBuilder, ValidationError, is_link

__all__ = ["ITERATION", "APPEND", "UNROLL", "iteration_plan", "loop_body", "start_inputs", "unroll"]

ITERATION = "NodeloomLoopIteration"
APPEND = "NodeloomLoopAppend"
UNROLL = "NodeloomLoopUnroll"


def _first(value: Any, default: Any) -> Any:
    """One value of an input-list node's input (a list of one), or ``default`` when absent."""
    if isinstance(value, list):
        return value[0] if value else default
    return default if value is None else value


def iteration_plan(inputs: dict[str, Any]) -> tuple[list[int], list[Any] | None]:
    """``(iteration indices, list items or None)`` from Start Loop's ``mode`` inputs (as lists).

    Raises:
        ValidationError: a For step of 0, or an unknown mode.
    """
    mode = _first(inputs.get("mode"), "simple")
    if mode == "simple":
        return list(range(int(_first(inputs.get("mode.num_iterations"), 4)))), None
    if mode == "For":
        step = int(_first(inputs.get("mode.step"), 1))
        if step == 0:
            raise ValidationError("`mode.step` of Start Loop must not be 0")
        start, stop = int(_first(inputs.get("mode.start_iteration_index"), 0)), int(_first(inputs.get("mode.max_iteration"), 4))
        return list(range(start, stop, step)), None
    if mode == "List":
        items = list(inputs.get("mode.list") or [])
        return list(range(len(items))), items
    raise ValidationError(f"`mode` of Start Loop must be simple, For or List, got {mode!r}")


def _links(dynprompt: Any) -> dict[str, set[str]]:
    """``node id -> ids of the nodes it links to`` over the whole (dynamic) prompt."""
    out: dict[str, set[str]] = {}
    for nid in dynprompt.all_node_ids():
        node = dynprompt.get_node(nid)
        out[nid] = {str(v[0]) for v in (node.get("inputs") or {}).values() if is_link(v)}
    return out


def _pair(dynprompt: Any, feeds: dict[str, set[str]], end_id: str, start_type: str, end_type: str) -> str | None:
    """The Start Loop paired with ``end_id``: upstream, passing as many Start Loops as End Loops
    (an inner loop's pair), breadth first."""
    seen, frontier = {(end_id, 0)}, [(end_id, 0)]
    while frontier:
        nxt = []
        for nid, depth in frontier:
            for src in sorted(feeds.get(nid, ())):
                kind = dynprompt.get_node(src)["class_type"]
                if kind == start_type and depth == 0:
                    return src
                state = (src, depth + (kind == end_type) - (kind == start_type))
                if state not in seen:
                    seen.add(state)
                    nxt.append(state)
        frontier = nxt
    return None


def loop_body(dynprompt: Any, end_id: str, start_type: str, end_type: str = "EndLoop") -> tuple[str, list[str]]:
    """``(Start Loop id, body node ids)`` of the End Loop ``end_id``: its paired Start Loop
    upstream (inner loops on the way are skipped), and every node between the two (downstream
    of it and upstream of End Loop).

    Raises:
        ValidationError: no Start Loop upstream of End Loop.
    """
    feeds = _links(dynprompt)
    start = _pair(dynprompt, feeds, end_id, start_type, end_type)
    if start is None:
        raise ValidationError(f"End Loop `{end_id}` has no Start Loop upstream: connect the loop body between them")
    upstream, frontier = set(), [end_id]
    while frontier:
        frontier = [src for nid in frontier for src in feeds.get(nid, ()) if src not in upstream]
        upstream.update(frontier)
    downstream, frontier = {start}, [start]
    while frontier:
        frontier = [n for n, srcs in feeds.items() if n not in downstream and srcs & set(frontier)]
        downstream.update(frontier)
    return start, sorted((upstream & downstream) - {start, end_id})


def start_inputs(dynprompt: Any, start_id: str) -> dict[str, Any]:
    """Start Loop's plan inputs (``mode`` and ``mode.*``) as the prompt gives them (values or links)."""
    inputs = dynprompt.get_node(start_id).get("inputs") or {}
    return {k: v for k, v in inputs.items() if k == "mode" or k.startswith("mode.")}


def unroll(dynprompt: Any, meta: dict[str, Any], plan_inputs: dict[str, Any], count: int) -> tuple[GraphBuilder, Any]:
    """The copies of the body for iterations 1..count-1 and the chain gathering End Loop's result.

    Every iteration's output, carried value and terminations feed the chain, so each iteration
    runs even when only the last one's output is kept.

    Returns:
        ``(graph, link to the result list)``.
    """
    graph = GraphBuilder()
    start, body, keep_all = meta["start"], meta["body"], meta["accumulate"]
    output, carried = meta["output"], meta["next"]

    def gather(previous: Any, value: Any, extra: list[Any]) -> Any:
        inputs = {"value": value} if value is not None else {}
        if previous is not None:
            inputs["items" if keep_all else "after.after0"] = previous.out(0)
        inputs.update({f"after.after{i + 1}": link for i, link in enumerate(e for e in extra if e is not None)})
        return graph.node(APPEND, **inputs)

    chain = gather(None, output, [carried, *meta["terminations"]])
    for position in range(1, count):
        step = graph.node(ITERATION, position=position, **({"carried": carried} if carried is not None else {}), **plan_inputs)
        copies = {nid: graph.node(dynprompt.get_node(nid)["class_type"]) for nid in body}

        def relinked(value: Any, step: Any = step, copies: dict[str, Any] = copies) -> Any:
            if not is_link(value):
                return value
            if str(value[0]) == start:
                return step.out(int(value[1]))
            return copies[str(value[0])].out(int(value[1])) if str(value[0]) in copies else value

        for nid, copy in copies.items():
            for name, value in (dynprompt.get_node(nid).get("inputs") or {}).items():
                copy.set_input(name, relinked(value))
        carried = relinked(carried)
        chain = gather(chain, relinked(output), [carried, *(relinked(t) for t in meta["terminations"])])
    return graph, chain.out(0)
