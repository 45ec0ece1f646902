"""Workflow formats: tell API from UI JSON, and convert the frontend's UI format to API.

The UI format is what the graph editor saves (0.4: link arrays; 1.0: link objects, ``state``
and subgraph ``definitions``). Conversion follows the frontend's own rules: widget values are
read in widget order from the node's ``INPUT_TYPES`` (skipping the extra value of a
``control_after_generate`` widget and of an upload button), links override widget values,
muted nodes (mode 2) vanish, bypassed nodes (mode 4) pass a same-typed input through,
virtual nodes (Reroute, PrimitiveNode, Note, MarkdownNote) are resolved or dropped, and
subgraph instances are expanded into nodes with path ids ``"<instance>:<inner>"``; a dynamic
combo's value is followed by the widgets of the option it selects (``"<combo>.<input>"``).
Pure functions on dicts: no I/O, no torch.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from nodeloom.core.graph import DYNAMIC_COMBO
from nodeloom.errors import WorkflowFormatError

__all__ = [
    "InputTypesLookup",
    "VIRTUAL_NODE_TYPES",
    "spec_parts",
    "detect_format",
    "expand_dynamic",
    "to_api",
    "ui_to_api",
    "widget_layout",
]

InputTypesLookup = Callable[[str], "dict[str, Any] | None"]

#: Frontend-only nodes: never sent to the backend.
VIRTUAL_NODE_TYPES = frozenset({"Reroute", "PrimitiveNode", "Note", "MarkdownNote"})
MODE_MUTED = 2
MODE_BYPASS = 4
SUBGRAPH_INPUT_ID = -10
SUBGRAPH_OUTPUT_ID = -20
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", "COLOR"})
#: value types the frontend draws a widget for (crop box, box canvas, curve, colour palette) — a widget only where the input has a default
VALUE_WIDGET_TYPES = frozenset({"BOUNDING_BOX", "BOUNDING_BOXES", "CURVE", "COLORS"})
SEED_NAMES = ("seed", "noise_seed")
UPLOAD_OPTIONS = ("image_upload", "video_upload", "audio_upload")
_MAX_SUBGRAPH_DEPTH = 32
_MAX_HOPS = 200
_SHAPE_ERRORS = (TypeError, ValueError, AttributeError, KeyError, IndexError)


def detect_format(obj: Any) -> Literal["api", "ui"]:
    """Tell an API-format prompt from a UI-format workflow.

    Args:
        obj: parsed workflow JSON.

    Returns:
        ``"ui"`` for a graph-editor workflow (``nodes`` + ``links``), ``"api"`` for a prompt
        ``{id: {class_type, inputs}}``.

    Raises:
        WorkflowFormatError: ``obj`` is neither.
    """
    if not isinstance(obj, dict):
        raise WorkflowFormatError(f"a workflow must be a JSON object, got {type(obj).__name__}")
    if isinstance(obj.get("nodes"), list) and ("links" in obj or "definitions" in obj or "state" in obj):
        return "ui"
    if obj and all(isinstance(v, dict) and "class_type" in v for v in obj.values()):
        return "api"
    raise WorkflowFormatError(
        "the JSON is neither an API-format prompt (`{id: {class_type, inputs}}`) "
        "nor a UI-format workflow (`nodes` and `links`)"
    )


def to_api(obj: Any, input_types: InputTypesLookup, display_name: Callable[[str], str] | None = None) -> dict[str, Any]:
    """Any workflow JSON as an API-format prompt (a deep copy when it already is one).

    Args:
        obj: parsed API or UI workflow.
        input_types: ``class_type -> INPUT_TYPES() dict`` or None for unknown types.
        display_name: ``class_type -> title`` for nodes the user did not rename.

    Raises:
        WorkflowFormatError: unknown format, unknown node type or a broken link.
    """
    if detect_format(obj) == "api":
        return copy.deepcopy(obj)
    return ui_to_api(obj, input_types, display_name)


# --------------------------------------------------------------------------- widget layout


@dataclass(frozen=True)
class _Slot:
    name: str | None  # None: an extra value (control mode, upload button)
    kind: str = "value"  # "value" | "control" | "upload" | "forced"


def spec_parts(spec: Any) -> tuple[Any, dict[str, Any]]:
    if isinstance(spec, (list, tuple)) and spec:
        opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
        return spec[0], opts
    return spec, {}


def _is_widget(io_type: Any, opts: Mapping[str, Any]) -> bool:
    if isinstance(io_type, str) and io_type in VALUE_WIDGET_TYPES:
        return "default" in opts
    return isinstance(io_type, list) or (isinstance(io_type, str) and io_type in WIDGET_TYPES | {DYNAMIC_COMBO})


def _option_inputs(opts: Mapping[str, Any], key: Any) -> dict[str, Any]:
    for option in opts.get("options") or []:
        if isinstance(option, Mapping) and option.get("key") == key:
            return dict(option.get("inputs") or {})
    return {}


def expand_dynamic(types: Mapping[str, Any], values: list[Any]) -> dict[str, Any]:
    """``INPUT_TYPES`` with each dynamic combo followed, in its section, by the inputs of the
    option ``values`` selects (named ``"<combo>.<input>"``), as the frontend lays its widgets out."""
    out: dict[str, Any] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in types.items()}
    position = 0
    for section in ("required", "optional"):
        entries = list((out.get(section) or {}).items())
        rebuilt: dict[str, Any] = {}
        while entries:
            name, spec = entries.pop(0)
            rebuilt[name] = spec
            io_type, opts = spec_parts(spec)
            if not _is_widget(io_type, opts) or opts.get("forceInput"):
                continue
            if io_type == DYNAMIC_COMBO:
                chosen = values[position] if position < len(values) else opts.get("default")
                inner = _option_inputs(opts, chosen)
                added = [(f"{name}.{k}", v) for sub in ("required", "optional") for k, v in (inner.get(sub) or {}).items()]
                entries[:0] = added
            position += 1 + int(_has_control(name, io_type, opts)) + int(any(opts.get(k) for k in UPLOAD_OPTIONS))
        if section in out:
            out[section] = rebuilt
    return out


def _has_control(name: str, io_type: Any, opts: Mapping[str, Any]) -> bool:
    flag = opts.get("control_after_generate")
    if isinstance(io_type, str) and io_type == "INT":
        return bool(flag) if flag is not None else name in SEED_NAMES
    return bool(flag)


def widget_layout(types: Mapping[str, Any]) -> list[tuple[str, bool, bool, bool]]:
    """Widget inputs in frontend order: ``(name, has_control, has_upload, force_input)``.

    Args:
        types: a node's ``INPUT_TYPES()`` dict.
    """
    out = []
    for section in ("required", "optional"):
        for name, spec in (types.get(section) or {}).items():
            io_type, opts = spec_parts(spec)
            if not _is_widget(io_type, opts):
                continue
            upload = any(opts.get(k) for k in UPLOAD_OPTIONS)
            out.append((name, _has_control(name, io_type, opts), upload, bool(opts.get("forceInput"))))
    return out


def _candidate_layouts(types: Mapping[str, Any]) -> list[list[_Slot]]:
    layout = widget_layout(types)

    def build(controls: bool, uploads: bool, forced: bool) -> list[_Slot]:
        slots: list[_Slot] = []
        for name, control, upload, force in layout:
            if force and not forced:
                continue
            slots.append(_Slot(name))
            if control and controls:
                slots.append(_Slot(None, "control"))
            if upload and uploads:
                slots.append(_Slot(None, "upload"))
        return slots

    return [build(True, True, False), build(False, True, False), build(True, True, True), build(False, False, False)]


_WIDGET_FALLBACK = {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}


def _widget_default(types: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    """The value a fresh widget shows in the frontend: ``default``, else the first choice or 0/""/False."""
    for section in ("required", "optional"):
        spec = (types.get(section) or {}).get(name)
        if spec is None:
            continue
        io_type, opts = spec_parts(spec)
        if "default" in opts:
            return True, opts["default"]
        if isinstance(io_type, str) and io_type == "COMBO" and isinstance(opts.get("options"), list):
            io_type = opts["options"]  # the V3 spelling of a combo
        if isinstance(io_type, list):
            return (True, io_type[0]) if io_type else (False, None)
        if io_type == DYNAMIC_COMBO:
            keys = [o.get("key") for o in opts.get("options") or [] if isinstance(o, Mapping)]
            return (True, keys[0]) if keys else (False, None)
        if isinstance(io_type, str) and io_type in _WIDGET_FALLBACK:
            return True, _WIDGET_FALLBACK[io_type]
    return False, None


def _widget_values(types: Mapping[str, Any], values: Any) -> dict[str, Any]:
    """Map ``widgets_values`` (a list, or a dict by name) onto input names.

    Widgets the file has no value for (short or missing ``widgets_values``) get the value the
    frontend would show when it loads the file: the input's default.
    """
    if isinstance(values, dict):
        names = {name for name, *_ in widget_layout(types)}
        found = {k: v for k, v in values.items() if k in names}
    elif isinstance(values, list):
        types = expand_dynamic(types, values)
        layouts = _candidate_layouts(types)
        chosen = next((lay for lay in layouts if len(lay) == len(values)), layouts[0])
        found = {slot.name: value for slot, value in zip(chosen, values) if slot.name is not None}
    else:
        found = {}
    for name, _control, _upload, force in widget_layout(types):
        if name not in found and not force:
            known, default = _widget_default(types, name)
            if known:
                found[name] = default
    # a list value would read as a link: the frontend sends array widget values wrapped, so do we
    return {k: {"__value__": v} if isinstance(v, list) else v for k, v in found.items()}


# --------------------------------------------------------------------------- flattening


@dataclass
class _Link:
    origin_id: int | str
    origin_slot: int
    target_id: int | str
    target_slot: int
    type: Any = None


@dataclass
class _Scope:
    """One graph level: the root graph or the inside of one subgraph instance."""

    prefix: str
    links: dict[Any, _Link]
    nodes: dict[str, _FlatNode] = field(default_factory=dict)  # raw node id -> flat node
    instance: _FlatNode | None = None  # the subgraph node in the parent scope
    definition: dict[str, Any] | None = None


@dataclass
class _FlatNode:
    exec_id: str
    raw: dict[str, Any]
    scope: _Scope
    inner: _Scope | None = None  # set for subgraph instances

    @property
    def type(self) -> str:
        return str(self.raw.get("type", ""))

    @property
    def mode(self) -> int:
        return int(self.raw.get("mode", 0) or 0)

    def label(self) -> str:
        return f"node {self.exec_id} (`{self.type}`)"


def _parse_links(raw_links: Any, where: str) -> dict[Any, _Link]:
    links: dict[Any, _Link] = {}
    if raw_links is not None and not isinstance(raw_links, list):
        raise WorkflowFormatError(f"{where}: `links` must be a list, got {type(raw_links).__name__}")
    for item in raw_links or []:
        if item is None:
            continue
        if isinstance(item, list) and len(item) >= 5:
            links[item[0]] = _Link(item[1], int(item[2]), item[3], int(item[4]), item[5] if len(item) > 5 else None)
        elif isinstance(item, dict) and "id" in item:
            links[item["id"]] = _Link(
                item.get("origin_id"), int(item.get("origin_slot", 0)),
                item.get("target_id"), int(item.get("target_slot", 0)), item.get("type"),
            )
        else:
            raise WorkflowFormatError(f"{where}: link `{item!r}` is neither `[id, from, slot, to, slot, type]` nor a link object")
    return links


def _subgraph_definitions(workflow: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    pending = [workflow]
    while pending:
        holder = pending.pop()
        for sub in (holder.get("definitions") or {}).get("subgraphs") or []:
            if isinstance(sub, dict) and "id" in sub and sub["id"] not in found:
                found[str(sub["id"])] = sub
                pending.append(sub)
    return found


def _flatten(workflow: Mapping[str, Any], defs: Mapping[str, dict[str, Any]]) -> list[_FlatNode]:
    root = _Scope("", _parse_links(workflow.get("links"), "workflow"))
    flat: list[_FlatNode] = []
    _fill_scope(root, workflow.get("nodes") or [], defs, flat, 0)
    return flat


def _fill_scope(scope: _Scope, nodes: list[Any], defs: Mapping[str, dict[str, Any]], flat: list[_FlatNode], depth: int) -> None:
    if depth > _MAX_SUBGRAPH_DEPTH:
        raise WorkflowFormatError(f"subgraphs nest deeper than {_MAX_SUBGRAPH_DEPTH} levels (a subgraph contains itself?)")
    for raw in nodes:
        if not isinstance(raw, dict) or "id" not in raw:
            raise WorkflowFormatError(f"every entry of `nodes` must be an object with an `id`, got {raw!r}")
        node = _FlatNode(f"{scope.prefix}{raw['id']}", raw, scope)
        scope.nodes[str(raw["id"])] = node
        flat.append(node)
        definition = defs.get(node.type)
        if definition is not None:
            node.inner = _Scope(
                f"{node.exec_id}:", _parse_links(definition.get("links"), f"subgraph `{definition.get('name', node.type)}`"),
                instance=node, definition=definition,
            )
            _fill_scope(node.inner, definition.get("nodes") or [], defs, flat, depth + 1)


# --------------------------------------------------------------------------- link resolution

_Source = tuple[str, Any, int]  # ("link", exec_id, slot) or ("value", value, 0)


class _Resolver:
    """Follows links back through reroutes, primitives, bypassed nodes and subgraph borders."""

    def input_link(self, node: _FlatNode, link_id: Any, input_type: Any, where: str) -> _Source | None:
        link = node.scope.links.get(link_id)
        if link is None:
            raise WorkflowFormatError(f"{where}: link {link_id} does not exist")
        return self.origin(node.scope, link, input_type, where, 0)

    def origin(self, scope: _Scope, link: _Link, wanted: Any, where: str, hops: int) -> _Source | None:
        if hops > _MAX_HOPS:
            raise WorkflowFormatError(f"{where}: the link passes through more than {_MAX_HOPS} reroute, bypassed or subgraph nodes (a loop?)")
        if link.origin_id == SUBGRAPH_INPUT_ID or str(link.origin_id) == str(SUBGRAPH_INPUT_ID):
            return self._subgraph_input(scope, link.origin_slot, wanted, where, hops)
        src = scope.nodes.get(str(link.origin_id))
        if src is None:
            raise WorkflowFormatError(f"{where}: link comes from node {scope.prefix}{link.origin_id}, which does not exist")
        return self.output(src, link.origin_slot, wanted, where, hops + 1)

    def output(self, src: _FlatNode, slot: int, wanted: Any, where: str, hops: int) -> _Source | None:
        if src.mode == MODE_MUTED:
            return None
        if src.mode == MODE_BYPASS:
            index = _bypass_input_index(src, slot, wanted)
            return None if index < 0 else self._node_input(src, index, wanted, where, hops)
        if src.inner is not None:
            return self._subgraph_output(src.inner, slot, wanted, where, hops)
        if src.type == "Reroute":
            return self._node_input(src, 0, wanted, where, hops)
        if src.type == "PrimitiveNode":
            values = src.raw.get("widgets_values") or []
            return ("value", values[0], 0) if values else None
        if src.type in VIRTUAL_NODE_TYPES:
            return None
        return ("link", src.exec_id, slot)

    def _node_input(self, node: _FlatNode, index: int, wanted: Any, where: str, hops: int) -> _Source | None:
        inputs = node.raw.get("inputs") or []
        if index >= len(inputs) or inputs[index].get("link") is None:
            return None
        link = node.scope.links.get(inputs[index]["link"])
        if link is None:
            raise WorkflowFormatError(f"{node.label()}: link {inputs[index]['link']} does not exist")
        return self.origin(node.scope, link, wanted, where, hops + 1)

    def _subgraph_input(self, scope: _Scope, slot: int, wanted: Any, where: str, hops: int) -> _Source | None:
        if scope.instance is None:
            raise WorkflowFormatError(f"{where}: a link from the subgraph input node outside any subgraph")
        return self._node_input(scope.instance, slot, wanted, where, hops)

    def _subgraph_output(self, inner: _Scope, slot: int, wanted: Any, where: str, hops: int) -> _Source | None:
        for link in inner.links.values():
            if str(link.target_id) == str(SUBGRAPH_OUTPUT_ID) and link.target_slot == slot:
                return self.origin(inner, link, wanted, where, hops + 1)
        return None


def _types_compatible(a: Any, b: Any) -> bool:
    if not isinstance(a, str) or not isinstance(b, str) or a in ("*", "") or b in ("*", ""):
        return True
    return bool({x.strip().upper() for x in a.split(",")} & {x.strip().upper() for x in b.split(",")})


def _bypass_input_index(node: _FlatNode, slot: int, wanted: Any) -> int:
    """The input a bypassed node passes to output ``slot`` (the frontend's rule)."""
    inputs = node.raw.get("inputs") or []
    outputs = node.raw.get("outputs") or []
    out_type = outputs[slot].get("type") if slot < len(outputs) and isinstance(outputs[slot], dict) else None
    if wanted in (None, "*", ""):
        return slot if len(inputs) > slot else 0
    if slot < len(inputs) and _types_compatible(inputs[slot].get("type"), out_type) and _types_compatible(inputs[slot].get("type"), wanted):
        return slot
    for i, inp in enumerate(inputs):
        if inp.get("type") == wanted:
            return i
    for i, inp in enumerate(inputs):
        if _types_compatible(inp.get("type"), out_type) and _types_compatible(inp.get("type"), wanted):
            return i
    return -1


# --------------------------------------------------------------------------- conversion


def ui_to_api(
    workflow: Mapping[str, Any], input_types: InputTypesLookup, display_name: Callable[[str], str] | None = None
) -> dict[str, Any]:
    """Convert a UI-format workflow (0.4 or 1.0) to an API-format prompt.

    Args:
        workflow: the graph editor's JSON.
        input_types: ``class_type -> INPUT_TYPES() dict`` or None for unknown types.
        display_name: ``class_type -> title`` for nodes without a ``title`` (default: the
            class type).

    Returns:
        ``{exec_id: {"class_type", "inputs", "_meta": {"title"}}}`` in node order.

    Raises:
        WorkflowFormatError: unknown node type (naming the node), broken link, bad shape.
    """
    if not isinstance(workflow, Mapping) or not isinstance(workflow.get("nodes"), list):
        raise WorkflowFormatError("a UI workflow needs a `nodes` list")
    try:
        defs = _subgraph_definitions(workflow)
        flat = _flatten(workflow, defs)
    except WorkflowFormatError:
        raise
    except _SHAPE_ERRORS as exc:
        raise WorkflowFormatError(f"malformed UI workflow: {type(exc).__name__}: {exc}") from exc
    resolver = _Resolver()
    prompt: dict[str, Any] = {}
    for node in flat:
        try:
            if _is_emitted(node):
                prompt[node.exec_id] = _convert_node(node, resolver, input_types, display_name)
        except WorkflowFormatError:
            raise
        except _SHAPE_ERRORS as exc:
            raise WorkflowFormatError(f"{node.label()}: malformed node: {type(exc).__name__}: {exc}") from exc
    return prompt


def _convert_node(
    node: _FlatNode, resolver: _Resolver, input_types: InputTypesLookup, display_name: Callable[[str], str] | None
) -> dict[str, Any]:
    types = input_types(node.type)
    if types is None:
        raise WorkflowFormatError(
            f"{node.label()}: unknown node type `{node.type}` (is its custom-node pack installed?)",
            extra_info={"node_id": node.exec_id, "class_type": node.type},
        )
    inputs = _widget_values(types, node.raw.get("widgets_values"))
    for inp in node.raw.get("inputs") or []:
        if not isinstance(inp, dict) or inp.get("link") is None:
            continue
        name = (inp.get("widget") or {}).get("name") or inp.get("name")
        if not isinstance(name, str) or not name:
            raise WorkflowFormatError(f"{node.label()}: an input linked to link {inp['link']} has no name")
        where = f"{node.label()} input `{name}`"
        source = resolver.input_link(node, inp["link"], inp.get("type"), where)
        if source is None:  # muted / unresolvable upstream: a widget keeps its value
            continue
        kind, ref, slot = source
        inputs[name] = ref if kind == "value" else [ref, slot]
    title = node.raw.get("title")
    if not isinstance(title, str) or not title:
        title = display_name(node.type) if display_name else node.type
    return {"inputs": inputs, "class_type": node.type, "_meta": {"title": title}}


def _is_emitted(node: _FlatNode) -> bool:
    if node.inner is not None or node.type in VIRTUAL_NODE_TYPES:
        return False
    if node.mode in (MODE_MUTED, MODE_BYPASS):
        return False
    scope = node.scope
    while scope.instance is not None:  # a muted or bypassed subgraph silences its inside
        if scope.instance.mode in (MODE_MUTED, MODE_BYPASS):
            return False
        scope = scope.instance.scope
    return True
