"""``comfy_execution.graph``: ExecutionBlocker, DynamicPrompt and NodeNotFoundError.

All three are the engine's own classes, re-exported (never re-implemented) so that
``isinstance`` checks agree with what the engine passes: packs return
``ExecutionBlocker(message)`` to block downstream nodes, receive the running
``DynamicPrompt`` as the hidden ``DYNPROMPT`` input, or build one themselves.
"""

from __future__ import annotations

from nodeloom.core.graph import DynamicPrompt, NodeNotFoundError
from nodeloom.core.graph_builder import ExecutionBlocker

__all__ = ["DynamicPrompt", "ExecutionBlocker", "NodeNotFoundError"]
