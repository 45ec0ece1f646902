"""Inputs whose sockets a node's prompt decides — the frontend's Autogrow, DynamicCombo and
DynamicSlot entries (``COMFY_AUTOGROW_V3`` / ``COMFY_DYNAMICCOMBO_V3`` / ``COMFY_DYNAMICSLOT_V3``)
in a node's ``INPUT_TYPES()``, whether a V3 class or a declarative node declares them.

:func:`expand_input_types` turns the declared inputs plus the names and values a prompt gives a
node into the concrete inputs validation checks (``<id>.<name>`` autogrow copies, the chosen
option's ``<id>.<input>``, a connected slot's ``<id>.<input>``) and records how
:func:`nest_inputs` groups the dotted values under ``<id>``. Pure functions on declarations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["AUTOGROW", "DYNAMIC_COMBO", "DYNAMIC_SLOT", "DynamicPaths", "expand_input_types", "has_dynamic_inputs",
           "nest_inputs"]

AUTOGROW = "COMFY_AUTOGROW_V3"
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
DYNAMIC_SLOT = "COMFY_DYNAMICSLOT_V3"


def has_dynamic_inputs(sections: dict[str, Any]) -> bool:
    """Whether declared ``INPUT_TYPES`` sections hold an Autogrow, DynamicCombo or DynamicSlot entry."""
    return any(_kind(spec) is not None for key in ("required", "optional") for spec in (sections.get(key) or {}).values())


def _kind(spec: Any) -> str | None:
    kind = spec[0] if isinstance(spec, (list, tuple)) and spec else None
    return str(kind) if isinstance(kind, str) and str(kind) in (AUTOGROW, DYNAMIC_COMBO, DYNAMIC_SLOT) else None


@dataclass
class DynamicPaths:
    """How :func:`nest_inputs` groups dotted values: flat name → its path, and empty groups."""

    paths: dict[str, str] = field(default_factory=dict)
    empty_groups: list[str] = field(default_factory=list)


def expand_input_types(sections: dict[str, Any], live: dict[str, Any]) -> tuple[dict[str, Any], DynamicPaths]:
    """The concrete inputs of a node whose prompt inputs are ``live``, and their grouping.

    Args:
        sections: the declared ``INPUT_TYPES()`` (``required`` / ``optional`` / ``hidden``).
        live: the node's inputs in the prompt (names to values or links).

    Returns:
        ``(sections, paths)``: autogrow copies under ``<id>.<name>`` (required up to the
        template's ``min`` when the template is required), the inputs of each chosen option
        under ``<id>.<input id>``, and a DynamicCombo kept as a combo of its option keys.
    """
    out: dict[str, Any] = {"required": {}, "optional": {}}
    if "hidden" in sections:
        out["hidden"] = sections["hidden"]
    paths = DynamicPaths()
    _expand(out, paths, live, sections, [])
    return out, paths


def _expand(out: dict[str, Any], paths: DynamicPaths, live: dict[str, Any], sections: dict[str, Any],
            prefix: list[str]) -> None:
    for section in ("required", "optional"):
        for name, spec in (sections.get(section) or {}).items():
            kind, flat = _kind(spec), ".".join([*prefix, name])
            if kind == AUTOGROW:
                _expand_autogrow(out, paths, live, spec[1]["template"], [*prefix, name])
            elif kind == DYNAMIC_COMBO:
                _expand_combo(out, paths, live, spec, section, [*prefix, name])
            elif kind == DYNAMIC_SLOT:
                _expand_slot(out, paths, live, spec, [*prefix, name])
            else:
                out[section][flat] = spec
                if prefix:
                    paths.paths[flat] = flat


def _expand_autogrow(out: dict[str, Any], paths: DynamicPaths, live: dict[str, Any], template: dict[str, Any],
                     prefix: list[str]) -> None:
    names = template.get("names") or [f"{template.get('prefix', '')}{n}" for n in range(template.get("max", 10))]
    found = [(s, spec) for s in ("required", "optional") for spec in (template["input"].get(s) or {}).values()]
    section, spec = found[0]
    group = ".".join(prefix)
    present = False
    for number, name in enumerate(names):
        flat = f"{group}.{name}"
        required = number < template.get("min", 1) and section == "required"
        out["required" if required else "optional"][flat] = spec
        if flat in live:
            present = True
            paths.paths[flat] = flat
    if not present:
        paths.empty_groups.append(group)


def _expand_combo(out: dict[str, Any], paths: DynamicPaths, live: dict[str, Any], spec: Any, section: str,
                  prefix: list[str]) -> None:
    flat = ".".join(prefix)
    options = spec[1].get("options") or []
    keys = [o["key"] for o in options]
    opts = {k: v for k, v in spec[1].items() if k != "options"} | {"options": keys}
    out[section][flat] = ("COMBO", opts)  # the choice itself: validated against the option keys
    paths.paths[flat] = f"{flat}.{prefix[-1]}"
    chosen = live.get(flat)
    if isinstance(chosen, list) and len(chosen) == 1 and isinstance(chosen[0], str):
        chosen = chosen[0]  # a list node receives its values as lists
    for option in options:
        if isinstance(chosen, str) and option["key"] == chosen:
            _expand(out, paths, live, option["inputs"], prefix)


def _expand_slot(out: dict[str, Any], paths: DynamicPaths, live: dict[str, Any], spec: Any, prefix: list[str]) -> None:
    """The slot as an optional input of its ``slotType``; its inputs only once it is given a value."""
    flat = ".".join(prefix)
    opts = {k: v for k, v in spec[1].items() if k not in ("slotType", "inputs")}
    out["optional"][flat] = (spec[1]["slotType"], opts)
    if flat in live:
        paths.paths[flat] = f"{flat}.{prefix[-1]}"
        _expand(out, paths, live, spec[1].get("inputs") or {}, prefix)


def nest_inputs(values: dict[str, Any], paths: DynamicPaths, tagged: bool = False) -> dict[str, Any]:
    """``values`` with every dotted name moved under its group (``{"a.b": 1}`` → ``{"a": {"b": 1}}``).

    With ``tagged`` each moved value is ``(value, dotted name)`` (an empty group ``({}, id)``),
    as ComfyUI hands them to ``check_lazy_status``.
    """
    if not paths.paths and not paths.empty_groups:
        return values
    flat = dict(values)
    nested: dict[str, Any] = {}
    for group in paths.empty_groups:
        _put(nested, group.split("."), ({}, group) if tagged else {})
    for name, path in paths.paths.items():
        if name in flat:
            value = flat.pop(name)
            _put(nested, path.split("."), (value, name) if tagged else value)
    flat.update(nested)
    return flat


def _put(tree: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        tree = tree.setdefault(part, {})
    tree[parts[-1]] = value
