"""Loop-boundary pairing (ComfyUI's rules for ``loop_boundary`` nodes) on plain prompt graphs."""

from __future__ import annotations

from typing import Any

from nodeloom.core.loop_check import check_loops


def _node(*links: str, accumulate: Any = None) -> dict[str, Any]:
    inputs: dict[str, Any] = {f"in{i}": [src, 0] for i, src in enumerate(links)}
    if accumulate is not None:
        inputs["accumulate"] = accumulate
    return {"class_type": "X", "inputs": inputs}


def _kind(problem) -> str:
    return problem.error["extra_info"]["loop_error_type"]


def test_a_closed_loop_and_nested_loops_pass():
    simple = {"s": _node(), "b": _node("s"), "e": _node("b"), "out": _node("e")}
    assert check_loops(simple, ["out"], {"s": "start", "e": "end"}) is None
    nested = {"s1": _node(), "s2": _node("s1"), "b": _node("s2"), "e2": _node("b"), "after": _node("e2"),
              "e1": _node("after"), "out": _node("e1")}
    assert check_loops(nested, ["out"], {"s1": "start", "s2": "start", "e1": "end", "e2": "end"}) is None
    assert check_loops(simple, ["out"], {}) is None


def test_a_body_reaching_an_output_escapes():
    prompt = {"s": _node(), "b": _node("s"), "peek": _node("b"), "e": _node("b"), "out": _node("e")}
    problem = check_loops(prompt, ["out", "peek"], {"s": "start", "e": "end"})
    assert _kind(problem) == "loop_escape"
    assert problem.error["type"] == "custom_validation_failed" and problem.error["message"] == "Loop body is not closed"
    assert problem.error["details"] == "Start Loop s reaches peek without passing through End Loop e"
    assert problem.node_ids == ["e", "peek", "s"] and problem.output_ids == ["out", "peek"]


def test_unpaired_boundaries():
    lone_end = {"x": _node(), "e": _node("x"), "out": _node("e")}
    problem = check_loops(lone_end, ["out"], {"e": "end"})
    assert _kind(problem) == "loop_end_without_start" and problem.error["details"] == "End Loop e has no available Start Loop"
    lone_start = {"s": _node(), "out": _node("s")}
    problem = check_loops(lone_start, ["out"], {"s": "start"})
    assert _kind(problem) in ("loop_escape", "loop_start_without_end")
    dangling = {"s": _node(), "b": _node("s"), "other": _node(), "out": _node("other")}
    problem = check_loops(dangling, ["out"], {"s": "start"})
    assert problem is None  # a start the run never reaches is not checked


def test_an_end_joining_two_unrelated_starts_is_ambiguous():
    prompt = {"s1": _node(), "s2": _node(), "e": _node("s1", "s2"), "out": _node("e")}
    problem = check_loops(prompt, ["out"], {"s1": "start", "s2": "start", "e": "end"})
    assert _kind(problem) == "ambiguous_loop_nesting" and problem.node_ids == ["e", "s1", "s2"]


def test_accumulate_may_not_come_from_the_body():
    prompt = {"s": _node(), "b": _node("s"), "e": _node("b", accumulate=["b", 0]), "out": _node("e")}
    problem = check_loops(prompt, ["out"], {"s": "start", "e": "end"})
    assert _kind(problem) == "loop_accumulate_from_body"
    assert problem.error["details"] == "End Loop e accumulate is driven by loop node b under Start Loop s"
    fine = {"s": _node(), "b": _node("s"), "flag": _node(), "e": _node("b", accumulate=["flag", 0]), "out": _node("e")}
    assert check_loops(fine, ["out"], {"s": "start", "e": "end"}) is None
