"""Build API-format graphs in Python, and the link / blocker values of the node contract.

``GraphBuilder`` gives nodes made by a node expansion deterministic ids: the executor sets
a default prefix ``"{parent}.{call}.{graph}."`` around each node call (context-local, so
concurrent node calls never share it). ``ExecutionBlocker`` is the value that blocks the
list items it sits in. No I/O.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

__all__ = ["ExecutionBlocker", "GraphBuilder", "GraphNode", "is_link", "prefix_scope"]


def is_link(obj: Any) -> bool:
    """Whether ``obj`` is a link ``[node_id: str, output_index: int]``."""
    return (
        isinstance(obj, list)
        and len(obj) == 2
        and isinstance(obj[0], str)
        and isinstance(obj[1], (int, float))
        and not isinstance(obj[1], bool)
    )


class ExecutionBlocker:
    """An output value that blocks downstream nodes.

    Args:
        message: shown as an ``ExecutionBlocked`` execution error when a node would have
            received it; ``None`` blocks silently.
    """

    def __init__(self, message: str | None) -> None:
        self.message = message

    def __repr__(self) -> str:
        return f"ExecutionBlocker({self.message!r})"


class _PrefixState:
    def __init__(self, root: str = "", call_index: int = 0) -> None:
        self.root = root
        self.call_index = call_index
        self.graph_index = 0


_prefix: contextvars.ContextVar[_PrefixState | None] = contextvars.ContextVar("nodeloom_graph_prefix", default=None)


@contextlib.contextmanager
def prefix_scope(root: str, call_index: int) -> Iterator[None]:
    """Within the block, ``GraphBuilder()`` allocates prefixes under ``root``/``call_index``."""
    token = _prefix.set(_PrefixState(root, call_index))
    try:
        yield
    finally:
        _prefix.reset(token)


class GraphNode:
    """A node being built: ``out(i)`` links to its outputs, ``set_input`` edits inputs."""

    def __init__(self, node_id: str, class_type: str, inputs: dict[str, Any]) -> None:
        self.id = node_id
        self.class_type = class_type
        self.inputs = inputs
        self.override_display_id: str | None = None

    def out(self, index: int) -> list[Any]:
        return [self.id, index]

    def set_input(self, key: str, value: Any) -> None:
        if value is None:
            self.inputs.pop(key, None)
        else:
            self.inputs[key] = value

    def get_input(self, key: str) -> Any:
        return self.inputs.get(key)

    def set_override_display_id(self, override_display_id: str) -> None:
        self.override_display_id = override_display_id

    def serialize(self) -> dict[str, Any]:
        data: dict[str, Any] = {"class_type": self.class_type, "inputs": self.inputs}
        if self.override_display_id is not None:
            data["override_display_id"] = self.override_display_id
        return data


class GraphBuilder:
    """Build an API-format graph: ``g.node("ImageInvert", image=other.out(0))``.

    Args:
        prefix: id prefix of every node; default: the next deterministic prefix of the
            node call in progress (``"" + ".0.0."`` outside one).
    """

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix if prefix is not None else self.alloc_prefix()
        self.nodes: dict[str, GraphNode] = {}
        self.id_gen = 1

    @staticmethod
    def alloc_prefix(root: str | None = None, call_index: int | None = None, graph_index: int | None = None) -> str:
        state = _prefix.get()
        if state is None:
            state = _PrefixState()
            _prefix.set(state)
        r = state.root if root is None else root
        c = state.call_index if call_index is None else call_index
        g = state.graph_index if graph_index is None else graph_index
        state.graph_index += 1
        return f"{r}.{c}.{g}."

    @classmethod
    def set_default_prefix(cls, prefix_root: str, call_index: int, graph_index: int = 0) -> None:
        state = _PrefixState(prefix_root, call_index)
        state.graph_index = graph_index
        _prefix.set(state)

    def node(self, class_type: str, id: str | None = None, **inputs: Any) -> GraphNode:  # noqa: A002
        if id is None:
            id = str(self.id_gen)
            self.id_gen += 1
        full_id = self.prefix + id
        if full_id in self.nodes:
            return self.nodes[full_id]
        node = GraphNode(full_id, class_type, inputs)
        self.nodes[full_id] = node
        return node

    def lookup_node(self, id: str) -> GraphNode | None:  # noqa: A002
        return self.nodes.get(self.prefix + id)

    def finalize(self) -> dict[str, Any]:
        """The API-format graph ``{id: {class_type, inputs}}``."""
        return {node_id: node.serialize() for node_id, node in self.nodes.items()}

    def replace_node_output(self, node_id: str, index: int, new_value: Any) -> None:
        """Point every link to ``node_id``'s output ``index`` at ``new_value`` (None: drop it)."""
        full_id = self.prefix + node_id
        for node in self.nodes.values():
            for key, value in list(node.inputs.items()):
                if is_link(value) and value[0] == full_id and value[1] == index:
                    node.set_input(key, new_value)

    def remove_node(self, id: str) -> None:  # noqa: A002
        self.nodes.pop(self.prefix + id, None)
