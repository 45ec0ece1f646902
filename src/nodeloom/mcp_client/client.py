"""A small MCP client for calling one tool on a configured server (used by the MCPToolCall node).

A :class:`~nodeloom.mcp_client.policy.ServerSpec` names a stdio command or a streamable HTTP URL;
:func:`call_tool` connects with the official SDK client, calls the tool under a timeout and
returns a :class:`ToolCallOutcome` (text, JSON, decoded images). Failures become
:class:`~nodeloom.errors.NodeExecutionError` naming the server and tool. The SDK is imported
lazily, so a missing ``mcp`` extra is reported as such.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from nodeloom.errors import MissingDependencyError, NodeExecutionError, require
from nodeloom.mcp_client.policy import ServerSpec

__all__ = ["ToolCallOutcome", "call_tool", "call_tool_sync"]


@dataclass
class ToolCallOutcome:
    """What a tool returned.

    Attributes:
        text: the text blocks joined by newlines.
        json: the structured content, else the text parsed as JSON when it is JSON, else None.
        images: the image blocks, decoded to bytes, with their MIME types.
        is_error: the server flagged the result as an error.
    """

    text: str
    json: Any
    images: list[tuple[bytes, str]] = field(default_factory=list)
    is_error: bool = False


async def call_tool(spec: ServerSpec, tool: str, arguments: dict[str, Any], *, timeout: float | None = None) -> ToolCallOutcome:
    """Connect to ``spec``, call ``tool`` with ``arguments`` and return its outcome.

    Args:
        spec: the server (stdio command or HTTP URL).
        tool: the tool name.
        arguments: the tool's JSON arguments.
        timeout: seconds for connecting plus the call (default: ``spec.timeout``).

    Raises:
        NodeExecutionError: connection failure, timeout, or an error result (naming the server and tool).
        MissingDependencyError: the ``mcp`` SDK is missing.
    """
    require("mcp", "mcp")
    import anyio

    limit = timeout if timeout is not None else spec.timeout
    where = f"MCP tool `{tool}` on server `{spec.name}`"
    try:
        with anyio.fail_after(limit):
            result = await _call(spec, tool, arguments)
    except TimeoutError as exc:
        raise NodeExecutionError(f"{where} did not answer within {limit:g} s", extra_info={"server": spec.name, "tool": tool}) from exc
    except (NodeExecutionError, MissingDependencyError):
        raise
    except Exception as exc:  # noqa: BLE001 - transport and protocol failures all surface as one node error
        raise NodeExecutionError(f"{where} failed: {type(exc).__name__}: {_message(exc)}", extra_info={"server": spec.name, "tool": tool}) from exc
    outcome = _outcome(result)
    if outcome.is_error:
        raise NodeExecutionError(f"{where} returned an error: {outcome.text or '(no message)'}", extra_info={"server": spec.name, "tool": tool})
    return outcome


def call_tool_sync(spec: ServerSpec, tool: str, arguments: dict[str, Any], *, timeout: float | None = None) -> ToolCallOutcome:
    """:func:`call_tool` from synchronous code (on a helper thread with its own event loop)."""
    import anyio

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = anyio.run(lambda: call_tool(spec, tool, arguments, timeout=timeout))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target, name=f"mcp-call-{spec.name}", daemon=True)
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


async def _call(spec: ServerSpec, tool: str, arguments: dict[str, Any]) -> Any:
    from mcp import Client, StdioServerParameters

    if spec.command:
        params = StdioServerParameters(command=spec.command, args=spec.args, env=spec.env or None, cwd=spec.cwd)
        async with Client(params) as client:
            return await client.call_tool(tool, arguments)
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    timeout = httpx2.Timeout(30.0, read=300.0)
    async with httpx2.AsyncClient(headers=spec.headers or None, timeout=timeout) as http:
        async with Client(streamable_http_client(str(spec.url), http_client=http)) as client:
            return await client.call_tool(tool, arguments)


def _outcome(result: Any) -> ToolCallOutcome:
    texts: list[str] = []
    images: list[tuple[bytes, str]] = []
    for block in result.content or []:
        kind = getattr(block, "type", None)
        if kind == "text":
            texts.append(block.text)
        elif kind == "image":
            images.append((base64.b64decode(block.data), block.mime_type))
    text = "\n".join(texts)
    data = result.structured_content
    if data is None and text:
        try:
            data = json.loads(text)
        except ValueError:
            data = None
    return ToolCallOutcome(text=text, json=data, images=images, is_error=bool(result.is_error))


def _message(exc: BaseException) -> str:
    inner = getattr(exc, "exceptions", None)
    if inner:
        return "; ".join(_message(e) for e in inner)
    return str(exc) or type(exc).__name__
