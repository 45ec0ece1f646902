"""What both the MCP adapter and the MCPToolCall node read: the policy sandbox (which nodes
agents may run, which MCP servers a workflow may reach) and the client that calls one tool.

A shared leaf below the adapters and the node packs: it imports only ``nodeloom.errors`` and
``nodeloom.paths`` (and the MCP SDK lazily, when a tool is called), never an adapter, the
engine or a node pack, so ``nodeloom.mcp`` (the adapter) and ``nodeloom.nodes.mcp`` (the pack)
both import it without importing each other.
"""

from __future__ import annotations

from nodeloom.mcp_client.client import ToolCallOutcome, call_tool, call_tool_sync
from nodeloom.mcp_client.policy import POLICY_SETTING, Limits, Policy, ServerSpec, load_policy, policy_from_settings

__all__ = [
    "POLICY_SETTING",
    "Limits",
    "Policy",
    "ServerSpec",
    "ToolCallOutcome",
    "call_tool",
    "call_tool_sync",
    "load_policy",
    "policy_from_settings",
]
