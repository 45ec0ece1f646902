"""Resources and prompt templates of the nodeloom MCP server.

Resources: ``nodeloom://output/<subfolder>/<file>`` and ``nodeloom://temp/...`` (output
files, read through :func:`nodeloom.paths.safe_join` only), ``nodeloom://node/<class>``
(Markdown node docs) and ``nodeloom://policy`` (the effective policy). Prompts: build a
workflow for a goal, fix a workflow from its validation errors, explain a node.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from mcp.server.mcpserver.exceptions import ResourceError

from nodeloom.errors import NodeloomError
from nodeloom.mcp import discovery
from nodeloom.mcp.outputs import file_for_uri

if TYPE_CHECKING:
    from nodeloom.mcp.server import NodeloomMCP

__all__ = ["register_prompts", "register_resources"]

#: image types with their own resource template, so a read returns the right MIME type
_IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}


def register_resources(app: NodeloomMCP) -> None:
    """Register the ``nodeloom://`` resources on ``app.server``."""
    server = app.server

    for kind in ("output", "temp"):
        for ext, mime in _IMAGE_TYPES.items():
            _file_template(app, kind, ext, mime)
        _file_template(app, kind, None, "application/octet-stream")

    @server.resource("nodeloom://node/{class_type}", name="node_doc", mime_type="text/markdown")
    def node_doc(class_type: str) -> str:
        """Documentation of one node type: inputs, outputs, defaults and choices."""
        try:
            return discovery.node_markdown(discovery.describe_node(app.engine.object_info(), app.policy, class_type))
        except NodeloomError as exc:
            raise ResourceError(exc.message) from exc

    @server.resource("nodeloom://policy", name="policy", mime_type="application/json")
    def policy() -> str:
        """The policy this server enforces (rules and limits; no secrets)."""
        return json.dumps(app.policy.summary(), indent=2)


def _file_template(app: NodeloomMCP, kind: str, ext: str | None, mime: str) -> None:
    uri = f"nodeloom://{kind}/{{+stem}}.{ext}" if ext else f"nodeloom://{kind}/{{+path}}"

    def read(**params: str) -> bytes:
        rel = f"{params['stem']}.{ext}" if ext else params["path"]
        try:
            return file_for_uri(app.engine.paths, kind, rel).read_bytes()
        except NodeloomError as exc:
            raise ResourceError(exc.message) from exc

    if ext:
        def read_typed(stem: str) -> bytes:
            return read(stem=stem)

        fn = read_typed
    else:
        def read_any(path: str) -> bytes:
            return read(path=path)

        fn = read_any
    fn.__doc__ = f"A file in the {kind} folder" + (f" ({ext})." if ext else ".")
    app.server.resource(uri, name=f"{kind}_{ext or 'file'}", mime_type=mime)(fn)


def register_prompts(app: NodeloomMCP) -> None:
    """Register the prompt templates on ``app.server``."""
    server = app.server

    @server.prompt(title="Build a workflow")
    def build_workflow(goal: str) -> str:
        """Plan and build a nodeloom workflow that reaches a goal, validating before running."""
        return (
            f"Build a nodeloom workflow that does this: {goal}\n\n"
            "Steps: 1) call list_example_workflows and reuse an example if one is close; "
            "2) find nodes with search_nodes and read each one's inputs with describe_node; "
            "3) write the workflow in API format ({node_id: {class_type, inputs}}, links as [node_id, output_index]) "
            "with at least one output node (e.g. a Save node); 4) call validate_workflow and fix every "
            "node error (the suggestions name the closest node types and inputs); 5) call run_workflow "
            "with an idempotency_key; if it returns a job_id, poll get_job. Stay within the policy "
            "(read nodeloom://policy): no node it denies, file names inside the input/output folders."
        )

    @server.prompt(title="Fix a workflow")
    def fix_workflow(workflow_json: str, errors: str = "") -> str:
        """Repair a workflow from its validation errors."""
        known = f"\n\nErrors reported so far:\n{errors}" if errors else ""
        return (
            "This nodeloom workflow does not validate. Call validate_workflow on it, then fix each "
            "node error: replace unknown node types and input names with the suggested ones, connect "
            "missing required inputs, and keep values inside the ranges describe_node gives. Return the "
            f"corrected API-format JSON and validate it again.\n\nWorkflow:\n{workflow_json}{known}"
        )

    @server.prompt(title="Explain a node")
    def explain_node(class_type: str) -> str:
        """Explain what a node does and how to wire it, from its documentation."""
        try:
            doc = discovery.node_markdown(discovery.describe_node(app.engine.object_info(), app.policy, class_type))
        except NodeloomError as exc:
            doc = f"(unavailable: {exc.message})"
        return f"Explain to a workflow author what this nodeloom node does, when to use it and how to connect it.\n\n{doc}"
