"""Reading workflow files (API or UI JSON, or a PNG that embeds one), ``--set`` edits, and the
text of validation problems.

Shared by the adapters that take a workflow file (``nodeloom run``/``validate``/``convert`` and
``nodeloom batch``), so none of them imports another. Conversion of UI workflows uses the
engine's registry for each node's ``INPUT_TYPES``. Imports no adapter.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from nodeloom.core.context import activate_services
from nodeloom.core.workflow_ui import detect_format, to_api
from nodeloom.errors import WorkflowFormatError
from nodeloom.workflows.survey import unknown_types_error

if TYPE_CHECKING:
    from nodeloom.engine import Engine

__all__ = ["apply_overrides", "embedded_workflow", "load_prompt", "parse_override", "print_validation_errors", "read_workflow"]


def read_workflow(path: str) -> Any:
    """Parse a workflow from a ``.json`` file, ``-`` (stdin) or a PNG's ``prompt``/``workflow`` chunk.

    Raises:
        WorkflowFormatError: unreadable file, invalid JSON, or a PNG without a workflow.
    """
    try:
        if path == "-":
            return json.loads(sys.stdin.read())
        file = Path(path)
        if file.suffix.lower() == ".png":
            return _png_workflow(file)
        return json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WorkflowFormatError(f"cannot read workflow `{path}`: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise WorkflowFormatError(f"`{path}` is not valid JSON: {exc}") from exc


def _png_workflow(file: Path) -> Any:
    from PIL import Image

    with Image.open(file) as img:
        text = dict(getattr(img, "text", {}) or {})
    for key in ("prompt", "workflow"):
        if key in text:
            return json.loads(text[key])
    raise WorkflowFormatError(f"`{file}` has no `prompt` or `workflow` text chunk")


def _input_types(engine: Engine) -> Callable[[str], dict[str, Any] | None]:
    return engine.input_types


def load_prompt(engine: Engine, path: str, *, with_ui: bool = False) -> Any:
    """The API-format prompt of a workflow file (UI workflows converted with ``engine``'s nodes).

    Accepts an API prompt, a UI workflow, or a saved ``POST /prompt`` request body.

    Args:
        engine: supplies node definitions for the conversion.
        path: see :func:`read_workflow`.
        with_ui: also return the UI workflow when the file held one (else None).

    Raises:
        WorkflowFormatError: see :func:`read_workflow` and :func:`nodeloom.core.workflow_ui.to_api`;
            also one error naming every node type the engine does not know.
    """
    data = read_workflow(path)
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict) and "class_type" not in data["prompt"]:
        # a saved ``POST /prompt`` body: {"prompt": {...}, "extra_data": {"extra_pnginfo": {"workflow": ...}}}
        ui = ((data.get("extra_data") or {}).get("extra_pnginfo") or {}).get("workflow")
        return (data["prompt"], ui) if with_ui else data["prompt"]
    fmt = detect_format(data)
    unknown = unknown_types_error(data, lambda kind: engine.registry.get(kind) is not None)
    if unknown is not None:
        raise unknown
    if fmt == "api":
        return (data, None) if with_ui else data
    with activate_services(engine.services):
        prompt = to_api(data, _input_types(engine), engine.registry.display_name)
    return (prompt, data) if with_ui else prompt


def embedded_workflow(engine: Engine, prompt: dict[str, Any], ui_workflow: Any) -> Any:
    """The UI workflow to embed in saved PNGs: the given one, else one laid out from ``prompt``.

    Returns None when the prompt names node types the engine does not know.
    """
    if ui_workflow is not None:
        return ui_workflow
    from nodeloom.compat.ui_export import api_to_ui

    try:
        with activate_services(engine.services):
            return api_to_ui(prompt, _input_types(engine))
    except (WorkflowFormatError, KeyError, TypeError, AttributeError):
        return None  # validation reports what is wrong with the prompt


def parse_override(text: str) -> tuple[str, str, Any]:
    """Split ``NODE.INPUT=VALUE``; VALUE is JSON when it parses, else the plain string.

    Raises:
        WorkflowFormatError: no ``=`` or no ``.`` before it.
    """
    target, sep, raw = text.partition("=")
    node, dot, name = target.rpartition(".")
    if not sep or not dot or not node or not name:
        raise WorkflowFormatError(f"`--set {text}` must look like NODE.INPUT=VALUE (e.g. 3.seed=42)")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return node, name, value


def apply_overrides(prompt: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Set inputs from ``--set`` options; NODE is a node id or a unique ``_meta.title``.

    Returns:
        The edited prompt (the same dict).

    Raises:
        WorkflowFormatError: unknown node, ambiguous title, or a malformed option.
    """
    for text in overrides:
        node, name, value = parse_override(text)
        if node not in prompt:
            matches = [nid for nid, n in prompt.items() if (n.get("_meta") or {}).get("title") == node]
            if len(matches) != 1:
                reason = "matches several nodes" if matches else "is neither a node id nor a node title"
                raise WorkflowFormatError(f"`--set {text}`: `{node}` {reason} in this workflow")
            node = matches[0]
        prompt[node].setdefault("inputs", {})[name] = value
    return prompt


def print_validation_errors(error: dict[str, Any] | None, node_errors: dict[str, Any], stream: TextIO) -> None:
    """Human-readable list of every validation problem of a workflow, on ``stream``."""
    if error:
        print(f"invalid workflow: {error.get('message')}", file=stream)
    for node_id, entry in node_errors.items():
        for err in entry.get("errors", []):
            details = f" ({err['details']})" if err.get("details") else ""
            print(f"  node {node_id} ({entry.get('class_type')}): {err.get('message')}{details}", file=stream)
