"""``comfy_execution.graph``: ExecutionBlocker, and a read-only DynamicPrompt view.

Packs return ``ExecutionBlocker(message)`` to block downstream nodes; the engine's own class
is re-exported so ``isinstance`` checks agree. ``DynamicPrompt`` wraps an API-format prompt
for packs that construct one themselves; the engine passes its own object as the hidden
``DYNPROMPT`` input.
"""

from __future__ import annotations

from typing import Any

from nodeloom.core.graph_builder import ExecutionBlocker

__all__ = ["DynamicPrompt", "ExecutionBlocker", "NodeNotFoundError"]


class NodeNotFoundError(Exception):
    """A node id is not in the prompt."""


class DynamicPrompt:
    """A prompt plus nodes created by expansion (``{id: {class_type, inputs}}``).

    Args:
        original_prompt: the API-format prompt as submitted.
    """

    def __init__(self, original_prompt: dict[str, Any]) -> None:
        self.original_prompt = original_prompt
        self.ephemeral_prompt: dict[str, Any] = {}
        self.ephemeral_parents: dict[str, str] = {}
        self.ephemeral_display: dict[str, str] = {}

    def get_node(self, node_id: str) -> dict[str, Any]:
        if node_id in self.ephemeral_prompt:
            return self.ephemeral_prompt[node_id]
        if node_id in self.original_prompt:
            return self.original_prompt[node_id]
        raise NodeNotFoundError(f"node `{node_id}` is not in the prompt")

    def has_node(self, node_id: str) -> bool:
        return node_id in self.original_prompt or node_id in self.ephemeral_prompt

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
            node_id = self.ephemeral_display[node_id]
        return node_id

    def all_node_ids(self) -> set[str]:
        return set(self.original_prompt) | set(self.ephemeral_prompt)

    def get_original_prompt(self) -> dict[str, Any]:
        return self.original_prompt
