"""The MCP node pack: call tools on MCP servers that the engine's policy allows."""

from nodeloom.node_api import mappings
from nodeloom.nodes.mcp.tool_call import MCPToolCall

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "MCPToolCall"]

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(MCPToolCall)
