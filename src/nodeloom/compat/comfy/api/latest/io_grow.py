"""V3 inputs whose sockets the prompt decides: ``io.Autogrow``, ``io.DynamicCombo`` and
``io.DynamicSlot``.

``/object_info`` shows each as one entry, ``("COMFY_AUTOGROW_V3", {"template": ...})``,
``("COMFY_DYNAMICCOMBO_V3", {"options": [...]})`` or ``("COMFY_DYNAMICSLOT_V3", {"slotType",
"inputs"})``, from which sockets are named ``<id>.<name>`` (an autogrow copy), ``<id>.<input id>``
(an input of the chosen option, or of a dynamic slot once the slot is connected).
:func:`expand_input_types` turns a node's declared inputs plus the names and values a prompt
gives it into the concrete inputs validation and execution check, and records how
:func:`nest_inputs` groups the dotted values under ``<id>`` for ``execute``. Options may hold
dynamic inputs themselves (the names then gain one more ``.<id>`` level). No engine state.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from nodeloom.compat.comfy.api.internal import prune_dict
from nodeloom.compat.comfy.api.latest.io_base import ComfyTypeI, Input, WidgetInput, comfytype
from nodeloom.compat.comfy.api.latest.io_dynamic import DynamicInput

__all__ = ["AUTOGROW", "DYNAMIC_COMBO", "DYNAMIC_SLOT", "Autogrow", "DynamicCombo", "DynamicPaths", "DynamicSlot",
           "create_input_dict_v1",
           "expand_input_types", "has_dynamic_inputs", "nest_inputs"]

AUTOGROW = "COMFY_AUTOGROW_V3"
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
DYNAMIC_SLOT = "COMFY_DYNAMICSLOT_V3"
_MAX_NAMES = 100  # ComfyUI's bound on the copies of one template


def create_input_dict_v1(inputs: list[Input]) -> dict[str, Any]:
    """``{"required": {...}, "optional"?: {...}}`` of ``inputs``, as ``/object_info`` shows them."""
    from nodeloom.compat.comfy.api.latest.io_schema import add_to_dict_v1

    sections: dict[str, Any] = {"required": {}}
    for item in inputs:
        add_to_dict_v1(item, sections)
    return sections


class _SelfEntry(DynamicInput):
    """A dynamic input shown in ``/object_info`` as itself (the frontend expands it)."""

    def get_dynamic(self) -> list[Input]:
        return [self]


@comfytype(io_type=AUTOGROW)
class Autogrow(ComfyTypeI):
    Type = dict[str, Any]

    class _Template:
        def __init__(self, input: Input, min: int) -> None:  # noqa: A002 - ComfyUI's argument names
            if isinstance(input, DynamicInput):
                raise ValueError(f"Autogrow template `{input.id}`: a dynamic input cannot be a template")
            if not isinstance(min, int) or min < 0:
                raise ValueError(f"Autogrow template `{input.id}`: `min` must be an integer ≥ 0, got {min!r}")
            self.input, self.min = copy.copy(input), min
            if isinstance(self.input, WidgetInput):
                self.input.force_input = True  # copies are sockets, never widgets
            self.names: list[str] = []

        def as_dict(self) -> dict[str, Any]:
            return {"input": create_input_dict_v1([self.input])}

    class TemplatePrefix(_Template):
        """Copies named ``<prefix>0`` … ``<prefix><max - 1>``; the first ``min`` are required."""

        def __init__(self, input: Input, prefix: str, min: int = 1, max: int = 10) -> None:  # noqa: A002
            super().__init__(input, min)
            if not isinstance(max, int) or not 1 <= max <= _MAX_NAMES:
                raise ValueError(f"Autogrow template `{input.id}`: `max` must be an integer in 1..{_MAX_NAMES}, got {max!r}")
            self.prefix, self.max = prefix, max
            self.names = [f"{prefix}{n}" for n in range(max)]

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | prune_dict({"prefix": self.prefix, "min": self.min, "max": self.max})

    class TemplateNames(_Template):
        """Copies with the given names (at most 100); the first ``min`` are required."""

        def __init__(self, input: Input, names: list[str], min: int = 1) -> None:  # noqa: A002
            super().__init__(input, min)
            self.names = list(names)[:_MAX_NAMES]

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | prune_dict({"names": self.names, "min": self.min})

    class Input(_SelfEntry):
        """A growing row of sockets; ``execute`` receives ``{name: value}`` for the connected ones."""

        def __init__(self, id: str, template: Any, display_name: str | None = None,  # noqa: A002
                     optional: bool = False, tooltip: str | None = None, lazy: bool | None = None,
                     extra_dict: dict[str, Any] | None = None) -> None:
            if not isinstance(template, Autogrow._Template):
                raise TypeError(f"Autogrow `{id}`: `template` must be Autogrow.TemplatePrefix or "
                                f"Autogrow.TemplateNames, got {type(template).__name__}")
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict)
            self.template = template

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | {"template": self.template.as_dict()}


@comfytype(io_type=DYNAMIC_COMBO)
class DynamicCombo(ComfyTypeI):
    Type = dict[str, Any]

    class Option:
        """One choice of the combo: its ``key`` and the inputs it adds."""

        def __init__(self, key: str, inputs: list[Input]) -> None:
            self.key, self.inputs = key, inputs

        def as_dict(self) -> dict[str, Any]:
            return {"key": self.key, "inputs": create_input_dict_v1(self.inputs)}

    class Input(_SelfEntry):
        """A combo whose choice adds inputs; ``execute`` receives ``{<id>: key, <input id>: value...}``."""

        def __init__(self, id: str, options: list[DynamicCombo.Option], display_name: str | None = None,  # noqa: A002
                     optional: bool = False, tooltip: str | None = None, lazy: bool | None = None,
                     extra_dict: dict[str, Any] | None = None) -> None:
            keys = [o.key for o in options]
            if len(set(keys)) != len(keys):
                raise ValueError(f"DynamicCombo `{id}`: option keys must be unique, got {keys}")
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict)
            self.options = options

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | {"options": [o.as_dict() for o in self.options]}


@comfytype(io_type=DYNAMIC_SLOT)
class DynamicSlot(ComfyTypeI):
    Type = dict[str, Any]

    class Input(_SelfEntry):
        """An optional socket (``slot``) that adds ``inputs`` once something is connected to it;
        ``execute`` receives ``{<slot id>: value, <input id>: value...}`` then, nothing before."""

        def __init__(self, slot: Input, inputs: list[Input], display_name: str | None = None,
                     tooltip: str | None = None, lazy: bool | None = None,
                     extra_dict: dict[str, Any] | None = None) -> None:
            if isinstance(slot, DynamicInput):
                raise ValueError(f"DynamicSlot `{slot.id}`: the slot cannot itself be a dynamic input")
            self.slot = copy.copy(slot)
            for name, value in (("display_name", display_name), ("tooltip", tooltip), ("lazy", lazy),
                                ("extra_dict", extra_dict)):
                if getattr(self.slot, name, None) is None:
                    setattr(self.slot, name, value)
            super().__init__(slot.id, self.slot.display_name, True, self.slot.tooltip, self.slot.lazy,
                             self.slot.extra_dict)
            self.inputs = inputs
            self.force_input = True if isinstance(self.slot, WidgetInput) else None
            if self.force_input:
                self.slot.force_input = True

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | prune_dict({"slotType": str(self.slot.get_io_type()),
                                                   "inputs": create_input_dict_v1(self.inputs),
                                                   "forceInput": self.force_input})


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
