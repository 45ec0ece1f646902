"""Loop-boundary checks of a prompt: every node marked as a loop start must close at exactly one
loop end, and a loop body may leave the loop only through its end (ComfyUI's rules for nodes whose
schema sets ``loop_boundary``; the engine reads the class attribute ``LOOP_BOUNDARY``).

Owns :func:`check_loops`; pure graph work on the prompt dict, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["LoopProblem", "check_loops"]


@dataclass
class LoopProblem:
    """A loop that cannot be run: the error (ComfyUI's shape), the nodes it names, the outputs it sinks."""

    error: dict[str, Any]
    node_ids: list[str]
    output_ids: list[str]


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def _reach(starts: Iterable[str], edges: dict[str, set[str]], stop: set[str] | frozenset[str] = frozenset()) -> set[str]:
    """Nodes reached from ``starts`` along ``edges``; a node in ``stop`` is reached but not passed."""
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        if node not in stop:
            todo.extend(edges.get(node, ()))
    return seen


def _stops(starts: Iterable[str], edges: dict[str, set[str]], stop: set[str]) -> set[str]:
    """The members of ``stop`` reached first from ``starts`` (the walk ends at each of them)."""
    return _reach(starts, edges, stop) & stop


class _Graph:
    def __init__(self, prompt: dict[str, Any], keep: set[str] | None = None) -> None:
        self.children: dict[str, set[str]] = {nid: set() for nid in (keep if keep is not None else prompt)}
        self.parents: dict[str, set[str]] = {nid: set() for nid in self.children}
        for nid in self.children:
            for value in (prompt[nid].get("inputs") or {}).values():
                if _is_link(value) and value[0] in self.children:
                    self.children[value[0]].add(nid)
                    self.parents[nid].add(value[0])


def _problem(kind: str, message: str, details: str, actors: set[str], graph: _Graph, outputs: set[str]) -> LoopProblem:
    sunk = sorted(_reach(actors, graph.children) & outputs)
    error = {"type": "custom_validation_failed", "message": message, "details": details,
             "extra_info": {"input_name": "loop boundary", "loop_error_type": kind, "node_ids": sorted(actors),
                            "output_ids": sunk}}
    return LoopProblem(error, sorted(actors), sunk)


def check_loops(prompt: dict[str, Any], outputs: Iterable[str], boundaries: dict[str, str]) -> LoopProblem | None:
    """Pair each loop end with its start, innermost first, and check each body stays inside.

    Args:
        prompt: the API prompt (``{id: {"class_type", "inputs"}}``).
        outputs: the output node ids being run.
        boundaries: ``{node id: "start" | "end"}`` for the prompt's boundary nodes.

    Returns:
        The first problem found (an end with no start, nested ends that cycle, an end that could
        close several unrelated starts, a body reaching an output or another end around its own
        end, a start left open, an end's ``accumulate`` driven from inside its loop), or None.
    """
    outs = set(outputs)
    whole = _Graph(prompt)
    starts_all = {n for n, kind in boundaries.items() if kind == "start"}
    ends_all = {n for n, kind in boundaries.items() if kind == "end"}
    if not starts_all and not ends_all:
        return None
    # the nodes the run needs: the outputs' ancestors, plus what lies after a start on the way to them
    needed = _reach(outs, whole.parents)
    after = _reach(outs, whole.children, starts_all) - (starts_all - needed)
    needed |= after
    needed |= _reach(ends_all & after, whole.parents, starts_all)
    graph = _Graph(prompt, needed)
    starts, ends = starts_all & needed, ends_all & needed
    terminal = {o for o in outs if o in graph.children and not graph.children[o]}
    nested = {s: _stops(graph.children[s], graph.children, starts) for s in starts}
    inside = {s: _reach(nested[s], nested) for s in starts}  # starts nested (at any depth) in s
    end_below = {e: _stops(graph.parents[e], graph.parents, ends) for e in ends}
    open_starts, open_ends = set(starts), set(ends)
    pairs: dict[str, str] = {}
    while open_ends:
        end = next((e for e in sorted(open_ends) if not end_below[e] & open_ends), None)
        if end is None:
            listed = ", ".join(sorted(open_ends))
            return _problem("loop_end_cycle", "End Loops depend on each other",
                            f"End Loops depend on each other, so none of them can be closed first: {listed}",
                            set(open_ends), graph, outs)
        candidates = _stops(graph.parents[end], graph.parents, open_starts)
        if not candidates:
            return _problem("loop_end_without_start", "End Loop has no Start Loop",
                            f"End Loop {end} has no available Start Loop", {end}, graph, outs)
        closest = [c for c in candidates if all(o == c or c in inside[o] for o in candidates)]
        if len(closest) != 1:
            return _problem("ambiguous_loop_nesting", "End Loop has ambiguous Start Loops",
                            f"End Loop {end} can close multiple unrelated Start Loops: {', '.join(sorted(candidates))}",
                            candidates | {end}, graph, outs)
        start = closest[0]
        pairs[start] = end
        open_starts.discard(start)
        open_ends.discard(end)
        escapes = _stops(graph.children[start], graph.children, open_ends | terminal | {end}) - {end}
        if escapes:
            return _problem("loop_escape", "Loop body is not closed",
                            f"Start Loop {start} reaches {', '.join(sorted(escapes))} without passing through "
                            f"End Loop {end}", escapes | {start, end}, graph, outs)
    if open_starts:
        return _problem("loop_start_without_end", "Start Loop has no End Loop",
                        f"Start Loops without End Loops: {', '.join(sorted(open_starts))}", set(open_starts), graph, outs)
    for start, end in pairs.items():
        body = _reach(graph.children[start], graph.children, {end}) - {end}
        accumulate = (prompt[end].get("inputs") or {}).get("accumulate")
        if _is_link(accumulate) and (accumulate[0] == start or accumulate[0] in body):
            return _problem("loop_accumulate_from_body", "End Loop accumulate depends on its loop body",
                            f"End Loop {end} accumulate is driven by loop node {accumulate[0]} under Start Loop {start}",
                            {start, end, accumulate[0]}, graph, outs)
    return None
