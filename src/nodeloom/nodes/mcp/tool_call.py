"""MCPToolCall: call a tool on an MCP server the policy allows, from inside a workflow.

The server is named, not given: its stdio command or HTTP URL comes from the engine's MCP
policy (``mcp_servers`` in the policy file), so a workflow cannot reach anything the
operator did not list. Arguments are a JSON template with ``{a}``/``{b}``/``{c}``
placeholders (filled with the JSON of those inputs) or a JSON object input. An interrupted
run stops waiting for the tool at once. Torch is imported only when an image is produced,
so serving MCP stays quick to start.
"""

from __future__ import annotations

import io
import json
import math
import re
from typing import Any

from nodeloom.errors import NodeExecutionError, ValidationError
from nodeloom.mcp_client import call_tool, policy_from_settings
from nodeloom.node_api import IO, AnyInput, Float, Node, NodeContext, Output, Schema, String, context, services

__all__ = ["MCPToolCall", "build_arguments"]

_PLACEHOLDER = re.compile(r'"\{([abc])\}"|\{([abc])\}')


def build_arguments(template: str, values: dict[str, Any], json_object: Any = None) -> dict[str, Any]:
    """The tool arguments: ``template`` with placeholders filled, then ``json_object`` merged over it.

    ``"{a}"`` (quoted) and ``{a}`` (bare) both become the JSON encoding of input ``a``.

    Raises:
        ValidationError: a placeholder without a value, a value that is not JSON, or a
            template/object that is not a JSON object.
    """
    def fill(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if values.get(name) is None:
            raise ValidationError(f"`arguments` uses placeholder {{{name}}} but input `{name}` is not connected")
        try:
            return json.dumps(values[name])
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"input `{name}` ({type(values[name]).__name__}) cannot be encoded as JSON: {exc}") from exc

    text = _PLACEHOLDER.sub(fill, template.strip() or "{}")
    try:
        args = json.loads(text)
    except ValueError as exc:
        raise ValidationError(f"`arguments` must be a JSON object after filling placeholders; {exc}: {text[:200]}") from exc
    if not isinstance(args, dict):
        raise ValidationError(f"`arguments` must be a JSON object, got {type(args).__name__}")
    if json_object is not None:
        extra = json.loads(json_object) if isinstance(json_object, str) else json_object
        if not isinstance(extra, dict):
            raise ValidationError(f"`json_object` must be a JSON object (a dict or its JSON text), got {type(extra).__name__}")
        args.update(extra)
    return args


async def _call_interruptibly(call: Any, ctx: NodeContext | None) -> Any:
    """Await ``call()``, giving up as soon as the run is interrupted (checked every 0.1 s)."""
    import anyio

    if ctx is None:
        return await call()
    box: dict[str, Any] = {}
    try:
        async with anyio.create_task_group() as tg:
            async def run() -> None:
                box["value"] = await call()
                tg.cancel_scope.cancel()

            async def watch() -> None:
                while not ctx.interrupt.is_set():
                    await anyio.sleep(0.1)
                tg.cancel_scope.cancel()

            tg.start_soon(run)
            tg.start_soon(watch)
    except BaseException as exc:  # noqa: BLE001 - unwrap the task group's exception group
        inner = getattr(exc, "exceptions", None)
        raise (inner[0] if inner else exc) from None
    if "value" not in box:
        ctx.check_interrupted()
    return box["value"]


def _to_image(data: bytes) -> Any:
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError) as exc:
        raise NodeExecutionError(f"the tool's image content could not be decoded: {exc}") from exc
    return torch.from_numpy(arr.copy())[None]


class MCPToolCall(Node):
    """Call a tool on an MCP server allowed by the policy and return its text, JSON and image.

    The server is looked up by name in the policy's `mcp_servers` (a stdio command or an
    HTTP URL). Arguments come from the `arguments` JSON template, where `{a}`, `{b}` and
    `{c}` are replaced by the JSON of those inputs, merged with `json_object` if connected.
    Timeouts, unreachable servers and error results fail the node.
    """

    SCHEMA = Schema(
        node_id="MCPToolCall",
        display_name="MCP Tool Call",
        category="utils/mcp",
        inputs=[
            String("server", default="", tooltip="Name of an MCP server listed in the policy's `mcp_servers`."),
            String("tool", default="", tooltip="Name of the tool to call on that server."),
            String("arguments", default="{}", multiline=True, tooltip="JSON object of tool arguments; {a}, {b}, {c} are replaced by the JSON of those inputs."),
            Float("timeout", default=0.0, min=0.0, max=3600.0, step=1.0, tooltip="Seconds to wait for the tool; 0 uses the server's configured timeout."),
            AnyInput("a", optional=True, tooltip="Value for the {a} placeholder."),
            AnyInput("b", optional=True, tooltip="Value for the {b} placeholder."),
            AnyInput("c", optional=True, tooltip="Value for the {c} placeholder."),
            AnyInput("json_object", optional=True, tooltip="A JSON object (dict or JSON text) merged over the templated arguments."),
        ],
        outputs=[
            Output(IO.STRING, "text", tooltip="The text the tool returned."),
            Output(IO.STRING, "json", tooltip="The tool's structured (or JSON text) result, as JSON text; `null` when none."),
            Output(IO.IMAGE, "image", tooltip="The first image the tool returned, else a black 1×1 image."),
            Output(IO.BOOLEAN, "has_image", tooltip="Whether the tool returned an image."),
        ],
    )

    @classmethod
    async def execute(cls, server: str, tool: str, arguments: str, timeout: float, a: Any = None, b: Any = None, c: Any = None, json_object: Any = None) -> tuple[Any, ...]:
        if not server.strip() or not tool.strip():
            raise ValidationError("`server` and `tool` must both be given")
        if timeout < 0 or math.isnan(timeout):
            raise ValidationError(f"`timeout` must be ≥ 0, got {timeout}")
        spec = policy_from_settings(services().settings).server(server.strip(), tool.strip())
        args = build_arguments(arguments, {"a": a, "b": b, "c": c}, json_object)
        try:
            node_ctx: NodeContext | None = context()
        except NodeExecutionError:  # called directly, outside an engine run
            node_ctx = None
        outcome = await _call_interruptibly(lambda: call_tool(spec, tool.strip(), args, timeout=timeout or None), node_ctx)
        if outcome.images:
            image, has_image = _to_image(outcome.images[0][0]), True
        else:
            import torch

            image, has_image = torch.zeros((1, 1, 1, 3), dtype=torch.float32), False
        return outcome.text, json.dumps(outcome.json, default=str), image, has_image
