"""V3 inputs whose sockets the prompt decides: ``io.Autogrow``, ``io.DynamicCombo`` and
``io.DynamicSlot``.

``/object_info`` shows each as one entry, ``("COMFY_AUTOGROW_V3", {"template": ...})``,
``("COMFY_DYNAMICCOMBO_V3", {"options": [...]})`` or ``("COMFY_DYNAMICSLOT_V3", {"slotType",
"inputs"})``, from which sockets are named ``<id>.<name>`` (an autogrow copy), ``<id>.<input id>``
(an input of the chosen option, or of a dynamic slot once the slot is connected). Expanding a
node's prompt into concrete inputs and grouping the dotted values for ``execute`` is
:mod:`nodeloom.core.dynamic_inputs` (re-exported here), shared with declarative nodes that
declare the same entries. No engine state.
"""

from __future__ import annotations

import copy
from typing import Any

from nodeloom.compat.comfy.api.internal import prune_dict
from nodeloom.compat.comfy.api.latest.io_base import ComfyTypeI, Input, WidgetInput, comfytype
from nodeloom.compat.comfy.api.latest.io_dynamic import DynamicInput
from nodeloom.core.dynamic_inputs import (
    AUTOGROW,
    DYNAMIC_COMBO,
    DYNAMIC_SLOT,
    DynamicPaths,
    expand_input_types,
    has_dynamic_inputs,
    nest_inputs,
)

__all__ = ["AUTOGROW", "DYNAMIC_COMBO", "DYNAMIC_SLOT", "Autogrow", "DynamicCombo", "DynamicPaths", "DynamicSlot",
           "create_input_dict_v1",
           "expand_input_types", "has_dynamic_inputs", "nest_inputs"]

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
