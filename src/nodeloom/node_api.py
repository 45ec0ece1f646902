"""The one module node packs import: socket types, the declarative node form, progress.

Two front doors lead to one node contract:

* ComfyUI V1 classes (``INPUT_TYPES``, ``RETURN_TYPES``, ``FUNCTION``...) are read as they are.
* :class:`Node` subclasses declare a typed :class:`Schema` and a stateless ``execute``
  classmethod; ``Node.__init_subclass__`` generates the V1 view from the schema, so the
  registry, validation, executor, ``/object_info`` and MCP see one normalised spec.

Example::

    class ImageInvert(Node):
        \"\"\"Invert the colours of an image.\"\"\"
        SCHEMA = Schema(
            node_id="ImageInvert", display_name="Invert Image", category="image",
            inputs=[Image("image", tooltip="The image to invert.")],
            outputs=[Output(IO.IMAGE, "IMAGE")],
        )

        @classmethod
        def execute(cls, image):
            return (1.0 - image,)

Packs expose ``NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(ImageInvert, ...)``.
At run time a node reaches progress, interruption and the engine's services only through
:func:`context` / :class:`ProgressBar` / :func:`services`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Literal, overload

from nodeloom.core.context import NodeContext, current_node_context, current_services
from nodeloom.core.dynamic_inputs import AUTOGROW, DYNAMIC_COMBO, DYNAMIC_SLOT, expand_input_types
from nodeloom.core.graph_builder import ExecutionBlocker, GraphBuilder, is_link
from nodeloom.core.types import ANY, IO, AnyType
from nodeloom.errors import NodeDefinitionError, NodeExecutionError, ValidationError
from nodeloom.models.manager import model_key
from nodeloom.paths import FolderPaths, atomic_target, safe_join, write_atomic
from nodeloom.services import Services

__all__ = [
    "ANY",
    "IO",
    "AnyInput",
    "AnyType",
    "Boolean",
    "Combo",
    "Conditioning",
    "Custom",
    "ExecutionBlocker",
    "Float",
    "FolderPaths",
    "GraphBuilder",
    "Hidden",
    "Image",
    "Input",
    "Int",
    "Latent",
    "Mask",
    "MAX_RESOLUTION",
    "Model",
    "Node",
    "NodeContext",
    "NodeExecutionError",
    "NodeOutput",
    "Output",
    "ProgressBar",
    "Schema",
    "Services",
    "String",
    "ValidationError",
    "Vae",
    "Clip",
    "atomic_target",
    "context",
    "is_link",
    "mappings",
    "model_key",
    "safe_join",
    "services",
    "write_atomic",
]

MAX_RESOLUTION = 16384


# --------------------------------------------------------------------------- inputs


class Input:
    """One input socket or widget of a declarative node.

    Args:
        name: the input name (the keyword ``execute`` receives).
        optional: put it under "optional" (a missing optional input is not passed).
        tooltip: user-facing help text.
        lazy: evaluated only when ``check_lazy_status`` asks for it.
        force_input: show as a socket, not a widget.
        raw_link: receive the link ``[node_id, slot]`` instead of the value.
    """

    io_type: ClassVar[Any] = ANY

    def __init__(
        self,
        name: str,
        *,
        optional: bool = False,
        tooltip: str | None = None,
        lazy: bool = False,
        force_input: bool = False,
        raw_link: bool = False,
        **extra: Any,
    ) -> None:
        if not name.isidentifier():
            raise NodeDefinitionError(f"input name `{name}` must be a Python identifier")
        self.name = name
        self.optional = optional
        self.tooltip = tooltip
        self.lazy = lazy
        self.force_input = force_input
        self.raw_link = raw_link
        self.extra = extra

    def type_spec(self) -> Any:
        """The V1 type slot: a type string or a combo list."""
        return self.io_type

    def options(self) -> dict[str, Any]:
        """The V1 options dict."""
        opts: dict[str, Any] = {}
        if self.tooltip:
            opts["tooltip"] = self.tooltip
        if self.lazy:
            opts["lazy"] = True
        if self.force_input:
            opts["forceInput"] = True
        if self.raw_link:
            opts["rawLink"] = True
        opts.update(self.extra)
        return opts

    def v1(self) -> tuple[Any, ...]:
        opts = self.options()
        return (self.type_spec(), opts) if opts else (self.type_spec(),)


class Custom(Input):
    """An input of any named socket type, e.g. ``Custom("SEGS", "segs")``."""

    def __init__(self, io_type: Any, name: str, **kw: Any) -> None:
        super().__init__(name, **kw)
        self._type = io_type

    def type_spec(self) -> Any:
        return self._type


class AnyInput(Input):
    """An input that accepts every type."""

    io_type = ANY


class Image(Input):
    io_type = IO.IMAGE


class Mask(Input):
    io_type = IO.MASK


class Latent(Input):
    io_type = IO.LATENT


class Conditioning(Input):
    io_type = IO.CONDITIONING


class Model(Input):
    io_type = IO.MODEL


class Clip(Input):
    io_type = IO.CLIP


class Vae(Input):
    io_type = IO.VAE


class _Number(Input):
    def __init__(
        self,
        name: str,
        default: Any = 0,
        *,
        min: Any = None,  # noqa: A002 - ComfyUI's option name
        max: Any = None,  # noqa: A002
        step: Any = None,
        **kw: Any,
    ) -> None:
        super().__init__(name, **kw)
        self.default, self.min, self.max, self.step = default, min, max, step

    def options(self) -> dict[str, Any]:
        opts = {"default": self.default}
        for key in ("min", "max", "step"):
            if getattr(self, key) is not None:
                opts[key] = getattr(self, key)
        opts.update(super().options())
        return opts


class Int(_Number):
    """An integer widget; ``control_after_generate=True`` for seeds."""

    io_type = IO.INT

    def __init__(self, name: str, default: int = 0, *, control_after_generate: bool = False, **kw: Any) -> None:
        super().__init__(name, default, **kw)
        if control_after_generate:
            self.extra["control_after_generate"] = True


class Float(_Number):
    """A float widget (``round`` and ``step`` are display hints)."""

    io_type = IO.FLOAT

    def __init__(self, name: str, default: float = 0.0, **kw: Any) -> None:
        kw.setdefault("step", 0.01)
        super().__init__(name, default, **kw)


class String(Input):
    """A string widget; ``multiline=True`` for prompts."""

    io_type = IO.STRING

    def __init__(self, name: str, default: str = "", *, multiline: bool = False, **kw: Any) -> None:
        super().__init__(name, **kw)
        self.default, self.multiline = default, multiline

    def options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"default": self.default}
        if self.multiline:
            opts["multiline"] = True
        opts.update(super().options())
        return opts


class Boolean(Input):
    io_type = IO.BOOLEAN

    def __init__(self, name: str, default: bool = False, **kw: Any) -> None:
        super().__init__(name, **kw)
        self.default = default

    def options(self) -> dict[str, Any]:
        return {"default": self.default, **super().options()}


class Combo(Input):
    """A choice among strings; ``options`` may be a callable re-evaluated per INPUT_TYPES call."""

    def __init__(
        self,
        name: str,
        options: Sequence[str] | Callable[[], Sequence[str]],
        *,
        default: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(name, **kw)
        self._options = options
        self.default = default

    def choices(self) -> list[str]:
        opts = self._options() if callable(self._options) else self._options
        return list(opts)

    def type_spec(self) -> Any:
        return self.choices()

    def options(self) -> dict[str, Any]:
        opts = super().options()
        if self.default is not None:
            opts = {"default": self.default, **opts}
        return opts


class Hidden:
    """Hidden inputs the engine injects by name (``Hidden.unique_id`` etc.)."""

    prompt = "PROMPT"
    dynprompt = "DYNPROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    unique_id = "UNIQUE_ID"
    auth_token = "AUTH_TOKEN_COMFY_ORG"
    api_key = "API_KEY_COMFY_ORG"


# --------------------------------------------------------------------------- outputs


class Output:
    """One output slot: its socket type, display name, list flag and tooltip."""

    def __init__(self, io_type: Any, name: str | None = None, *, is_list: bool = False, tooltip: str | None = None):
        self.io_type = io_type
        self.name = name if name is not None else str(io_type)
        self.is_list = is_list
        self.tooltip = tooltip


class NodeOutput:
    """What ``execute`` may return instead of a tuple: values plus UI data or an expansion.

    Args:
        values: one value per output slot.
        ui: data shown in the frontend / history (e.g. ``{"images": [...]}``).
        expand: a graph (``GraphBuilder.finalize()``) the node expands into; then each
            value may be a link into that graph.
    """

    def __init__(self, *values: Any, ui: dict[str, Any] | None = None, expand: dict[str, Any] | None = None):
        self.values = values
        self.ui = ui
        self.expand = expand

    def to_v1(self) -> Any:
        if self.ui is None and self.expand is None:
            return tuple(self.values)
        out: dict[str, Any] = {"result": tuple(self.values)}
        if self.ui is not None:
            out["ui"] = self.ui
        if self.expand is not None:
            out["expand"] = self.expand
        return out


# --------------------------------------------------------------------------- schema


class Schema:
    """The declaration of a node: identity, inputs, outputs and flags.

    Args:
        node_id: the ``class_type`` (ComfyUI's exact name for compatible nodes).
        display_name: the title users see.
        category: menu path with "/".
        inputs: ordered inputs (widgets and sockets).
        outputs: ordered outputs.
        hidden: hidden inputs to inject, ``{kwarg: Hidden.x}``.
        output_node: the node is an execution root (saves or shows something).
        input_is_list: receive whole lists (ComfyUI's INPUT_IS_LIST).
        not_idempotent: never share a cache entry with an identical node elsewhere.
        deprecated / experimental: flags shown in ``/object_info``.
        description: overrides the class docstring.
        search_aliases: other names the frontend's node search finds it by.
        essentials_category: its place in the frontend's Essentials tab (e.g. "Basics").
        intermediate_output: not an execution root, but its cached UI is shown again when a run
            does not execute it (ComfyUI's ``has_intermediate_output``).
    """

    def __init__(
        self,
        node_id: str,
        *,
        display_name: str | None = None,
        category: str = "nodeloom",
        inputs: Iterable[Input] = (),
        outputs: Iterable[Output] = (),
        hidden: dict[str, str] | None = None,
        output_node: bool = False,
        input_is_list: bool = False,
        not_idempotent: bool = False,
        deprecated: bool = False,
        experimental: bool = False,
        description: str | None = None,
        search_aliases: Iterable[str] = (),
        essentials_category: str | None = None,
        intermediate_output: bool = False,
    ) -> None:
        self.node_id = node_id
        self.display_name = display_name or node_id
        self.category = category
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.hidden = dict(hidden or {})
        self.output_node = output_node
        self.input_is_list = input_is_list
        self.not_idempotent = not_idempotent
        self.deprecated = deprecated
        self.experimental = experimental
        self.description = description
        self.search_aliases = list(search_aliases)
        self.essentials_category = essentials_category
        self.intermediate_output = intermediate_output
        names = [i.name for i in self.inputs] + list(self.hidden)
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise NodeDefinitionError(f"node `{node_id}` declares input(s) {sorted(dupes)} more than once")

    def input_types(self) -> dict[str, dict[str, Any]]:
        """The V1 ``INPUT_TYPES()`` dict (combo callables evaluated now)."""
        required = {i.name: i.v1() for i in self.inputs if not i.optional}
        optional = {i.name: i.v1() for i in self.inputs if i.optional}
        out: dict[str, dict[str, Any]] = {"required": required}
        if optional:
            out["optional"] = optional
        if self.hidden:
            out["hidden"] = dict(self.hidden)
        return out


class Node:
    """Base of declarative nodes: set ``SCHEMA`` and write a ``execute`` classmethod.

    ``execute`` receives the inputs as keyword arguments and returns a tuple (one value per
    output), a :class:`NodeOutput`, or a V1 result dict. It may be ``async``. Optional
    classmethods: ``fingerprint_inputs(**constants)`` (ComfyUI's IS_CHANGED),
    ``validate_inputs(**named)`` (VALIDATE_INPUTS; return True or an error string) and
    ``check_lazy_status(**inputs)`` (names of lazy inputs still needed).
    """

    SCHEMA: ClassVar[Schema]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        schema = cls.__dict__.get("SCHEMA")
        if schema is None:
            return  # an abstract intermediate base
        execute = cls.__dict__.get("execute")
        if execute is None or not isinstance(execute, classmethod):
            raise NodeDefinitionError(f"node `{schema.node_id}`: `execute` must be a classmethod")
        _check_signature(schema, execute.__func__)
        _install_v1_view(cls, schema)

    @classmethod
    def execute(cls, **inputs: Any) -> Any:  # pragma: no cover - always overridden
        raise NodeDefinitionError(f"`{cls.__name__}` does not define `execute`")


def _check_signature(schema: Schema, func: Callable[..., Any]) -> None:
    """Registration-time check: ``execute`` accepts every declared input by name."""
    params = inspect.signature(func).parameters
    names = list(params)[1:]  # drop cls
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    declared = [i.name for i in schema.inputs] + list(schema.hidden)
    missing = [n for n in declared if n not in names]
    if missing:
        raise NodeDefinitionError(
            f"node `{schema.node_id}`: `execute` does not accept declared input(s) {missing}"
        )
    required_params = [
        n
        for n, p in list(params.items())[1:]
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    optional_inputs = {i.name for i in schema.inputs if i.optional or i.lazy} | set(schema.hidden)
    undeclared = [n for n in required_params if n not in declared]
    if undeclared:
        raise NodeDefinitionError(f"node `{schema.node_id}`: `execute` requires undeclared input(s) {undeclared}")
    no_default = [n for n in required_params if n in optional_inputs and n not in schema.hidden]
    if no_default:
        raise NodeDefinitionError(
            f"node `{schema.node_id}`: optional/lazy input(s) {no_default} need a default in `execute`"
        )


def _install_v1_view(cls: type, schema: Schema) -> None:
    cls.INPUT_TYPES = classmethod(lambda c: schema.input_types())  # type: ignore[attr-defined]
    cls.RETURN_TYPES = tuple(o.io_type for o in schema.outputs)  # type: ignore[attr-defined]
    cls.RETURN_NAMES = tuple(o.name for o in schema.outputs)  # type: ignore[attr-defined]
    cls.OUTPUT_IS_LIST = tuple(o.is_list for o in schema.outputs)  # type: ignore[attr-defined]
    cls.OUTPUT_TOOLTIPS = tuple(o.tooltip or "" for o in schema.outputs)  # type: ignore[attr-defined]
    cls.CATEGORY = schema.category  # type: ignore[attr-defined]
    cls.DESCRIPTION = schema.description or inspect.cleandoc(cls.__doc__ or "")  # type: ignore[attr-defined]
    cls.OUTPUT_NODE = schema.output_node  # type: ignore[attr-defined]
    cls.INPUT_IS_LIST = schema.input_is_list  # type: ignore[attr-defined]
    cls.NOT_IDEMPOTENT = schema.not_idempotent  # type: ignore[attr-defined]
    cls.DEPRECATED = schema.deprecated  # type: ignore[attr-defined]
    cls.EXPERIMENTAL = schema.experimental  # type: ignore[attr-defined]
    cls.SEARCH_ALIASES = list(schema.search_aliases)  # type: ignore[attr-defined]
    cls.ESSENTIALS_CATEGORY = schema.essentials_category  # type: ignore[attr-defined]
    cls.HAS_INTERMEDIATE_OUTPUT = schema.intermediate_output  # type: ignore[attr-defined]
    cls.NODE_ID = schema.node_id  # type: ignore[attr-defined]
    cls.DISPLAY_NAME = schema.display_name  # type: ignore[attr-defined]
    cls.FUNCTION = "_nodeloom_execute"  # type: ignore[attr-defined]
    execute = cls.__dict__["execute"].__func__
    if inspect.iscoroutinefunction(execute):

        async def _run_async(self: Any, **kw: Any) -> Any:
            return _to_v1(await type(self).execute(**kw))

        cls._nodeloom_execute = _run_async  # type: ignore[attr-defined]
    else:

        def _run(self: Any, **kw: Any) -> Any:
            return _to_v1(type(self).execute(**kw))

        cls._nodeloom_execute = _run  # type: ignore[attr-defined]
    # a Combo's type is its option list (a callable is evaluated per INPUT_TYPES call, never at class creation)
    if any(not isinstance(i, Combo) and i.type_spec() in (AUTOGROW, DYNAMIC_COMBO, DYNAMIC_SLOT) for i in schema.inputs):
        cls.EXPAND_INPUT_TYPES = staticmethod(_expand_dynamic)  # type: ignore[attr-defined]
    fingerprint = getattr(cls, "fingerprint_inputs", None)
    if fingerprint is not None:
        cls.IS_CHANGED = fingerprint  # type: ignore[attr-defined]
    validate = getattr(cls, "validate_inputs", None)
    if validate is not None:
        cls.VALIDATE_INPUTS = validate  # type: ignore[attr-defined]


def _expand_dynamic(input_types: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """The engine's hook for a node declaring Autogrow / DynamicCombo / DynamicSlot entries: its
    concrete inputs for this prompt, checked per template and option as V3 nodes' are (the node
    still receives the dotted names, ``values.a``...)."""
    return expand_input_types(input_types, inputs)[0]


def _to_v1(result: Any) -> Any:
    return result.to_v1() if isinstance(result, NodeOutput) else result


def mappings(*classes: type) -> tuple[dict[str, type], dict[str, str]]:
    """``(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS)`` for declarative node classes."""
    nodes: dict[str, type] = {}
    names: dict[str, str] = {}
    for c in classes:
        schema: Schema | None = getattr(c, "SCHEMA", None)
        if schema is None:
            raise NodeDefinitionError(f"`{c.__name__}` has no SCHEMA; list V1 classes in NODE_CLASS_MAPPINGS directly")
        if schema.node_id in nodes:
            raise NodeDefinitionError(f"node id `{schema.node_id}` is declared twice")
        nodes[schema.node_id] = c
        names[schema.node_id] = schema.display_name
    return nodes, names


# --------------------------------------------------------------------------- runtime


def context() -> NodeContext:
    """The running node's context (progress, interruption, ids, services).

    Raises:
        NodeExecutionError: when called outside a node call.
    """
    ctx = current_node_context()
    if ctx is None:
        raise NodeExecutionError("`node_api.context()` called outside a running node")
    return ctx


@overload
def services() -> Services: ...
@overload
def services(required: Literal[True]) -> Services: ...
@overload
def services(required: bool) -> Services | None: ...
def services(required: bool = True) -> Services | None:
    """The active engine's services (``paths``, ``models``, ``settings``, ...).

    Args:
        required: raise when no engine is active (the default); with ``False``, return None
            instead (for helpers that also run outside an engine, e.g. called from a test).

    Raises:
        NodeloomError: ``required`` and no engine is active in this context.
    """
    found: Services | None = current_services(required)
    return found


class ProgressBar:
    """Step progress for the running node (ComfyUI's ``comfy.utils.ProgressBar`` contract).

    Each update checks for interruption, so a long loop stops at the next tick.
    """

    def __init__(self, total: int, node_id: str | None = None) -> None:
        self.total = total
        self.current = 0
        self.node_id = node_id

    def update_absolute(self, value: int, total: int | None = None, preview: Any = None) -> None:
        if total is not None:
            self.total = total
        self.current = min(value, self.total) if self.total else value
        ctx = current_node_context()
        if ctx is not None:
            ctx.progress(self.current, self.total, preview, node_id=self.node_id)

    def update(self, value: int) -> None:
        self.update_absolute(self.current + value, self.total)
