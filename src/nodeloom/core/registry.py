"""The node registry: which class implements each ``class_type``, and which pack it came from.

Holds node classes from built-in and custom-node packs alike (both register through
:meth:`NodeRegistry.register_pack`), records packs that failed to import, and builds the
ComfyUI ``/object_info`` entry of a node from its (re-evaluated) ``INPUT_TYPES``, and keeps
the node replacements packs register. No I/O.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeloom.core.node_replace import apply_node_replacements, check_replacement
from nodeloom.errors import NodeDefinitionError

__all__ = ["NodeRegistry", "PackInfo", "object_info_entry"]


@dataclass
class PackInfo:
    """One loaded (or failed) node pack."""

    name: str
    module: str
    path: str | None = None
    web_directory: Path | None = None
    error: str | None = None
    node_ids: list[str] = field(default_factory=list)
    builtin: bool = False
    load_seconds: float = 0.0


class NodeRegistry:
    """Maps ``class_type`` to node classes; one per engine."""

    def __init__(self) -> None:
        self._classes: dict[str, type] = {}
        self._display: dict[str, str] = {}
        self._module: dict[str, str] = {}
        self.packs: list[PackInfo] = []
        self._replacements: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ registration
    def register_pack(
        self,
        info: PackInfo,
        class_mappings: Mapping[str, type] | None,
        display_names: Mapping[str, str] | None = None,
    ) -> PackInfo:
        """Register a pack's ``NODE_CLASS_MAPPINGS`` (later packs override earlier ids).

        Raises:
            NodeDefinitionError: a mapping value is not a class or lacks the V1 attributes.
        """
        display_names = dict(display_names or {})
        for class_type, cls in (class_mappings or {}).items():
            _check_node_class(class_type, cls)
        with self._lock:
            for class_type, cls in (class_mappings or {}).items():
                self._classes[class_type] = cls
                # the frontend treats python_module "nodes.*" as core and "custom_nodes.<pack>" as a pack
                self._module[class_type] = f"nodes.{info.name}" if info.builtin else info.module
                if class_type in display_names:
                    self._display[class_type] = display_names[class_type]
                elif getattr(cls, "DISPLAY_NAME", None):
                    self._display[class_type] = cls.DISPLAY_NAME
                info.node_ids.append(class_type)
            self.packs.append(info)
        return info

    def record_failure(self, info: PackInfo) -> None:
        """Remember a pack that failed to import (reported, then skipped)."""
        with self._lock:
            self.packs.append(info)

    def register_replacement(self, entry: Mapping[str, Any]) -> None:
        """Offer ``entry["new_node_id"]`` in place of ``entry["old_node_id"]`` (see
        :mod:`nodeloom.core.node_replace`); registering the same pair again changes nothing.

        Raises:
            ValueError: a field is missing or malformed.
        """
        checked = check_replacement(entry)
        with self._lock:
            entries = self._replacements.setdefault(checked["old_node_id"], [])
            if all(e["new_node_id"] != checked["new_node_id"] for e in entries):
                entries.append(checked)

    def node_replacements(self) -> dict[str, list[dict[str, Any]]]:
        """``{old_node_id: [entry, ...]}``, as ``/node_replacements`` answers."""
        with self._lock:
            return {old: [dict(e) for e in entries] for old, entries in self._replacements.items()}

    def replace_nodes(self, prompt: dict[str, Any]) -> dict[str, Any]:
        """``prompt`` with unregistered node types swapped for their registered replacements."""
        return apply_node_replacements(prompt, self.__contains__, self.node_replacements())

    # ------------------------------------------------------------------ lookup
    def get(self, class_type: str) -> type | None:
        return self._classes.get(class_type)

    def __contains__(self, class_type: object) -> bool:
        return class_type in self._classes

    def classes(self) -> dict[str, type]:
        return dict(self._classes)

    def display_name(self, class_type: str) -> str:
        return self._display.get(class_type, class_type)

    def python_module(self, class_type: str) -> str:
        return self._module.get(class_type, "nodes")

    def failed_packs(self) -> list[PackInfo]:
        return [p for p in self.packs if p.error is not None]

    def web_directories(self) -> dict[str, Path]:
        return {p.name: p.web_directory for p in self.packs if p.web_directory is not None and p.error is None}

    def object_info(self, class_type: str | None = None) -> dict[str, Any]:
        """ComfyUI's ``/object_info`` (all nodes, or one) built from current ``INPUT_TYPES``.

        A node whose ``INPUT_TYPES`` raises is left out (and does not break the listing).
        """
        names = [class_type] if class_type is not None else sorted(self._classes)
        out: dict[str, Any] = {}
        for name in names:
            cls = self._classes.get(name)
            if cls is None:
                continue
            try:
                out[name] = object_info_entry(name, cls, self.display_name(name), self.python_module(name))
            except Exception as exc:  # noqa: BLE001 - one broken node must not break /object_info
                logging.getLogger("nodeloom.registry").warning(
                    "node `%s` is left out of object_info: its INPUT_TYPES failed: %s", name, exc
                )
                continue
        return out


def _check_node_class(class_type: str, cls: Any) -> None:
    if not inspect.isclass(cls):
        raise NodeDefinitionError(f"NODE_CLASS_MAPPINGS[`{class_type}`] must be a class, got {type(cls).__name__}")
    for attr in ("INPUT_TYPES", "RETURN_TYPES", "FUNCTION"):
        if not hasattr(cls, attr):
            raise NodeDefinitionError(f"node `{class_type}` ({cls.__name__}) lacks `{attr}`")


def _json_safe_type(t: Any) -> Any:
    if isinstance(t, list):
        return [str(x) if not isinstance(x, (str, int, float, bool)) else x for x in t]
    return str(t)


def _json_safe_input(spec: Any) -> list[Any]:
    if not isinstance(spec, (tuple, list)) or not spec:
        return [str(spec)]
    out: list[Any] = [_json_safe_type(spec[0])]
    if len(spec) > 1 and isinstance(spec[1], dict):
        out.append({k: v for k, v in spec[1].items() if _is_jsonable(v)})
    return out


def _is_jsonable(v: Any) -> bool:
    if v is None or isinstance(v, (str, int, float, bool)):
        return True
    if isinstance(v, (list, tuple)):
        return all(_is_jsonable(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _is_jsonable(x) for k, x in v.items())
    return False


def _plain_json(value: Any) -> Any:
    """``value`` with tuples as lists and str/int/float subclasses (enums, type names) as plain values."""
    if isinstance(value, dict):
        return {str(k): _plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_json(v) for v in value]
    for plain in (bool, int, float, str):
        if isinstance(value, plain):
            return plain(value.value if hasattr(value, "value") and isinstance(value.value, plain) else value)
    return value if value is None else str(value)


def object_info_entry(class_type: str, cls: type, display_name: str, python_module: str) -> dict[str, Any]:
    """The ``/object_info`` entry of one node class (ComfyUI's V1 shape).

    A class that builds its own entry (``GET_NODE_INFO_V1()``, as ComfyUI's V3 nodes do) is
    asked for it; the registry still names the class, its module and, when the class has no
    display name, its title.
    """
    own = getattr(cls, "GET_NODE_INFO_V1", None)
    if callable(own):
        info = _plain_json(own())
        info["name"] = class_type
        info["python_module"] = python_module
        info["display_name"] = info.get("display_name") or display_name
        return info  # type: ignore[no-any-return]
    types = cls.INPUT_TYPES()  # type: ignore[attr-defined]
    inputs: dict[str, Any] = {}
    order: dict[str, list[str]] = {}
    for section in ("required", "optional", "hidden"):
        entries = types.get(section)
        if not entries:
            continue
        if section == "hidden":
            inputs[section] = {k: str(v) if not isinstance(v, (list, tuple)) else _json_safe_input(v) for k, v in entries.items()}
        else:
            inputs[section] = {k: _json_safe_input(v) for k, v in entries.items()}
        order[section] = list(entries)
    returns = tuple(getattr(cls, "RETURN_TYPES", ()))
    output_is_list = list(getattr(cls, "OUTPUT_IS_LIST", ()) or [False] * len(returns))
    info: dict[str, Any] = {
        "input": inputs,
        "input_order": order,
        "output": [_json_safe_type(t) for t in returns],
        "output_is_list": output_is_list,
        "output_name": list(getattr(cls, "RETURN_NAMES", None) or [str(t) if not isinstance(t, list) else "COMBO" for t in returns]),
        "name": class_type,
        "display_name": display_name,
        "description": getattr(cls, "DESCRIPTION", "") or "",
        "python_module": python_module,
        "category": getattr(cls, "CATEGORY", "sd"),
        "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
    }
    tooltips = getattr(cls, "OUTPUT_TOOLTIPS", None)
    if tooltips:
        info["output_tooltips"] = list(tooltips)
    for flag, key in (("DEPRECATED", "deprecated"), ("EXPERIMENTAL", "experimental"), ("API_NODE", "api_node"),
                      ("DEV_ONLY", "dev_only"), ("HAS_INTERMEDIATE_OUTPUT", "has_intermediate_output")):
        if getattr(cls, flag, False):
            info[key] = True
    aliases, essentials = getattr(cls, "SEARCH_ALIASES", None), getattr(cls, "ESSENTIALS_CATEGORY", None)
    if isinstance(aliases, (list, tuple)) and aliases:
        info["search_aliases"] = [str(a) for a in aliases]
    if isinstance(essentials, str) and essentials:
        info["essentials_category"] = essentials
    return info
