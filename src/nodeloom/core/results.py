"""Turning what node functions return into per-slot output lists (ComfyUI's rules).

A node call returns a tuple, an ``ExecutionBlocker``, or a dict with ``result``, ``ui`` and
``expand``. Calls over a list are merged per slot (``OUTPUT_IS_LIST`` slots concatenated),
UI dicts merged key by key, and expansions resolved once their subgraph has run. No I/O.
"""

from __future__ import annotations

from typing import Any

from nodeloom.core.graph_builder import ExecutionBlocker, is_link
from nodeloom.errors import NodeExecutionError

__all__ = ["map_results", "merge_outputs", "resolve_subgraph_outputs"]


def _as_tuple(result: Any, cls: type) -> tuple[Any, ...]:
    n = len(getattr(cls, "RETURN_TYPES", ()))
    if isinstance(result, ExecutionBlocker):
        return tuple([result] * n)
    if result is None:
        return tuple([None] * n) if n == 0 else _bad_return(result, cls)
    if isinstance(result, list):
        result = tuple(result)
    if not isinstance(result, tuple):
        return _bad_return(result, cls)
    return result


def _bad_return(result: Any, cls: type) -> tuple[Any, ...]:
    raise NodeExecutionError(
        f"`{cls.__name__}.{getattr(cls, 'FUNCTION', '?')}` must return a tuple of "
        f"{len(getattr(cls, 'RETURN_TYPES', ()))} output(s) or a dict with `result`/`ui`, got {type(result).__name__}"
    )


def merge_outputs(results: list[tuple[Any, ...]], cls: type) -> list[list[Any]]:
    """Per-slot lists from per-call result tuples."""
    if not results:
        return []
    n = len(results[0])
    flags = list(getattr(cls, "OUTPUT_IS_LIST", None) or [False] * n)
    flags += [False] * (n - len(flags))
    merged: list[list[Any]] = []
    for i in range(n):
        if flags[i]:
            slot: list[Any] = []
            for r in results:
                if isinstance(r[i], ExecutionBlocker):
                    slot.append(r[i])
                else:
                    slot.extend(r[i])
            merged.append(slot)
        else:
            merged.append([r[i] for r in results])
    return merged


def map_results(returns: list[Any], cls: type) -> tuple[list[list[Any]], dict[str, Any], list[tuple[Any, Any]] | None]:
    """``(outputs, ui, subgraphs)``; ``subgraphs`` is None unless the node expanded."""
    results: list[tuple[Any, ...]] = []
    uis: list[dict[str, Any]] = []
    subgraphs: list[tuple[Any, Any]] = []
    expanded = False
    for r in returns:
        if isinstance(r, dict) and ("ui" in r or "result" in r or "expand" in r):
            if r.get("ui") is not None:
                uis.append(r["ui"])
            if "expand" in r:
                expanded = True
                res = r.get("result")
                subgraphs.append((r["expand"], _as_tuple(res, cls) if res is not None else ()))
            elif "result" in r:
                res = _as_tuple(r.get("result"), cls)
                results.append(res)
                subgraphs.append((None, res))
        else:
            res = _as_tuple(r, cls)
            results.append(res)
            subgraphs.append((None, res))
    ui: dict[str, Any] = {}
    if uis:
        for key in uis[0]:
            ui[key] = [item for u in uis for item in (u.get(key) or [])]
    if expanded:
        return [], ui, subgraphs
    return (merge_outputs(results, cls) if results else []), ui, None


def resolve_subgraph_outputs(pending: list[tuple[bool, Any]], outputs: dict[str, list[list[Any]]]) -> list[tuple[Any, ...]]:
    """Replace links into an expanded subgraph by the values that subgraph produced."""
    resolved: list[tuple[Any, ...]] = []
    for is_subgraph, result in pending:
        if not is_subgraph:
            resolved.append(result)
            continue
        values: list[Any] = []
        for r in result:
            if is_link(r):
                source = outputs.get(r[0])
                if source is None:
                    raise NodeExecutionError(f"expanded output links to node `{r[0]}`, which produced nothing")
                values.extend(source[int(r[1])])
            else:
                values.append(r)
        resolved.append(tuple(values))
    return resolved
