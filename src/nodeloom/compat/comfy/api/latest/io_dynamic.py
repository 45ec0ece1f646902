"""V3 inputs whose sockets depend on other declarations: ``MultiType``, ``AutogrowDynamic``
and ``MatchType``.

``AutogrowDynamic`` expands to numbered copies of a template input (``min`` required, up to
``max`` optional), named ``<template id><n>_$<id>_ag$`` as ComfyUI names them; ``execute``
receives each copy under that name. ``MatchType`` inputs and outputs share a template: their
type string is a :class:`TemplateTypeName` that accepts the template's allowed types, and the
validator resolves a ``MatchType`` output to the type actually linked into the node's inputs
of the same template. Declarations only: no engine state, no I/O.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Any

from nodeloom.compat.comfy.api.internal import is_class, prune_dict
from nodeloom.compat.comfy.api.latest.io_base import (
    ComfyTypeI,
    ComfyTypeIO,
    Input,
    IOTypeName,
    Output,
    WidgetInput,
    comfytype,
)

__all__ = ["AutogrowDynamic", "ComboDynamic", "DynamicInput", "DynamicOutput", "MatchType", "MultiType",
           "TemplateTypeName"]


class DynamicInput(Input, ABC):
    """An input that stands for zero or more concrete inputs."""

    @abstractmethod
    def get_dynamic(self) -> list[Input]:
        """The concrete inputs this declaration expands to."""


class DynamicOutput(Output, ABC):
    """An output that stands for zero or more concrete outputs."""

    @abstractmethod
    def get_dynamic(self) -> list[Output]:
        """The concrete outputs this declaration expands to."""


@comfytype(io_type="COMFY_MULTITYPED_V3")
class MultiType:
    Type = Any

    class Input(Input):
        """An input accepting several types; give a widget input as ``id`` to keep its widget."""

        def __init__(self, id: Any, types: list[Any], display_name: str | None = None,  # noqa: A002
                     optional: bool = False, tooltip: str | None = None, lazy: bool | None = None,
                     extra_dict: dict[str, Any] | None = None) -> None:
            self.input_override = None
            if isinstance(id, Input):
                self.input_override = copy.copy(id)
                optional = True if id.optional is True else optional
                tooltip = id.tooltip if id.tooltip is not None else tooltip
                display_name = id.display_name if id.display_name is not None else display_name
                lazy = id.lazy if id.lazy is not None else lazy
                if isinstance(self.input_override, WidgetInput):
                    self.input_override.widget_type = self.input_override.get_io_type()
                id = id.id  # noqa: A001
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict)
            self._io_types = types

        @property
        def io_types(self) -> list[type]:
            """The accepted type classes."""
            return [t if is_class(t) else type(t) for t in self._io_types]

        def get_io_type(self) -> Any:
            names = [str(t.io_type) for t in self.io_types]
            if self.input_override is not None:
                names.insert(0, str(self.input_override.get_io_type()))
            return IOTypeName(",".join(dict.fromkeys(names)))

        def as_dict(self) -> dict[str, Any]:
            own = super().as_dict()
            return self.input_override.as_dict() | own if self.input_override is not None else own


@comfytype(io_type="COMFY_AUTOGROW_V3")
class AutogrowDynamic(ComfyTypeI):
    Type = list[Any]

    class Input(DynamicInput):
        """``min`` required copies of ``template_input`` and optional ones up to ``max``."""

        def __init__(self, id: str, template_input: Input, min: int = 1, max: int | None = None,  # noqa: A002
                     display_name: str | None = None, optional: bool = False, tooltip: str | None = None,
                     lazy: bool | None = None, extra_dict: dict[str, Any] | None = None) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict)
            for name, value in (("min", min), ("max", max)):
                if value is not None and value < 1:
                    raise ValueError(f"AutogrowDynamic `{id}`: `{name}` must be ≥ 1, got {value}")
            if max is not None and min is not None and max < min:
                raise ValueError(f"AutogrowDynamic `{id}`: `max` ({max}) must be ≥ `min` ({min})")
            self.template_input, self.min, self.max = template_input, min or 1, max

        def _copy(self, number: int, optional: bool) -> Input:
            item = copy.copy(self.template_input)
            item.id = f"{item.id}{number}_${self.id}_ag$"
            if item.display_name is not None:
                item.display_name = f"{item.display_name}{number}"
            item.optional = optional
            if isinstance(self.template_input, WidgetInput):
                item.force_input = True
            return item

        def get_dynamic(self) -> list[Input]:
            top = self.max if self.max is not None else self.min
            fixed = [self._copy(n, self.optional or self.template_input.optional) for n in range(1, self.min + 1)]
            return fixed + [self._copy(n, True) for n in range(self.min + 1, top + 1)]


@comfytype(io_type="COMFY_COMBODYNAMIC_V3")
class ComboDynamic(ComfyTypeI):
    """Reserved by ComfyUI's V3 API for combos that add inputs; it declares nothing yet."""

    class Input(Input):
        def __init__(self, id: str) -> None:  # noqa: A002
            raise NotImplementedError(
                "`ComboDynamic` is an empty placeholder in ComfyUI's V3 API; "
                "use `io.DynamicCombo.Input(id, options=[io.DynamicCombo.Option(key, inputs), ...])`"
            )


class TemplateTypeName(IOTypeName):
    """The type string of a ``MatchType`` socket: matches the template's allowed types."""

    template: Any = None

    __hash__ = IOTypeName.__hash__

    def __new__(cls, value: str, template: Any) -> TemplateTypeName:
        self = super().__new__(cls, value)
        self.template = template
        return self

    def __getnewargs__(self) -> tuple[str, Any]:  # copy / deepcopy / pickle keep the template
        return str(self), self.template

    @property
    def template_id(self) -> str:
        return self.template.template_id

    def allowed(self) -> list[str]:
        return [str(t.io_type) for t in self.template.allowed_types]

    def __ne__(self, other: object) -> bool:
        allowed = self.allowed()
        if "*" in allowed or other == "*":
            return False
        if isinstance(other, TemplateTypeName):
            return not (set(allowed) & set(other.allowed()))
        if not isinstance(other, str):
            return True
        return not any(not (IOTypeName(a) != other) for a in allowed)


@comfytype(io_type="COMFY_MATCHTYPE_V3")
class MatchType(ComfyTypeIO):
    class Template:
        """Sockets sharing ``template_id`` carry one type, chosen among ``allowed_types``."""

        def __init__(self, template_id: str, allowed_types: Any = None) -> None:
            if allowed_types is None:
                from nodeloom.compat.comfy.api.latest.io_types import AnyType  # type: ignore[attr-defined]

                allowed_types = [AnyType]
            self.template_id = template_id
            self.allowed_types = list(allowed_types) if isinstance(allowed_types, (list, tuple)) else [allowed_types]

        def as_dict(self) -> dict[str, Any]:
            return {"template_id": self.template_id, "allowed_types": "".join(str(t.io_type) for t in self.allowed_types)}

    class Input(DynamicInput):
        """An input whose type is the template's."""

        def __init__(self, id: str, template: MatchType.Template, display_name: str | None = None,  # noqa: A002
                     optional: bool = False, tooltip: str | None = None, lazy: bool | None = None,
                     extra_dict: dict[str, Any] | None = None) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict)
            self.template = template

        def get_dynamic(self) -> list[Input]:
            return [self]

        def get_io_type(self) -> Any:
            return TemplateTypeName(str(self.io_type), self.template)

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | prune_dict({"template": self.template.as_dict()})

    class Output(DynamicOutput):
        """An output carrying the type linked into the template's inputs."""

        def __init__(self, id: str | None = None, template: MatchType.Template | None = None,  # noqa: A002
                     display_name: str | None = None, tooltip: str | None = None, is_output_list: bool = False) -> None:
            super().__init__(id, display_name, tooltip, is_output_list)
            if template is None:
                raise ValueError("MatchType.Output needs a `template`")
            self.template = template

        def get_dynamic(self) -> list[Output]:
            return [self]

        @property
        def io_type(self) -> Any:
            return TemplateTypeName(str(self.Parent.io_type), self.template)

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | prune_dict({"template": self.template.as_dict()})
