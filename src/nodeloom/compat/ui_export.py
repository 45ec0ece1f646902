"""Lay an API-format prompt out as a UI-format (0.4) workflow the graph editor can open.

The inverse of :func:`nodeloom.core.workflow_ui.ui_to_api` for prompts: widget values in
``INPUT_TYPES`` order (with the frontend's extra control value after seed-like widgets),
linked widget inputs as widget sockets, nodes placed left to right. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nodeloom.core.workflow_ui import InputTypesLookup, spec_parts, widget_layout
from nodeloom.errors import WorkflowFormatError

__all__ = ["api_to_ui"]


def api_to_ui(prompt: Mapping[str, Any], input_types: InputTypesLookup) -> dict[str, Any]:
    """Lay an API-format prompt out as a UI 0.4 workflow the graph editor can open.

    Widget values follow each node's ``INPUT_TYPES`` order (``"fixed"`` after seed-like
    widgets), linked widget inputs become widget sockets, nodes are placed left to right
    in prompt order. ``ui_to_api(api_to_ui(p, f), f)`` gives ``p`` back when its ids are
    numeric (other ids are renumbered 1..n).

    Raises:
        WorkflowFormatError: unknown node type.
    """
    numeric = all(str(k).isdigit() for k in prompt)
    ids = {str(node_id): int(node_id) if numeric else i + 1 for i, node_id in enumerate(prompt)}
    by_number = {number: node_id for node_id, number in ids.items()}
    nodes: list[dict[str, Any]] = []
    links: list[list[Any]] = []
    outputs: dict[str, dict[int, list[int]]] = {nid: {} for nid in ids}
    for order, (node_id, node) in enumerate(prompt.items()):
        types = input_types(node["class_type"])
        if types is None:
            raise WorkflowFormatError(f"node {node_id}: unknown node type `{node['class_type']}`")
        layout = {name: (control, upload) for name, control, upload, force in widget_layout(types) if not force}
        values: list[Any] = []
        inputs: list[dict[str, Any]] = []
        for name, (control, upload) in layout.items():
            value = node["inputs"].get(name)
            values.append(None if isinstance(value, list) and len(value) == 2 else value)
            values.extend(["fixed"] if control else [])
            values.extend(["image"] if upload else [])
        for name, value in node["inputs"].items():
            if not (isinstance(value, list) and len(value) == 2 and str(value[0]) in ids):
                continue
            link_id = len(links) + 1
            io_type = _declared_type(types, name)
            links.append([link_id, ids[str(value[0])], int(value[1]), ids[str(node_id)], len(inputs), io_type])
            outputs[str(value[0])].setdefault(int(value[1]), []).append(link_id)
            entry: dict[str, Any] = {"name": name, "type": io_type, "link": link_id}
            if name in layout:
                entry["widget"] = {"name": name}
            inputs.append(entry)
        title = (node.get("_meta") or {}).get("title") or node["class_type"]
        nodes.append({
            "id": ids[str(node_id)], "type": node["class_type"], "pos": [40 + 320 * order, 80], "size": [300, 120],
            "flags": {}, "order": order, "mode": 0, "inputs": inputs, "outputs": [], "properties": {},
            "widgets_values": values, "title": title,
        })
    for node in nodes:
        slots = outputs[by_number[node["id"]]]
        for slot in range(max(slots, default=-1) + 1):
            node["outputs"].append({"name": f"out{slot}", "type": "*", "links": slots.get(slot, []), "slot_index": slot})
    return {
        "last_node_id": max(ids.values(), default=0), "last_link_id": len(links), "nodes": nodes, "links": links,
        "groups": [], "config": {}, "extra": {}, "version": 0.4,
    }


def _declared_type(types: Mapping[str, Any], name: str) -> str:
    for section in ("required", "optional"):
        spec = (types.get(section) or {}).get(name)
        if spec is not None:
            io_type, _ = spec_parts(spec)
            return "COMBO" if isinstance(io_type, list) else str(io_type)
    return "*"
