"""The running graph: the prompt plus nodes added by expansion, and per-class input info.

:class:`DynamicPrompt` holds the original API-format prompt and the ephemeral nodes a node
expansion adds (with their parent and display ids). :class:`NodeTypes` memoises each
class's ``INPUT_TYPES()`` for one run, so a 10k-node graph calls it once per class; a class
whose inputs depend on the prompt (``EXPAND_INPUT_TYPES``, e.g. V3 ``Autogrow``) is asked
per node for the inputs that node has. No I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from nodeloom.core.graph_builder import is_link

__all__ = ["DYNAMIC_COMBO", "DynamicPrompt", "InputInfo", "NodeNotFoundError", "NodeTypes", "find_cycle", "input_info"]

InputInfo = tuple[Any, str | None, dict[str, Any]]
_UNSET = object()


#: a combo whose options each bring their own inputs, named ``"<combo>.<input>"``
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"


def input_info(input_types: dict[str, Any], name: str) -> InputInfo:
    """``(type, section, options)`` of input ``name``; section None when undeclared.

    ``"combo.sub"`` names an input of a dynamic combo's options (nested combos too).
    """
    for section in ("required", "optional", "hidden"):
        entries = input_types.get(section) or {}
        if name in entries:
            spec = entries[name]
            if section == "hidden":
                return spec, section, {}
            if isinstance(spec, (list, tuple)):
                typ = spec[0] if spec else None
                opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                return typ, section, opts
            return spec, section, {}
    base, dot, sub = name.partition(".")
    if dot:
        typ, section, opts = input_info(input_types, base)
        if typ == DYNAMIC_COMBO:
            for option in opts.get("options") or []:
                found = input_info((option or {}).get("inputs") or {}, sub) if isinstance(option, dict) else (None, None, {})
                if found[1] is not None:
                    return found
    return None, None, {}


class NodeTypes:
    """Per-run view of node classes: class lookup and memoised ``INPUT_TYPES``."""

    def __init__(self, lookup: Callable[[str], type | None]) -> None:
        self._lookup = lookup
        self._inputs: dict[str, dict[str, Any]] = {}
        self._expanders: dict[str, Any] = {}
        self._expanded: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}

    def cls(self, class_type: str) -> type | None:
        return self._lookup(class_type)

    def input_types(self, class_type: str) -> dict[str, Any]:
        types = self._inputs.get(class_type)
        if types is None:
            cls = self._lookup(class_type)
            types = cls.INPUT_TYPES() if cls is not None else {}  # type: ignore[attr-defined]
            self._inputs[class_type] = types
        return types

    def node_input_types(self, class_type: str, inputs: dict[str, Any] | None) -> dict[str, Any]:
        """The inputs one node has: ``INPUT_TYPES()``, or for a class with the optional
        ``EXPAND_INPUT_TYPES(input_types, inputs)`` hook, what it makes of the node's prompt
        ``inputs`` (growing inputs get their concrete, dotted names)."""
        expand = self._expanders.get(class_type, _UNSET)
        if expand is _UNSET:
            expand = self._expanders[class_type] = getattr(self._lookup(class_type), "EXPAND_INPUT_TYPES", None)
        declared = self.input_types(class_type)
        if expand is None or inputs is None:
            return declared
        key = id(inputs)
        memo = self._expanded.get(key)
        if memo is None or memo[0] is not inputs:  # the node's own inputs dict, not a reused id
            memo = (inputs, expand(declared, inputs))
            self._expanded[key] = memo
        return memo[1]

    def info(self, class_type: str, name: str, inputs: dict[str, Any] | None = None) -> InputInfo:
        """``(type, section, options)`` of input ``name``; pass the node's ``inputs`` so that
        inputs a class grows from them are known."""
        return input_info(self.node_input_types(class_type, inputs), name)

    def is_lazy(self, class_type: str, name: str, inputs: dict[str, Any] | None = None) -> bool:
        return bool(self.info(class_type, name, inputs)[2].get("lazy", False))

    def is_output(self, class_type: str) -> bool:
        cls = self._lookup(class_type)
        return cls is not None and getattr(cls, "OUTPUT_NODE", False) is True


class NodeNotFoundError(KeyError):
    """A node id is in neither the prompt nor the nodes expansions added (ComfyUI's
    ``comfy_execution.graph.NodeNotFoundError``; a ``KeyError`` too)."""


class DynamicPrompt:
    """The prompt being run, including nodes added by expansions.

    The one class behind both the executor and ``comfy_execution.graph.DynamicPrompt`` (the
    compat shim re-exports it), with ComfyUI's attribute and method names, so packs that
    check ``isinstance`` or read ``ephemeral_prompt`` see the object the engine passes as the
    hidden ``DYNPROMPT`` input.

    Args:
        original_prompt: API-format prompt ``{id: {class_type, inputs}}`` (not mutated).
    """

    def __init__(self, original_prompt: dict[str, Any]) -> None:
        self.original_prompt = original_prompt
        self.ephemeral_prompt: dict[str, dict[str, Any]] = {}
        self.ephemeral_parents: dict[str, str] = {}
        self.ephemeral_display: dict[str, str] = {}

    def get_original_prompt(self) -> dict[str, Any]:
        return self.original_prompt

    def has_node(self, node_id: str) -> bool:
        return node_id in self.original_prompt or node_id in self.ephemeral_prompt

    def get_node(self, node_id: str) -> dict[str, Any]:
        """The node's ``{class_type, inputs}``.

        Raises:
            NodeNotFoundError: no such node.
        """
        node = self.ephemeral_prompt.get(node_id)
        if node is None:
            node = self.original_prompt.get(node_id)
        if node is None:
            raise NodeNotFoundError(f"node `{node_id}` is not in the prompt")
        return node

    def add_ephemeral_node(self, node_id: str, node_info: dict[str, Any], parent_id: str, display_id: str) -> None:
        self.ephemeral_prompt[node_id] = node_info
        self.ephemeral_parents[node_id] = parent_id
        self.ephemeral_display[node_id] = display_id

    def get_real_node_id(self, node_id: str) -> str:
        while node_id in self.ephemeral_parents:
            node_id = self.ephemeral_parents[node_id]
        return node_id

    def get_parent_node_id(self, node_id: str) -> str | None:
        return self.ephemeral_parents.get(node_id)

    def get_display_node_id(self, node_id: str) -> str:
        while node_id in self.ephemeral_display:
            nxt = self.ephemeral_display[node_id]
            if nxt == node_id:  # a node displayed as itself: stop instead of looping forever
                break
            node_id = nxt
        return node_id

    def all_node_ids(self) -> set[str]:
        return set(self.original_prompt) | set(self.ephemeral_prompt)


def links_of(node: dict[str, Any]) -> Iterable[tuple[str, str, int]]:
    """``(input_name, source_id, output_index)`` for every linked input of a node."""
    for name, value in (node.get("inputs") or {}).items():
        if is_link(value):
            yield name, value[0], int(value[1])


def find_cycle(prompt: dict[str, Any], roots: Iterable[str]) -> list[str] | None:
    """A list of node ids forming a cycle reachable from ``roots``, or None (iterative DFS)."""
    WHITE, GREY, BLACK = 0, 1, 2
    color: dict[str, int] = {}
    for root in roots:
        if color.get(root, WHITE) != WHITE:
            continue
        stack: list[tuple[str, list[str]]] = [(root, _sources(prompt, root))]
        path = [root]
        color[root] = GREY
        while stack:
            node, pending = stack[-1]
            if pending:
                src = pending.pop()
                c = color.get(src, WHITE)
                if c == GREY:
                    return path[path.index(src):]
                if c == WHITE and src in prompt:
                    color[src] = GREY
                    path.append(src)
                    stack.append((src, _sources(prompt, src)))
            else:
                color[node] = BLACK
                stack.pop()
                path.pop()
    return None


def _sources(prompt: dict[str, Any], node_id: str) -> list[str]:
    node = prompt.get(node_id)
    if not isinstance(node, dict):
        return []
    return [src for _, src, _ in links_of(node)]
