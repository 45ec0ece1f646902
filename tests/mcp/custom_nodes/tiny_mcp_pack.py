"""The tiny MCP test pack as a custom-node pack (for ``--custom-nodes`` in subprocess tests)."""

from tests.mcp.pack import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

# many custom-node packs print while loading; over stdio this must not reach the protocol channel
print("tiny MCP test pack loaded")
