"""Context-local state a running node can reach: progress, interruption, engine services.

The executor sets a :class:`NodeContext` around each node call and the engine sets its
services around every entry point, through ``contextvars`` — no module-level singletons.
No I/O and no torch here.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from nodeloom.errors import Interrupted, NodeloomError

__all__ = [
    "InterruptFlag",
    "NodeContext",
    "activate_services",
    "current_node_context",
    "current_services",
    "node_context",
]


class InterruptFlag:
    """A thread-safe flag the executor checks at node boundaries and progress ticks."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Interrupted` if the flag is set."""
        if self._event.is_set():
            raise Interrupted()


ProgressSink = Callable[[str, float, float, Any], None]


@dataclass
class NodeContext:
    """What one node call may reach while it runs.

    Attributes:
        node_id: the id of the node in the running (possibly expanded) graph.
        display_node_id: the id the user sees (the top-level ancestor of an expansion).
        real_node_id: the id of the node in the original prompt.
        parent_node_id: the node that expanded into this one, if any.
        prompt_id: the id of the run.
        interrupt: the run's interrupt flag.
        services: the engine's services (paths, models, ...), opaque to core.
    """

    node_id: str
    prompt_id: str
    interrupt: InterruptFlag
    display_node_id: str | None = None
    real_node_id: str | None = None
    parent_node_id: str | None = None
    class_type: str = ""
    services: Any = None
    progress_sink: ProgressSink | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def check_interrupted(self) -> None:
        """Raise :class:`~nodeloom.errors.Interrupted` if the run was interrupted."""
        self.interrupt.check()

    def progress(self, value: float, total: float, preview: Any = None, node_id: str | None = None) -> None:
        """Report progress of this node (and check for interruption).

        Args:
            value: steps done.
            total: steps in all.
            preview: optional preview (an IMAGE tensor ``[B,H,W,C]`` or ``[H,W,C]``, or a
                PIL image) sent to viewers as a binary preview frame.
            node_id: report for another node id (ComfyUI allows this); default this node.
        """
        self.interrupt.check()
        if self.progress_sink is not None:
            self.progress_sink(node_id or self.node_id, float(value), float(total), preview)


_node_ctx: contextvars.ContextVar[NodeContext | None] = contextvars.ContextVar("nodeloom_node_ctx", default=None)
_services: contextvars.ContextVar[Any] = contextvars.ContextVar("nodeloom_services", default=None)


def current_node_context() -> NodeContext | None:
    """The context of the node running in this thread/task, or None outside a node call."""
    return _node_ctx.get()


@contextlib.contextmanager
def node_context(ctx: NodeContext) -> Iterator[NodeContext]:
    """Make ``ctx`` the current node context for the duration of the block."""
    token = _node_ctx.set(ctx)
    try:
        yield ctx
    finally:
        _node_ctx.reset(token)


def current_services(required: bool = True) -> Any:
    """The services of the engine active in this context.

    Raises:
        NodeloomError: if ``required`` and no engine is active.
    """
    ctx = _node_ctx.get()
    services = ctx.services if ctx is not None and ctx.services is not None else _services.get()
    if services is None and required:
        raise NodeloomError(
            "no nodeloom engine is active in this context; call the node through an `Engine`",
            type="no_active_engine",
        )
    return services


@contextlib.contextmanager
def activate_services(services: Any) -> Iterator[Any]:
    """Make ``services`` current for the duration of the block (engines call this)."""
    token = _services.set(services)
    try:
        yield services
    finally:
        _services.reset(token)
