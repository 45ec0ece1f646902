"""Workflow validation: every problem at once, before anything runs, in ComfyUI's shape.

Checks each output's ancestors iteratively (linear time, no recursion limit): structure,
unknown classes, required inputs, link shape and target, linked type match, literal
coercion, min/max, combo membership, ``VALIDATE_INPUTS``, dependency cycles and the pairing of
loop-boundary nodes (:mod:`nodeloom.core.loop_check`). An invalid
output is dropped while valid ones still run; when none is valid the run is refused with
``prompt_outputs_failed_validation``. Error dicts follow ComfyUI: ``{type, message, details,
extra_info}`` grouped as ``node_errors[id] = {errors, dependent_outputs, class_type}``. No I/O.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from nodeloom.core.graph import NodeTypes
from nodeloom.core.graph_builder import ExecutionBlocker, is_link
from nodeloom.core.loop_check import check_loops
from nodeloom.core.types import hidden_kind, types_match

__all__ = ["ValidationResult", "validate_prompt"]


@dataclass
class ValidationResult:
    """The outcome of :func:`validate_prompt`.

    Attributes:
        ok: at least one output is valid (the run may start).
        error: the prompt-level error when not ok (or a structural error).
        node_errors: ComfyUI's ``{node_id: {errors, dependent_outputs, class_type}}``.
        outputs_to_execute: valid output node ids.
        prompt: the prompt with literals coerced (a copy; the input is not mutated).
    """

    ok: bool
    error: dict[str, Any] | None = None
    node_errors: dict[str, Any] = field(default_factory=dict)
    outputs_to_execute: list[str] = field(default_factory=list)
    prompt: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.error, "node_errors": self.node_errors}


def _err(type_: str, message: str, details: str = "", **extra: Any) -> dict[str, Any]:
    return {"type": type_, "message": message, "details": details, "extra_info": extra}


def _prompt_error(message: str, details: str = "") -> ValidationResult:
    return ValidationResult(False, _err("invalid_prompt", message, details))


def validate_prompt(
    prompt: Any,
    lookup: Callable[[str], type | None],
    targets: Iterable[str] | None = None,
    known_classes: Callable[[], Iterable[str]] | None = None,
) -> ValidationResult:
    """Validate an API-format prompt.

    Args:
        prompt: ``{node_id: {"class_type": str, "inputs": {...}}}``.
        lookup: class_type -> node class (None when unknown).
        targets: partial execution targets (output node ids to run); None = all outputs.
        known_classes: names for "did you mean" hints on unknown classes.

    Returns:
        A :class:`ValidationResult`; never raises for bad input.
    """
    if not isinstance(prompt, dict):
        return _prompt_error("The prompt must be a JSON object mapping node ids to nodes", f"got {type(prompt).__name__}")
    if not prompt:
        return _prompt_error("The prompt is empty", "a prompt needs at least one output node")
    types = NodeTypes(lookup)
    work: dict[str, Any] = {}
    own: dict[str, list[dict[str, Any]]] = {}
    for node_id, node in prompt.items():
        if not isinstance(node, dict):
            own[str(node_id)] = [_err("invalid_prompt", "Node must be an object with `class_type` and `inputs`", f"Node ID '#{node_id}'")]
            work[str(node_id)] = {"class_type": None, "inputs": {}}
            continue
        class_type = node.get("class_type")
        inputs = node.get("inputs", {})
        if not isinstance(inputs, dict):
            own[str(node_id)] = [_err("invalid_prompt", "Node `inputs` must be an object", f"Node ID '#{node_id}'")]
            inputs = {}
        work[str(node_id)] = {**node, "inputs": dict(inputs)}
        if not isinstance(class_type, str):
            own.setdefault(str(node_id), []).append(
                _err("invalid_prompt", "Cannot execute because a node is missing the class_type property.", f"Node ID '#{node_id}'")
            )
        elif lookup(class_type) is None:
            hint = _closest(class_type, known_classes() if known_classes else [])
            own.setdefault(str(node_id), []).append(
                _err(
                    "invalid_prompt",
                    f"Cannot execute because node {class_type} does not exist.",
                    f"Node ID '#{node_id}'" + (f"; did you mean `{hint}`?" if hint else ""),
                    class_type=class_type,
                    suggestion=hint,
                )
            )
    target_set = None if targets is None else {str(t) for t in targets}
    outputs = [
        nid
        for nid, node in work.items()
        if isinstance(node.get("class_type"), str)
        and types.is_output(node["class_type"])
        and (target_set is None or nid in target_set)
    ]
    if not outputs:
        return ValidationResult(False, _err("prompt_no_outputs", "Prompt has no outputs", ""), prompt=work)
    validator = _Validator(work, types, own)
    good: list[str] = []
    node_errors: dict[str, Any] = {}
    failures: list[tuple[str, list[dict[str, Any]]]] = []
    for out in outputs:
        if validator.check(out):
            good.append(out)
            continue
        for node_id in validator.bad_ancestors(out):
            errors = validator.errors_of(node_id)
            entry = node_errors.setdefault(
                node_id, {"errors": errors, "dependent_outputs": [], "class_type": work[node_id].get("class_type")}
            )
            entry["dependent_outputs"].append(out)
        failures.append((out, validator.errors_of(out)))
    good = _check_loop_boundaries(work, types, outputs, good, node_errors)
    if not good:
        lines = [f"{e['message']}: {e['details']}" for nid in node_errors for e in node_errors[nid]["errors"]]
        error = _err("prompt_outputs_failed_validation", "Prompt outputs failed validation", "\n".join(lines))
        return ValidationResult(False, error, node_errors, [], work)
    return ValidationResult(True, None, node_errors, good, work)


def _check_loop_boundaries(work: dict[str, Any], types: NodeTypes, outputs: list[str], good: list[str],
                           node_errors: dict[str, Any]) -> list[str]:
    """Check the loops of nodes whose class sets ``LOOP_BOUNDARY`` ("start" / "end"); a problem is
    reported on the nodes it names and drops the outputs it reaches. Skipped when a dependency
    cycle was already reported (the loop check assumes an acyclic graph)."""
    boundaries = {}
    for nid, node in work.items():
        cls = types.cls(node["class_type"]) if isinstance(node.get("class_type"), str) else None
        kind = getattr(cls, "LOOP_BOUNDARY", None)
        if kind in ("start", "end"):
            boundaries[nid] = kind
    if not boundaries or any(e.get("type") == "dependency_cycle" for entry in node_errors.values() for e in entry["errors"]):
        return good
    problem = check_loops(work, outputs, boundaries)
    if problem is None:
        return good
    for nid in problem.node_ids:
        entry = node_errors.setdefault(nid, {"errors": [], "dependent_outputs": [], "class_type": work[nid].get("class_type")})
        entry["errors"] = [*entry["errors"], problem.error]
        entry["dependent_outputs"] = sorted(set(entry["dependent_outputs"]) | set(problem.output_ids))
    return [o for o in good if o not in problem.output_ids]


class _Validator:
    """Memoised per-node validity over a prompt (iterative post-order walk)."""

    def __init__(self, prompt: dict[str, Any], types: NodeTypes, own: dict[str, list[dict[str, Any]]]):
        self.prompt = prompt
        self.types = types
        self.own = own
        self.valid: dict[str, bool] = {}
        self.checked_own: set[str] = set()

    def errors_of(self, node_id: str) -> list[dict[str, Any]]:
        return self.own.get(node_id, [])

    def check(self, root: str) -> bool:
        """Whether ``root`` and all its ancestors are valid (records errors on the way)."""
        if root in self.valid:
            return self.valid[root]
        on_path: set[str] = set()
        stack: list[tuple[str, bool]] = [(root, False)]
        while stack:
            node_id, expanded = stack.pop()
            if node_id in self.valid:
                continue
            if expanded:
                on_path.discard(node_id)
                ok = not self._own_errors(node_id)
                for src in self._link_sources(node_id):
                    if src in self.prompt and not self.valid.get(src, False):
                        ok = False
                self.valid[node_id] = ok
                continue
            if node_id in on_path:
                continue
            on_path.add(node_id)
            stack.append((node_id, True))
            for src in self._link_sources(node_id):
                if src not in self.prompt or src in self.valid:
                    continue
                if src in on_path:
                    self._cycle_error(node_id, src)
                    continue
                stack.append((src, False))
        return self.valid[root]

    def _cycle_error(self, node_id: str, src: str) -> None:
        for nid in (node_id, src):
            self.own.setdefault(nid, []).append(
                _err(
                    "dependency_cycle",
                    "Dependency cycle detected",
                    f"node '#{node_id}' and node '#{src}' depend on each other",
                    cycle=[src, node_id],
                )
            )
            self.checked_own.discard(nid)
            self.valid[nid] = False

    def bad_ancestors(self, root: str) -> list[str]:
        """Nodes with their own errors among ``root`` and its ancestors."""
        seen, out, stack = {root}, [], [root]
        while stack:
            nid = stack.pop()
            if self.own.get(nid):
                out.append(nid)
            for src in self._link_sources(nid):
                if src in self.prompt and src not in seen:
                    seen.add(src)
                    stack.append(src)
        return out

    def _link_sources(self, node_id: str) -> list[str]:
        inputs = self.prompt[node_id].get("inputs") or {}
        return [v[0] for v in inputs.values() if is_link(v)]

    def _own_errors(self, node_id: str) -> list[dict[str, Any]]:
        if node_id not in self.checked_own:
            self.checked_own.add(node_id)
            class_type = self.prompt[node_id].get("class_type")
            cls = self.types.cls(class_type) if isinstance(class_type, str) else None
            if cls is not None and not self.own.get(node_id):
                try:
                    errors = _check_node(node_id, self.prompt, self.types, cls)
                except Exception as exc:  # noqa: BLE001 - reported as ComfyUI does
                    errors = [
                        _err(
                            "exception_during_validation",
                            "Exception when validating node",
                            str(exc),
                            exception_type=type(exc).__qualname__,
                            traceback=traceback.format_tb(exc.__traceback__),
                        )
                    ]
                if errors:
                    self.own.setdefault(node_id, []).extend(errors)
        return self.own.get(node_id, [])


def _validate_function(cls: type) -> tuple[Any, list[str], bool]:
    fn = getattr(cls, "VALIDATE_INPUTS", None)
    if fn is None:
        return None, [], False
    spec = inspect.getfullargspec(fn)
    return fn, list(spec.args), spec.varkw is not None


def _coerce(input_type: Any, val: Any) -> Any:
    if input_type == "INT":
        if isinstance(val, float) and not math.isfinite(val):
            raise ValueError(f"{val} is not a finite number")
        return int(val)
    if input_type == "FLOAT":
        return float(val)
    if input_type == "STRING":
        return str(val)
    if input_type == "BOOLEAN":
        return bool(val)
    return val


def _check_node(node_id: str, prompt: dict[str, Any], types: NodeTypes, cls: type) -> list[dict[str, Any]]:
    """Every problem of one node's own inputs (links, constants, ranges, VALIDATE_INPUTS)."""
    class_type = prompt[node_id]["class_type"]
    inputs = prompt[node_id]["inputs"]
    class_inputs = types.node_input_types(class_type, inputs)
    declared = list((class_inputs.get("required") or {})) + list((class_inputs.get("optional") or {}))
    fn, fn_args, fn_kwargs = _validate_function(cls)
    errors: list[dict[str, Any]] = []
    received_types: dict[str, Any] = {}
    for name in declared:
        input_type, section, opts = types.info(class_type, name, inputs)
        info = [input_type, opts] if not isinstance(input_type, list) or len(input_type) <= 20 else None
        if name not in inputs:
            if section == "required":
                errors.append(_err("required_input_missing", "Required input is missing", name, input_name=name))
            continue
        val = inputs[name]
        if isinstance(val, list) and not is_link(val):
            message = (
                "Bad linked input, must be a length-2 list of [node_id, slot_index]"
                if len(val) != 2
                else "Bad linked input, must be [node_id: str, slot_index: int]"
            )
            errors.append(_err("bad_linked_input", message, name, input_name=name, input_config=info, received_value=val))
        elif is_link(val):
            received, problem = _check_link(name, val, input_type, info, prompt, types, "input_types" in fn_args)
            if received is not None:
                received_types[name] = received
            errors.extend(problem)
        else:
            errors.extend(_check_constant(name, inputs, input_type, opts, info, checked_by_node=name in fn_args or fn_kwargs))
    if fn is not None:
        errors.extend(_custom_validation(node_id, cls, fn, fn_args, fn_kwargs, inputs, class_inputs, received_types))
    return errors


def _check_link(name: str, link: list[Any], input_type: Any, info: Any, prompt: dict[str, Any], types: NodeTypes,
                node_checks_types: bool) -> tuple[Any, list[dict[str, Any]]]:
    """``(type the link delivers or None, problems)`` of a linked input."""
    src, slot = link[0], int(link[1])
    src_node = prompt.get(src)
    src_class = src_node.get("class_type") if isinstance(src_node, dict) else None
    src_cls = types.cls(src_class) if isinstance(src_class, str) else None
    if src_node is None or src_cls is None:
        message = (f"Input links to node '#{src}' which does not exist" if src_node is None
                   else f"Input links to node '#{src}' whose class is unknown")
        return None, [_err("bad_linked_input", message, name, input_name=name, linked_node=link)]
    returns = getattr(src_cls, "RETURN_TYPES", ())
    if slot < 0 or slot >= len(returns):
        message = f"Node '#{src}' has no output {slot} (it has {len(returns)})"
        return None, [_err("bad_linked_input", message, name, input_name=name, linked_node=link)]
    received = resolve_output_type(prompt, src, slot, types)
    if node_checks_types or types_match(received, input_type):
        return received, []
    return received, [_err(
        "return_type_mismatch",
        "Return type mismatch between linked nodes",
        f"{name}, received_type({received}) mismatch input_type({input_type})",
        input_name=name,
        input_config=info,
        received_type=received,
        linked_node=link,
    )]


def _check_constant(name: str, inputs: dict[str, Any], input_type: Any, opts: dict[str, Any], info: Any, *,
                    checked_by_node: bool) -> list[dict[str, Any]]:
    """Problems of a constant input; stores the unwrapped, converted value back in ``inputs``."""
    val = inputs[name]
    if isinstance(val, dict) and "__value__" in val:
        val = val["__value__"]
        inputs[name] = val
    try:
        val = _coerce(input_type, val)
        inputs[name] = val
    except Exception as exc:  # noqa: BLE001 - any conversion failure is the user's input
        return [_err(
            "invalid_input_type",
            f"Failed to convert an input value to a {input_type} value",
            f"{name}, {val}, {exc}",
            input_name=name,
            input_config=info,
            received_value=val,
            exception_message=str(exc),
        )]
    if checked_by_node:  # VALIDATE_INPUTS takes this input: the node checks its range itself
        return []
    return _range_and_combo(name, val, input_type, opts, info)


def resolve_output_type(prompt: dict[str, Any], node_id: str, slot: int, types: NodeTypes, depth: int = 0) -> Any:
    """The type output ``slot`` of ``node_id`` carries.

    An output whose type has a ``template_id`` (a V3 ``MatchType`` output) carries the type
    linked into the node's inputs of the same template; without such a link it keeps its
    template type, which matches any of the template's allowed types.
    """
    class_type = prompt[node_id]["class_type"]
    returns = getattr(types.cls(class_type), "RETURN_TYPES", ())
    declared = returns[slot] if 0 <= slot < len(returns) else None
    template = getattr(declared, "template_id", None)
    if template is None or depth > 64:
        return declared
    inputs = prompt[node_id].get("inputs") or {}
    for name, value in inputs.items():
        input_type = types.info(class_type, name, inputs)[0]
        if is_link(value) and getattr(input_type, "template_id", None) == template and value[0] in prompt:
            src = prompt[value[0]]
            if isinstance(src, dict) and isinstance(src.get("class_type"), str) and types.cls(src["class_type"]):
                return resolve_output_type(prompt, value[0], int(value[1]), types, depth + 1)
    return declared


def _range_and_combo(name: str, val: Any, input_type: Any, opts: dict[str, Any], info: Any) -> list[dict[str, Any]]:
    try:
        if "min" in opts and opts["min"] is not None and val < opts["min"]:
            return [_err("value_smaller_than_min", f"Value {val} smaller than min of {opts['min']}", name, input_name=name, input_config=info, received_value=val)]
        if "max" in opts and opts["max"] is not None and val > opts["max"]:
            return [_err("value_bigger_than_max", f"Value {val} bigger than max of {opts['max']}", name, input_name=name, input_config=info, received_value=val)]
    except TypeError:
        pass
    if isinstance(input_type, str) and str.__eq__(input_type, "COMBO") and isinstance(opts.get("options"), list):
        input_type = opts["options"]  # the V3 spelling: ("COMBO", {"options": [...]})
        if opts.get("multiselect") and isinstance(val, list):
            outside = [v for v in val if v not in input_type]
            if not outside:
                return []
            val = outside[0]
    if isinstance(input_type, list) and val not in input_type:
        listing = f"(list of length {len(input_type)})" if len(input_type) > 20 else str(input_type)
        return [_err("value_not_in_list", "Value not in list", f"{name}: '{val}' not in {listing}", input_name=name, input_config=info, received_value=val)]
    return []


def _custom_validation(
    node_id: str,
    cls: type,
    fn: Any,
    fn_args: list[str],
    fn_kwargs: bool,
    inputs: dict[str, Any],
    class_inputs: dict[str, Any],
    received_types: dict[str, Any],
) -> list[dict[str, Any]]:
    kwargs: dict[str, Any] = {}
    for name, val in inputs.items():
        if name in fn_args or fn_kwargs:
            kwargs[name] = None if is_link(val) else val
    for name, kind in (class_inputs.get("hidden") or {}).items():
        if (name in fn_args or fn_kwargs) and hidden_kind(kind) == "UNIQUE_ID":
            kwargs[name] = node_id
    if "input_types" in fn_args:
        kwargs["input_types"] = received_types
    try:
        result = fn(**kwargs)
        if inspect.isawaitable(result):
            result = _run_coroutine(result)
    except Exception as exc:  # noqa: BLE001 - reported, never raised
        return [
            _err(
                "exception_during_validation",
                "Exception when validating node",
                str(exc),
                exception_type=type(exc).__qualname__,
                traceback=traceback.format_tb(exc.__traceback__),
            )
        ]
    if result is True or isinstance(result, ExecutionBlocker):
        return []
    errors = []
    for name in kwargs:
        details = name if result is False else f"{name} - {result}"
        errors.append(_err("custom_validation_failed", "Custom validation failed for node", details, input_name=name))
    return errors


def _run_coroutine(coro: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _closest(name: str, candidates: Iterable[str]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None
