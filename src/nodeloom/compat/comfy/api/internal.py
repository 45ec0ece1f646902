"""``comfy_api.internal``: the class helpers V3 node code and ComfyUI's executor share.

``_ComfyNodeInternal`` / ``_NodeOutputInternal`` mark V3 node classes and results;
:func:`first_real_override` tells whether a V3 class overrides an optional hook
(``check_lazy_status``, ``validate_inputs``, ``fingerprint_inputs``) or only inherits the
base placeholder. No engine state lives here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = [
    "_ComfyNodeInternal",
    "_NodeOutputInternal",
    "classproperty",
    "copy_class",
    "first_real_override",
    "is_class",
    "prune_dict",
    "shallow_clone_class",
]


class _ComfyNodeInternal:
    """Marker base of every V3 node class."""


class _NodeOutputInternal:
    """Marker base of every V3 node result."""


class classproperty:  # noqa: N801 - ComfyUI's name
    """A read-only property computed on the class (``Cls.RETURN_TYPES``)."""

    def __init__(self, getter: Callable[[Any], Any]) -> None:
        self.getter = getter

    def __get__(self, instance: Any, owner: type) -> Any:
        return self.getter(owner)


def prune_dict(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` without the keys whose value is ``None``."""
    return {k: v for k, v in d.items() if v is not None}


def is_class(obj: Any) -> bool:
    """Whether ``obj`` is a class (not an instance)."""
    return isinstance(obj, type)


def copy_class(cls: type | None) -> type | None:
    """A subclass of ``cls`` carrying a copy of its namespace (so edits stay local)."""
    if cls is None:
        return None
    body = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
    return type(cls.__name__, (cls,), body)


def shallow_clone_class(cls: type, new_name: str | None = None) -> type:
    """A subclass of ``cls`` with the same namespace, for per-call state such as ``hidden``."""
    return type(new_name or f"{cls.__name__}Clone", (cls,), {})


def _plain_function(attr: Any) -> Any:
    return getattr(attr, "__func__", attr)


def first_real_override(cls: type, name: str, *, base: type | None = None) -> Callable[..., Any] | None:
    """``cls.<name>`` when some class below ``base`` defines it, else ``None``.

    Args:
        cls: a V3 node class.
        name: the hook's name.
        base: the class whose definition is only a placeholder (default: ``cls.GET_BASE_CLASS()``).

    Raises:
        ValueError: ``base`` is missing and ``cls`` is not a V3 node class.
    """
    if base is None:
        if not hasattr(cls, "GET_BASE_CLASS"):
            raise ValueError(f"`{getattr(cls, '__name__', cls)}` is not a V3 node class; pass `base`")
        base = cls.GET_BASE_CLASS()
    placeholder = _plain_function(base.__dict__.get(name))
    for klass in cls.__mro__:
        if klass is base:
            break
        if name in klass.__dict__:
            found = _plain_function(klass.__dict__[name])
            if found is not placeholder:
                return getattr(cls, name)
    return None
