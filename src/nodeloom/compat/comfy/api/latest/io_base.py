"""The building blocks of V3 sockets: type strings, ``comfytype``, ``Input``/``Output`` bases.

A V3 socket type is a class (``io.Image``, ``io.Int``...) carrying its ``io_type`` string
and nested ``Input`` / ``Output`` declaration classes; ``as_dict()`` of a declaration is the
options dict ComfyUI's ``/object_info`` shows. Type strings are :class:`IOTypeName`, which
matches the way ComfyUI's V3 type strings do ("*" matches all; comma sets match when one
contains the other). Pure declarations: no engine state, no I/O.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal, TypeVar

from nodeloom.compat.comfy.api.internal import prune_dict

__all__ = [
    "ComfyTypeI",
    "ComfyTypeIO",
    "Custom",
    "FolderType",
    "IOTypeName",
    "Input",
    "NumberDisplay",
    "Output",
    "RemoteOptions",
    "UploadType",
    "WidgetInput",
    "comfytype",
]


class FolderType(str, Enum):
    """Where a file lives: the input, output or temp folder."""

    input = "input"
    output = "output"
    temp = "temp"


class UploadType(str, Enum):
    """The upload button a combo input shows (its value is the option key)."""

    image = "image_upload"
    audio = "audio_upload"
    video = "video_upload"
    model = "file_upload"


class NumberDisplay(str, Enum):
    """How a number widget is drawn."""

    number = "number"
    slider = "slider"


class RemoteOptions:
    """A combo whose options the frontend fetches from ``route``."""

    def __init__(
        self,
        route: str,
        refresh_button: bool,
        control_after_refresh: Literal["first", "last"] = "first",
        timeout: int | None = None,
        max_retries: int | None = None,
        refresh: int | None = None,
    ) -> None:
        self.route, self.refresh_button, self.control_after_refresh = route, refresh_button, control_after_refresh
        self.timeout, self.max_retries, self.refresh = timeout, max_retries, refresh

    def as_dict(self) -> dict[str, Any]:
        keys = ("route", "refresh_button", "control_after_refresh", "timeout", "max_retries", "refresh")
        return prune_dict({k: getattr(self, k) for k in keys})


class IOTypeName(str):
    """A V3 type string: "*" matches every type; "A,B" matches when one set holds the other."""

    __hash__ = str.__hash__

    def __ne__(self, other: object) -> bool:
        if str.__eq__(self, "*") or other == "*":
            return False
        if not isinstance(other, str):
            return True
        mine, theirs = frozenset(self.split(",")), frozenset(other.split(","))
        return not (mine <= theirs or theirs <= mine)


class _ComfyType:
    Type: Any = Any
    io_type: Any = None


class _IO:
    """What inputs and outputs share: the socket type comes from the type class they belong to."""

    Parent: Any = None

    @property
    def io_type(self) -> Any:
        return self.Parent.io_type

    @property
    def Type(self) -> Any:  # noqa: N802 - ComfyUI's name
        return self.Parent.Type


class Input(_IO):
    """An input socket: its id (the keyword ``execute`` receives) and common options."""

    def __init__(
        self,
        id: str,  # noqa: A002 - ComfyUI's argument name
        display_name: str | None = None,
        optional: bool = False,
        tooltip: str | None = None,
        lazy: bool | None = None,
        extra_dict: dict[str, Any] | None = None,
    ) -> None:
        self.id, self.display_name, self.optional = id, display_name, optional
        self.tooltip, self.lazy = tooltip, lazy
        self.extra_dict = extra_dict if extra_dict is not None else {}

    def as_dict(self) -> dict[str, Any]:
        base = {"display_name": self.display_name, "optional": self.optional, "tooltip": self.tooltip, "lazy": self.lazy}
        return prune_dict(base) | prune_dict(self.extra_dict)

    def get_io_type(self) -> Any:
        return IOTypeName(self.io_type)


class WidgetInput(Input):
    """An input that the frontend can show as a widget (has a default)."""

    def __init__(
        self,
        id: str,  # noqa: A002
        display_name: str | None = None,
        optional: bool = False,
        tooltip: str | None = None,
        lazy: bool | None = None,
        default: Any = None,
        socketless: bool | None = None,
        widget_type: str | None = None,
        force_input: bool | None = None,
        extra_dict: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(id, display_name, optional, tooltip, lazy, extra_dict)
        self.default, self.socketless, self.widget_type, self.force_input = default, socketless, widget_type, force_input

    def as_dict(self) -> dict[str, Any]:
        widget = {"default": self.default, "socketless": self.socketless, "widgetType": self.widget_type,
                  "forceInput": self.force_input}
        return super().as_dict() | prune_dict(widget)

    def get_io_type(self) -> Any:
        return self.widget_type if self.widget_type is not None else super().get_io_type()


class Output(_IO):
    """An output slot; ``id`` defaults to ``_<index>_<type>_`` when the schema is finalised."""

    def __init__(
        self,
        id: str | None = None,  # noqa: A002
        display_name: str | None = None,
        tooltip: str | None = None,
        is_output_list: bool = False,
    ) -> None:
        self.id, self.display_name, self.tooltip, self.is_output_list = id, display_name, tooltip, is_output_list

    def as_dict(self) -> dict[str, Any]:
        return prune_dict({"display_name": self.display_name, "tooltip": self.tooltip, "is_output_list": self.is_output_list})

    def get_io_type(self) -> Any:
        return self.io_type


class ComfyTypeI(_ComfyType):
    """A type with only an input declaration."""

    class Input(Input):
        pass


class ComfyTypeIO(ComfyTypeI):
    """A type with input and output declarations."""

    class Output(Output):
        pass


T = TypeVar("T", bound=type)


def _private_copy(decl: type) -> type:
    """A subclass of ``decl`` so that binding ``Parent`` never touches a shared base."""
    return type(decl.__name__, (decl,), {"__module__": decl.__module__, "__qualname__": decl.__qualname__})


def comfytype(io_type: str, **_: Any) -> Any:
    """Class decorator: bind ``io_type`` to a type class and to its ``Input`` / ``Output``.

    A class that is not a ``_ComfyType`` yet becomes a ``ComfyTypeIO`` subclass.
    """

    def decorate(cls: T) -> T:
        if not issubclass(cls, _ComfyType):
            body = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
            cls = type(cls.__name__, (cls, ComfyTypeIO), body)  # type: ignore[assignment]
        for name in ("Input", "Output"):
            decl = getattr(cls, name, None)
            if decl is not None:
                decl = _private_copy(decl)
                decl.Parent = cls
                setattr(cls, name, decl)
        cls.io_type = IOTypeName(io_type)  # type: ignore[attr-defined]
        return cls

    return decorate


def Custom(io_type: str) -> type[ComfyTypeIO]:  # noqa: N802 - ComfyUI's name
    """A socket type for any other type name, e.g. ``io.Custom("SEGS")``."""

    @comfytype(io_type=io_type)
    class CustomComfyType(ComfyTypeIO):
        pass

    return CustomComfyType
