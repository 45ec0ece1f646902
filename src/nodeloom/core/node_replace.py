"""Node replacements: which node a prompt's missing node type is swapped for, and how.

Packs register replacements (ComfyUI's ``io.NodeReplace``) as plain entries ``{old_node_id,
new_node_id, old_widget_ids, input_mapping, output_mapping}``; the frontend reads them from
``/node_replacements`` to offer the swap in the editor, and :func:`apply_node_replacements`
does it on submitted prompts, as ComfyUI does before validation: a node whose type is not
registered but has a replacement whose new type is, becomes that type, with inputs taken
from ``{"new_id", "old_id"}`` entries or set by ``{"new_id", "set_value"}`` ones, and links
from its outputs renumbered by ``{"old_idx", "new_idx"}``. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from nodeloom.core.graph_builder import is_link

__all__ = ["apply_node_replacements", "check_replacement"]


def check_replacement(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A replacement entry with its fields checked.

    Raises:
        ValueError: naming the field that is missing or malformed.
    """
    for key in ("old_node_id", "new_node_id"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise ValueError(f"node replacement: `{key}` must be a non-empty string, got {entry.get(key)!r}")
    for item in entry.get("input_mapping") or []:
        if not isinstance(item, Mapping) or "new_id" not in item or not ({"old_id", "set_value"} & set(item)):
            raise ValueError(f"node replacement `{entry['old_node_id']}`: each `input_mapping` entry needs `new_id` "
                             f"and `old_id` or `set_value`, got {item!r}")
    for item in entry.get("output_mapping") or []:
        if not isinstance(item, Mapping) or not all(isinstance(item.get(k), int) for k in ("old_idx", "new_idx")):
            raise ValueError(f"node replacement `{entry['old_node_id']}`: each `output_mapping` entry needs integer "
                             f"`old_idx` and `new_idx`, got {item!r}")
    return {"new_node_id": entry["new_node_id"], "old_node_id": entry["old_node_id"],
            "old_widget_ids": entry.get("old_widget_ids"),
            "input_mapping": list(entry["input_mapping"]) if entry.get("input_mapping") else None,
            "output_mapping": list(entry["output_mapping"]) if entry.get("output_mapping") else None}


def apply_node_replacements(prompt: dict[str, Any], known: Callable[[str], bool],
                            replacements: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """``prompt`` with unknown node types swapped for their first registered replacement.

    Args:
        prompt: an API-format prompt (not mutated).
        known: whether a node type is registered.
        replacements: ``{old_node_id: [entry, ...]}``.

    Returns:
        The same object when nothing is replaced, else a copy with the replaced nodes and
        the renumbered links.
    """
    swaps = {nid: replacements[node["class_type"]][0] for nid, node in prompt.items()
             if isinstance(node, dict) and isinstance(node.get("class_type"), str) and isinstance(node.get("inputs"), dict)
             and not known(node["class_type"]) and replacements.get(node["class_type"])}
    swaps = {nid: entry for nid, entry in swaps.items() if known(entry["new_node_id"])}
    if not swaps:
        return prompt
    out = dict(prompt)
    for nid, entry in swaps.items():
        out[nid] = _replaced_node(prompt[nid], entry)
    for nid, node in prompt.items():
        if isinstance(node, dict) and isinstance(node.get("inputs"), dict):
            relinked = _relinked_inputs(out[nid]["inputs"], swaps)
            if relinked is not None:
                out[nid] = {**out[nid], "inputs": relinked}
    return out


def _replaced_node(node: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    for item in entry.get("input_mapping") or []:
        if "set_value" in item:
            inputs[item["new_id"]] = item["set_value"]
        elif item["old_id"] in node["inputs"]:
            inputs[item["new_id"]] = node["inputs"][item["old_id"]]
    return {**node, "class_type": entry["new_node_id"], "inputs": inputs, "_meta": dict(node.get("_meta") or {})}


def _relinked_inputs(inputs: dict[str, Any], swaps: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    changed: dict[str, Any] = {}
    for name, value in inputs.items():
        if not is_link(value) or value[0] not in swaps:
            continue
        for item in swaps[value[0]].get("output_mapping") or []:
            if item["old_idx"] == value[1]:
                changed[name] = [value[0], item["new_idx"]]
    return {**inputs, **changed} if changed else None
