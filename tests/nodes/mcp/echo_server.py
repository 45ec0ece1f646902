"""A small MCP server for the MCPToolCall tests (stdio): echo, add, an image, a slow and a failing tool."""

from __future__ import annotations

import io
import time

from mcp.server.mcpserver import Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from PIL import Image as PILImage
from pydantic import BaseModel

server = MCPServer("echo")


class Sum(BaseModel):
    sum: int


@server.tool()
def echo(text: str) -> str:
    """Return the text."""
    return text


@server.tool()
def add(a: int, b: int) -> Sum:
    """Add two integers."""
    return Sum(sum=a + b)


@server.tool()
def make_image(width: int, height: int) -> Image:
    """A red PNG of the given size."""
    buf = io.BytesIO()
    PILImage.new("RGB", (width, height), (255, 0, 0)).save(buf, "PNG")
    return Image(data=buf.getvalue(), format="png")


@server.tool()
def slow(seconds: float) -> str:
    """Sleep, then answer."""
    time.sleep(seconds)
    return "late"


@server.tool()
def fail() -> str:
    """Always fail."""
    raise ToolError("deliberate failure")


if __name__ == "__main__":
    server.run()
