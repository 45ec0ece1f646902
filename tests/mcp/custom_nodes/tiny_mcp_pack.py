"""The tiny MCP test pack as a custom-node pack (for ``--custom-nodes`` in subprocess tests)."""

from tests.mcp.pack import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
