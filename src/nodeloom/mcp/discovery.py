"""Node and model discovery for the MCP tools, over ``engine.object_info()``.

Search ranks nodes by where the query words appear (type name, display name, category,
description); descriptions are built from the ComfyUI ``/object_info`` entry, so custom
V1 nodes and declarative nodes read alike. No MCP SDK import here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nodeloom.errors import ValidationError
from nodeloom.mcp.models import InputDoc, ModelList, NodeDescription, NodeSearchResult, NodeSummary, OutputDoc
from nodeloom.mcp_client.policy import Policy
from nodeloom.mcp.workflows import suggest

__all__ = ["describe_node", "list_models", "node_markdown", "search_nodes"]


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _score(query_words: list[str], class_type: str, entry: Mapping[str, Any]) -> int:
    name, display = class_type.lower(), str(entry.get("display_name", "")).lower()
    category, desc = str(entry.get("category", "")).lower(), str(entry.get("description", "")).lower()
    total = 0
    for word in query_words:
        if word == name:
            total += 100
        elif name.startswith(word) or display.startswith(word):
            total += 40
        elif word in name or word in display:
            total += 25
        elif word in category:
            total += 10
        elif word in desc:
            total += 5
        else:
            return 0
    return total


def search_nodes(
    object_info: Mapping[str, Any], policy: Policy, query: str = "", category: str | None = None,
    offset: int = 0, limit: int = 20, include_denied: bool = False,
) -> NodeSearchResult:
    """Nodes matching every query word, best first, one page at a time.

    Args:
        object_info: the engine's ``/object_info``.
        policy: marks (or hides) nodes the policy refuses.
        query: words to look for; empty lists every node (by category, then name).
        category: keep only this category and its sub-categories.
        offset / limit: the page (``limit`` 1..200).
        include_denied: list nodes the policy refuses too (marked ``allowed: false``).

    Raises:
        ValidationError: ``offset`` < 0 or ``limit`` outside 1..200.
    """
    if offset < 0:
        raise ValidationError(f"`offset` must be ≥ 0, got {offset}")
    if not 1 <= limit <= 200:
        raise ValidationError(f"`limit` must be between 1 and 200, got {limit}")
    words = [w for w in query.lower().split() if w]
    scored: list[tuple[int, str, str]] = []
    for class_type, entry in object_info.items():
        cat = str(entry.get("category", ""))
        if category and not (cat == category or cat.startswith(category.rstrip("/") + "/")):
            continue
        allowed = policy.node_allowed(class_type, cat) is None
        if not allowed and not include_denied:
            continue
        score = _score(words, class_type, entry) if words else 1
        if score:
            scored.append((-score, cat, class_type))
    scored.sort()
    page = scored[offset: offset + limit]
    nodes = [_summary(ct, object_info[ct], policy) for _, _, ct in page]
    nxt = offset + limit if offset + limit < len(scored) else None
    return NodeSearchResult(total=len(scored), offset=offset, limit=limit, next_offset=nxt, nodes=nodes)


def _summary(class_type: str, entry: Mapping[str, Any], policy: Policy) -> NodeSummary:
    cat = str(entry.get("category", ""))
    return NodeSummary(
        class_type=class_type, display_name=str(entry.get("display_name") or class_type), category=cat,
        description=_first_line(str(entry.get("description", ""))), output_node=bool(entry.get("output_node")),
        allowed=policy.node_allowed(class_type, cat) is None,
    )


def describe_node(object_info: Mapping[str, Any], policy: Policy, class_type: str) -> NodeDescription:
    """Everything an agent needs to wire ``class_type``: inputs, outputs, defaults, choices.

    Raises:
        ValidationError: unknown node type (with closest matches).
    """
    entry = object_info.get(class_type)
    if entry is None:
        hints = suggest(class_type, object_info)
        raise ValidationError(
            f"node type `{class_type}` does not exist" + (f"; did you mean {hints}?" if hints else ""),
            type="unknown_node_type", extra_info={"suggestions": hints},
        )
    inputs: list[InputDoc] = []
    for section in ("required", "optional"):
        for name, spec in (entry.get("input", {}).get(section) or {}).items():
            inputs.append(_input_doc(name, spec, section == "required"))
    names = entry.get("output_name") or []
    tips = entry.get("output_tooltips") or []
    is_list = entry.get("output_is_list") or []
    outputs = [
        OutputDoc(
            name=str(names[i] if i < len(names) else t), type=str(t if not isinstance(t, list) else "COMBO"),
            is_list=bool(is_list[i]) if i < len(is_list) else False, tooltip=(tips[i] or None) if i < len(tips) else None,
        )
        for i, t in enumerate(entry.get("output") or [])
    ]
    cat = str(entry.get("category", ""))
    rule = policy.node_allowed(class_type, cat)
    return NodeDescription(
        class_type=class_type, display_name=str(entry.get("display_name") or class_type), category=cat,
        description=str(entry.get("description", "")), inputs=inputs, outputs=outputs,
        output_node=bool(entry.get("output_node")), allowed=rule is None, denied_by=rule,
        doc_uri=f"nodeloom://node/{class_type}",
    )


def _input_doc(name: str, spec: Any, required: bool) -> InputDoc:
    spec = list(spec) if isinstance(spec, (list, tuple)) else [spec]
    kind = spec[0] if spec else "*"
    opts: dict[str, Any] = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    choices = list(kind) if isinstance(kind, list) else opts.get("options") if kind == "COMBO" else None
    return InputDoc(
        name=name, type="COMBO" if isinstance(kind, list) else str(kind), required=required,
        default=opts.get("default"), min=_num(opts.get("min")), max=_num(opts.get("max")), options=choices,
        tooltip=opts.get("tooltip"),
    )


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def node_markdown(desc: NodeDescription) -> str:
    """A Markdown page for the ``nodeloom://node/<class>`` resource."""
    lines = [f"# {desc.display_name} (`{desc.class_type}`)", "", f"Category: `{desc.category}`", ""]
    if desc.description:
        lines += [desc.description, ""]
    if not desc.allowed:
        lines += [f"**Refused by the policy rule `{desc.denied_by}`.**", ""]
    lines += ["## Inputs", ""]
    for i in desc.inputs:
        extra = []
        if i.default is not None:
            extra.append(f"default {i.default!r}")
        if i.min is not None or i.max is not None:
            extra.append(f"range {i.min if i.min is not None else '-∞'}..{i.max if i.max is not None else '∞'}")
        if i.options:
            extra.append("one of " + ", ".join(f"`{o}`" for o in i.options[:20]))
        tip = f" — {i.tooltip}" if i.tooltip else ""
        lines.append(f"- `{i.name}` ({i.type}{', required' if i.required else ', optional'}{'; ' + '; '.join(extra) if extra else ''}){tip}")
    lines += ["", "## Outputs", ""]
    for o in desc.outputs:
        lines.append(f"- `{o.name}` ({o.type}{', list' if o.is_list else ''}){' — ' + o.tooltip if o.tooltip else ''}")
    if desc.output_node:
        lines += ["", "This is an output node: workflows run to reach it."]
    return "\n".join(lines) + "\n"


def list_models(paths: Any, folder: str | None = None) -> ModelList:
    """Model files per folder (``checkpoints``, ``loras``, ...), or only ``folder``.

    Raises:
        ValidationError: unknown folder name (naming the known ones).
    """
    names = [folder] if folder else sorted(paths.folders)
    return ModelList(folders={name: paths.get_filename_list(name) for name in names})
