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
    "RemoteComboOptions",
    "RemoteItemSchema",
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


class RemoteItemSchema:
    """How a rich remote combo maps each fetched item: dot paths (``"labels.gender"``) to its value,
    label, preview and description (label and description may be templates like ``"{name} ({id})"``),
    and the paths its search looks in."""

    def __init__(self, value_field: str, label_field: str, preview_url_field: str | None = None,
                 preview_type: Literal["image", "video", "audio"] = "image", description_field: str | None = None,
                 search_fields: list[str] | None = None) -> None:
        if preview_type not in ("image", "video", "audio"):
            raise ValueError(f"RemoteItemSchema: `preview_type` must be 'image', 'video' or 'audio', got {preview_type!r}")
        for path in search_fields or []:
            if "{" in path or "}" in path:
                raise ValueError(f"RemoteItemSchema: `search_fields` take dot paths, not templates; got {path!r}")
        self.value_field, self.label_field, self.preview_url_field = value_field, label_field, preview_url_field
        self.preview_type, self.description_field, self.search_fields = preview_type, description_field, search_fields

    def as_dict(self) -> dict[str, Any]:
        keys = ("value_field", "label_field", "preview_url_field", "preview_type", "description_field", "search_fields")
        return prune_dict({k: getattr(self, k) for k in keys})


class RemoteComboOptions:
    """A rich combo the frontend fills from ``route`` (a path on the comfy-api host, starting with
    "/"), each item mapped by ``item_schema``; the server never checks its value against a list."""

    def __init__(self, route: str, item_schema: RemoteItemSchema, refresh_button: bool = True,
                 auto_select: Literal["first", "last"] | None = None, timeout: int | None = None,
                 max_retries: int | None = None, refresh: int | None = None, response_key: str | None = None) -> None:
        if auto_select not in (None, "first", "last"):
            raise ValueError(f"RemoteComboOptions: `auto_select` must be 'first', 'last' or None, got {auto_select!r}")
        if refresh is not None and 0 < refresh < 128:
            raise ValueError(f"RemoteComboOptions: `refresh` must be >= 128 (ms) or <= 0 (never expires), got {refresh}")
        for name, value in (("timeout", timeout), ("max_retries", max_retries)):
            if value is not None and value < 0:
                raise ValueError(f"RemoteComboOptions: `{name}` must be >= 0, got {value}")
        if not route.startswith("/"):
            raise ValueError(f"RemoteComboOptions: `route` must be a path starting with '/', got {route!r}")
        self.route, self.item_schema, self.refresh_button, self.auto_select = route, item_schema, refresh_button, auto_select
        self.timeout, self.max_retries, self.refresh, self.response_key = timeout, max_retries, refresh, response_key

    def as_dict(self) -> dict[str, Any]:
        return prune_dict({"route": self.route, "item_schema": self.item_schema.as_dict(),
                           "refresh_button": self.refresh_button, "auto_select": self.auto_select,
                           "timeout": self.timeout, "max_retries": self.max_retries, "refresh": self.refresh,
                           "response_key": self.response_key})


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
        raw_link: bool | None = None,
        advanced: bool | None = None,
    ) -> None:
        self.id, self.display_name, self.optional = id, display_name, optional
        self.tooltip, self.lazy = tooltip, lazy
        self.extra_dict = extra_dict if extra_dict is not None else {}
        # raw_link: execute receives the link [node id, slot] itself; advanced: the frontend folds it away
        self.rawLink, self.advanced = raw_link, advanced

    def as_dict(self) -> dict[str, Any]:
        base = {"display_name": self.display_name, "optional": self.optional, "tooltip": self.tooltip, "lazy": self.lazy,
                "rawLink": self.rawLink, "advanced": self.advanced}
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
        raw_link: bool | None = None,
        advanced: bool | None = None,
    ) -> None:
        super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link, advanced)
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
