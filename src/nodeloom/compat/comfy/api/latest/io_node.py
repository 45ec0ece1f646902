"""``io.ComfyNode`` and ``io.NodeOutput``: V3 node classes, seen by the engine through their V1 view.

A V3 node declares ``define_schema()`` and ``execute()`` classmethods. The class itself
offers the V1 attributes the engine reads (``INPUT_TYPES``, ``RETURN_TYPES``, ``FUNCTION``,
``OUTPUT_NODE``, ``INPUT_IS_LIST``, ``NOT_IDEMPOTENT``, ``ACCEPT_ALL_INPUTS``,
``HAS_INTERMEDIATE_OUTPUT``...), so lazy inputs, lists, expansion,
caching and blockers behave as for V1 nodes. Per call, ``execute`` runs on a throw-away
subclass whose ``hidden`` holds the hidden values the schema asked for; the optional hooks
``check_lazy_status``, ``validate_inputs`` (``VALIDATE_INPUTS``) and ``fingerprint_inputs``
(``IS_CHANGED``) exist for the engine only when the node overrides them, as in ComfyUI.
"""

from __future__ import annotations

import inspect
import types
from abc import ABC, abstractmethod
from dataclasses import asdict
from typing import Any

from nodeloom.compat.comfy.api.internal import (
    _ComfyNodeInternal,
    _NodeOutputInternal,
    classproperty,
    first_real_override,
)
from nodeloom.compat.comfy.api.latest._resources import ResourcesLocal
from nodeloom.compat.comfy.api.latest.io_grow import expand_input_types, has_dynamic_inputs, nest_inputs
from nodeloom.compat.comfy.api.latest.io_schema import Hidden, HiddenHolder, Schema
from nodeloom.core.graph_builder import ExecutionBlocker

__all__ = ["ComfyNode", "NodeOutput", "_UIOutput"]


class _UIOutput(ABC):
    """What ``NodeOutput(ui=...)`` accepts besides a dict: anything with ``as_dict()``."""

    @abstractmethod
    def as_dict(self) -> dict[str, Any]:
        """The ``ui`` dict shown in the frontend and stored in history."""


class NodeOutput(_NodeOutputInternal):
    """A V3 node's result: output values, plus optional ``ui``, ``expand`` graph or blocker message."""

    def __init__(self, *args: Any, ui: Any = None, expand: dict[str, Any] | None = None,
                 block_execution: str | None = None) -> None:
        self.args, self.ui, self.expand, self.block_execution = args, ui, expand, block_execution

    @property
    def result(self) -> tuple[Any, ...] | None:
        return self.args if self.args else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeOutput:
        """Read a V1 result dict (``result`` / ``ui`` / ``expand``)."""
        result = data.get("result", ())
        if isinstance(result, ExecutionBlocker):
            return cls(block_execution=result.message)
        return cls(*tuple(result or ()), ui=data.get("ui"), expand=data.get("expand"))

    def __getitem__(self, index: int) -> Any:
        return self.args[index]


class _OptionalHook:
    """A placeholder hook: visible on the class (for ``first_real_override``), absent on instances.

    The engine looks hooks up on node instances, so a V3 node that does not override
    ``check_lazy_status`` is treated as having none, as ComfyUI does.
    """

    def __init__(self, func: Any, name: str) -> None:
        self.__func__, self.name = func, name
        self.__doc__ = func.__doc__

    def __get__(self, instance: Any, owner: type) -> Any:
        if instance is not None:
            raise AttributeError(self.name)  # asked once per node call: keep it cheap
        return types.MethodType(self.__func__, owner)


def _placeholder_lazy(cls: Any, **kwargs: Any) -> list[str]:
    """Names of the inputs still unevaluated (``None``)."""
    return [name for name, value in kwargs.items() if value is None]


def _not_overridden(cls: Any, **kwargs: Any) -> Any:
    raise NotImplementedError


_V1_ATTRIBUTES = ("DESCRIPTION", "CATEGORY", "EXPERIMENTAL", "DEPRECATED", "DEV_ONLY", "API_NODE", "OUTPUT_NODE",
                  "HAS_INTERMEDIATE_OUTPUT", "INPUT_IS_LIST", "NOT_IDEMPOTENT", "ACCEPT_ALL_INPUTS", "RETURN_TYPES",
                  "RETURN_NAMES", "OUTPUT_IS_LIST", "OUTPUT_TOOLTIPS", "DISPLAY_NAME", "LOOP_BOUNDARY")


def _v1_flag(attr: str) -> classproperty:
    return classproperty(lambda cls: _v1_view(cls)[attr])


def _v1_view(cls: type) -> dict[str, Any]:
    """The V1 attributes of ``cls``, computed once from its schema."""
    view = cls.__dict__.get("_v1_view_cache")
    if view is None:
        schema = cls.GET_SCHEMA()
        outputs = schema.outputs or []
        declared = schema.get_v1_info(cls).input or {}
        view = {
            "DESCRIPTION": schema.description, "CATEGORY": schema.category, "EXPERIMENTAL": schema.is_experimental,
            "DEPRECATED": schema.is_deprecated, "DEV_ONLY": schema.is_dev_only, "API_NODE": schema.is_api_node,
            "OUTPUT_NODE": schema.is_output_node, "HAS_INTERMEDIATE_OUTPUT": schema.has_intermediate_output,
            "INPUT_IS_LIST": schema.is_input_list, "NOT_IDEMPOTENT": schema.not_idempotent,
            "ACCEPT_ALL_INPUTS": schema.accept_all_inputs, "LOOP_BOUNDARY": schema.loop_boundary,
            "RETURN_TYPES": [o.io_type for o in outputs],
            "RETURN_NAMES": [o.display_name if o.display_name else o.io_type for o in outputs],
            "OUTPUT_IS_LIST": [o.is_output_list for o in outputs],
            "OUTPUT_TOOLTIPS": [o.tooltip if o.tooltip else None for o in outputs],
            "DISPLAY_NAME": schema.display_name,
            # an input that shares a hidden value's name (an output node's "prompt") stays an input;
            # the engine passes the input's value under that name, not the hidden one
            "hidden_names": frozenset(h.name for h in schema.hidden or []) - {i.id for i in schema.concrete_inputs()},
            "declared": declared,
            "EXPAND_INPUT_TYPES": _expand_types if has_dynamic_inputs(declared) else None,
        }
        type.__setattr__(cls, "_v1_view_cache", view)
        type.__setattr__(cls, "EXPAND_INPUT_TYPES", staticmethod(_expand_types) if view["EXPAND_INPUT_TYPES"] else None)
        for attr in _V1_ATTRIBUTES:  # plain class attributes from now on: the engine reads them per call
            type.__setattr__(cls, attr, view[attr])
    return view


def _expand_types(input_types: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """The engine's hook: the concrete inputs of a node with Autogrow / DynamicCombo inputs."""
    return expand_input_types(input_types, inputs)[0]


def _split_hidden(cls: type, kwargs: dict[str, Any], tagged: bool = False) -> tuple[dict[str, Any], dict[Any, Any]]:
    """Inputs and hidden values of a call (the engine passes both as keywords).

    Dotted names of dynamic inputs (``values.image0``, ``mode.size``) are grouped under their
    input's id, as ComfyUI hands them to ``execute`` and the optional hooks; ``tagged`` (for
    ``check_lazy_status``) makes each grouped value a ``(value, dotted name)`` pair, so the node
    can ask for it by that name.
    """
    view = _v1_view(cls)
    names = view["hidden_names"]
    values = {k: v for k, v in kwargs.items() if k not in names}
    hidden = {Hidden[k]: v for k, v in kwargs.items() if k in names}
    if view["EXPAND_INPUT_TYPES"] is not None:
        values = nest_inputs(values, expand_input_types(view["declared"], values)[1], tagged)
    return values, hidden


def _to_node_output(cls: type, result: Any) -> NodeOutput:
    if result is None:
        return NodeOutput()
    if isinstance(result, NodeOutput):
        out = result
    elif isinstance(result, tuple):
        out = NodeOutput(*result)
    elif isinstance(result, dict):
        out = NodeOutput.from_dict(result)
    elif isinstance(result, ExecutionBlocker):
        out = NodeOutput(block_execution=result.message)
    else:
        raise TypeError(f"node `{cls.__name__}`: `execute` must return a NodeOutput, a tuple or a dict, "
                        f"got {type(result).__name__}")
    if out.expand is not None and not cls.GET_SCHEMA().enable_expand:
        raise ValueError(f"node `{cls.__name__}` returned `expand` but its Schema does not set `enable_expand=True`")
    return out


def _to_v1(cls: type, out: NodeOutput) -> dict[str, Any]:
    """The V1 result dict the engine reads."""
    values: tuple[Any, ...] = out.args
    if out.block_execution is not None:
        values = tuple(ExecutionBlocker(out.block_execution) for _ in _v1_view(cls)["RETURN_TYPES"])
    v1: dict[str, Any] = {"result": values}
    if out.ui is not None:
        v1["ui"] = out.ui if isinstance(out.ui, dict) else out.ui.as_dict()
    if out.expand is not None:
        v1["expand"] = out.expand
    return v1


def _clone(cls: type, hidden: HiddenHolder) -> type:
    """A per-call subclass: ``hidden`` filled, ``resources`` the node type's (one loader per type)."""
    resources = cls.__dict__.get("_nodeloom_resources")
    if resources is None:
        resources = ResourcesLocal()
        type.__setattr__(cls, "_nodeloom_resources", resources)
    return type(f"{cls.__name__}Clone", (cls,), {"_nodeloom_clone": True, "hidden": hidden, "resources": resources})


def _wrap_hook(cls: type, func: Any) -> Any:
    """``func`` called on a per-call clone of ``cls``, with hidden keywords moved to ``cls.hidden``."""

    def hook(**kwargs: Any) -> Any:
        values, hidden = _split_hidden(cls, kwargs)
        return func(cls.PREPARE_CLASS_CLONE(hidden), **values)

    hook.__signature__ = inspect.signature(types.MethodType(func, cls))  # type: ignore[attr-defined]
    hook.__name__ = func.__name__
    return staticmethod(hook)


def _install_hooks(cls: type) -> None:
    """Give ``cls`` the V1 hooks for the optional V3 methods it overrides."""
    lazy = cls.__dict__.get("check_lazy_status")
    if isinstance(lazy, classmethod) and not getattr(lazy.__func__, "_nodeloom_hook", False):
        inner = lazy.__func__

        def check_lazy_status(klass: Any, **kwargs: Any) -> Any:
            values, hidden = _split_hidden(klass, kwargs, tagged=True)
            return inner(klass.PREPARE_CLASS_CLONE(hidden), **values)

        check_lazy_status._nodeloom_hook = True  # type: ignore[attr-defined]
        type.__setattr__(cls, "check_lazy_status", classmethod(check_lazy_status))
    for v3_name, v1_name in (("fingerprint_inputs", "IS_CHANGED"), ("validate_inputs", "VALIDATE_INPUTS")):
        found = first_real_override(cls, v3_name)
        if found is not None:
            type.__setattr__(cls, v1_name, _wrap_hook(cls, getattr(found, "__func__", found)))


class _ComfyNodeBaseInternal(_ComfyNodeInternal):
    """What every V3 node class inherits; not a base for nodes itself (use :class:`ComfyNode`)."""

    RELATIVE_PYTHON_MODULE: str | None = None
    SCHEMA: Schema | None = None
    resources: Any = None  # filled on each call's class (see _clone): ComfyUI leaves it None
    hidden: HiddenHolder | None = None
    # the engine asks it for a node's concrete inputs; None when the schema has no growing inputs
    EXPAND_INPUT_TYPES = classproperty(lambda cls: _v1_view(cls)["EXPAND_INPUT_TYPES"])

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "GET_BASE_CLASS" not in cls.__dict__ and "_nodeloom_clone" not in cls.__dict__:
            _install_hooks(cls)  # a node class, not one of the two bases or a per-call copy

    @classmethod
    def define_schema(cls) -> Schema:
        """Return this node's :class:`Schema` (every V3 node overrides it)."""
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs: Any) -> NodeOutput:
        """Run the node on its inputs (every V3 node overrides it; may be ``async``)."""
        raise NotImplementedError

    validate_inputs = classmethod(_not_overridden)
    fingerprint_inputs = classmethod(_not_overridden)
    check_lazy_status = _OptionalHook(_placeholder_lazy, "check_lazy_status")

    @classmethod
    def GET_BASE_CLASS(cls) -> type:  # noqa: N802 - ComfyUI's name
        return _ComfyNodeBaseInternal

    @classmethod
    def VALIDATE_CLASS(cls) -> None:  # noqa: N802
        """Raise when ``define_schema`` or ``execute`` is not overridden."""
        for name in ("define_schema", "execute"):
            if first_real_override(cls, name) is None:
                raise TypeError(f"V3 node class `{cls.__name__}` does not define `{name}`")

    @classmethod
    def FINALIZE_SCHEMA(cls) -> Schema:  # noqa: N802
        """A fresh, finalised schema (combo lists re-evaluated)."""
        schema = cls.define_schema()
        if not isinstance(schema, Schema):
            raise TypeError(f"`{cls.__name__}.define_schema()` must return an io.Schema, got {type(schema).__name__}")
        schema.finalize()
        return schema

    @classmethod
    def GET_SCHEMA(cls) -> Schema:  # noqa: N802
        """Validate the class, finalise and check the schema, and keep it as ``SCHEMA``."""
        cls.VALIDATE_CLASS()
        schema = cls.FINALIZE_SCHEMA()
        schema.validate()
        type.__setattr__(cls, "SCHEMA", schema)
        return schema

    @classmethod
    def INPUT_TYPES(cls, include_hidden: bool = True, return_schema: bool = False) -> Any:  # noqa: N802
        schema = cls.FINALIZE_SCHEMA()
        sections = schema.get_v1_info(cls).input or {}
        if not include_hidden:
            sections.pop("hidden", None)
        return (sections, schema) if return_schema else sections

    @classmethod
    def GET_NODE_INFO_V1(cls) -> dict[str, Any]:  # noqa: N802
        schema = cls.GET_SCHEMA()
        return asdict(schema.get_v1_info(cls)) | schema.newer_info()

    @classmethod
    def GET_NODE_INFO_V3(cls) -> dict[str, Any]:  # noqa: N802
        return asdict(cls.GET_SCHEMA().get_v3_info(cls))

    @classmethod
    def PREPARE_CLASS_CLONE(cls, hidden_inputs: dict[Any, Any] | None) -> type:  # noqa: N802
        """A subclass for one call, with ``hidden`` filled.

        Calls without hidden values share one such subclass per class (its ``hidden`` reads
        ``None`` everywhere); building a class per call costs more than most node bodies.
        """
        if not hidden_inputs:
            shared = cls.__dict__.get("_nodeloom_plain_clone")
            if shared is None:
                shared = _clone(cls, HiddenHolder())
                type.__setattr__(cls, "_nodeloom_plain_clone", shared)
            return shared  # type: ignore[no-any-return]
        return _clone(cls, HiddenHolder.from_dict(hidden_inputs))

    @classmethod
    def EXECUTE_NORMALIZED(cls, *args: Any, **kwargs: Any) -> NodeOutput:  # noqa: N802
        """``execute`` with its result turned into a :class:`NodeOutput`."""
        return _to_node_output(cls, cls.execute(*args, **kwargs))

    @classmethod
    async def EXECUTE_NORMALIZED_ASYNC(cls, *args: Any, **kwargs: Any) -> NodeOutput:  # noqa: N802
        """The awaitable form of :meth:`EXECUTE_NORMALIZED`."""
        return _to_node_output(cls, await cls.execute(*args, **kwargs))

    # -- the V1 view the engine runs
    FUNCTION = classproperty(
        lambda cls: "_nodeloom_call_async" if inspect.iscoroutinefunction(cls.execute) else "_nodeloom_call"
    )

    def _nodeloom_call(self, **kwargs: Any) -> dict[str, Any]:
        cls = type(self)
        values, hidden = _split_hidden(cls, kwargs)
        return _to_v1(cls, cls.PREPARE_CLASS_CLONE(hidden).EXECUTE_NORMALIZED(**values))

    async def _nodeloom_call_async(self, **kwargs: Any) -> dict[str, Any]:
        cls = type(self)
        values, hidden = _split_hidden(cls, kwargs)
        return _to_v1(cls, await cls.PREPARE_CLASS_CLONE(hidden).EXECUTE_NORMALIZED_ASYNC(**values))


for _attr in _V1_ATTRIBUTES:
    setattr(_ComfyNodeBaseInternal, _attr, _v1_flag(_attr))


class ComfyNode(_ComfyNodeBaseInternal):
    """Base class of V3 nodes: override ``define_schema`` and ``execute`` (both classmethods).

    Optional classmethods: ``validate_inputs(**inputs)`` (True or an error string),
    ``fingerprint_inputs(**inputs)`` (a value that changes when the node must re-run) and
    ``check_lazy_status(**inputs)`` (names of lazy inputs still needed).
    """

    @classmethod
    def GET_BASE_CLASS(cls) -> type:  # noqa: N802
        return ComfyNode

    validate_inputs = classmethod(_not_overridden)
    fingerprint_inputs = classmethod(_not_overridden)
    check_lazy_status = _OptionalHook(_placeholder_lazy, "check_lazy_status")
