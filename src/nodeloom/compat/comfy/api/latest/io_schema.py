"""``io.Schema``: a V3 node's declaration, and the V1 / V3 ``object_info`` views built from it.

Also the hidden inputs: :class:`Hidden` names what a node asks for, :class:`HiddenHolder` is
what ``cls.hidden`` holds while the node runs; and :class:`NodeReplace`, the replacement a
pack offers for a node type it retired. Declarations only: no engine state, no I/O.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from nodeloom.compat.comfy.api.latest.io_base import Input, Output
from nodeloom.compat.comfy.api.latest.io_dynamic import DynamicInput

__all__ = ["Hidden", "HiddenHolder", "NodeInfoV1", "NodeInfoV3", "NodeReplace", "PriceBadge", "PriceBadgeDepends",
           "Schema", "add_to_dict_v1", "add_to_dict_v3"]


class Hidden(str, Enum):
    """Hidden values a node may ask for; the member name is the key in ``INPUT_TYPES()["hidden"]``."""

    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"
    auth_token_comfy_org = "AUTH_TOKEN_COMFY_ORG"
    api_key_comfy_org = "API_KEY_COMFY_ORG"
    comfy_usage_source = "COMFY_USAGE_SOURCE"
    # ComfyUI marks this one internal (its scheduler object); nodeloom has no such object to lend,
    # so a node asking for it reads None
    execution_list = "EXECUTION_LIST"


class HiddenHolder:
    """``cls.hidden`` during a call: the hidden values the schema asked for (others read ``None``)."""

    def __init__(self, unique_id: Any = None, prompt: Any = None, extra_pnginfo: Any = None, dynprompt: Any = None,
                 auth_token_comfy_org: Any = None, api_key_comfy_org: Any = None, comfy_usage_source: Any = None,
                 execution_list: Any = None, **_: Any) -> None:
        self.unique_id, self.prompt, self.extra_pnginfo, self.dynprompt = unique_id, prompt, extra_pnginfo, dynprompt
        self.auth_token_comfy_org, self.api_key_comfy_org = auth_token_comfy_org, api_key_comfy_org
        self.comfy_usage_source, self.execution_list = comfy_usage_source, execution_list

    def __getattr__(self, key: str) -> Any:
        return None

    @classmethod
    def from_dict(cls, values: dict[Any, Any] | None) -> HiddenHolder:
        """Build from ``{Hidden.x or "x": value}``."""
        out = {}
        for key, value in (values or {}).items():
            out[key.name if isinstance(key, Hidden) else str(key)] = value
        return cls(**out)


@dataclass
class _NodeInfo:
    """What both ``/object_info`` shapes share."""

    name: str | None = None
    display_name: str | None = None
    description: str | None = None
    python_module: Any = None
    category: str | None = None
    output_node: bool | None = None
    deprecated: bool | None = None
    experimental: bool | None = None
    api_node: bool | None = None


@dataclass
class NodeInfoV1(_NodeInfo):
    """The ``/object_info`` entry of a node, in ComfyUI's V1 shape."""

    input: dict[str, Any] | None = None
    input_order: dict[str, list[str]] | None = None
    output: list[Any] | None = None
    output_is_list: list[bool] | None = None
    output_name: list[str] | None = None
    output_tooltips: list[str | None] | None = None


@dataclass
class NodeInfoV3(_NodeInfo):
    """A node's declaration with dynamic inputs unexpanded (ComfyUI's V3 shape)."""

    input: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    hidden: list[str] | None = None


def add_to_dict_v1(item: Input, sections: dict[str, Any]) -> None:
    """Put ``item`` under "required" or "optional" as ``(type, options)``."""
    options = item.as_dict()
    options.pop("optional", None)
    sections.setdefault("optional" if item.optional else "required", {})[item.id] = (item.get_io_type(), options)


def add_to_dict_v3(item: Input | Output, out: dict[str, Any]) -> None:
    """Put ``item`` into ``out`` as ``(type, options)``."""
    out[item.id] = (item.get_io_type(), item.as_dict())


def _input_types_by_path(inputs: list[Input], prefix: str = "") -> dict[str, str]:
    """``{dotted id: io type}`` of ``inputs`` and of the inputs nested in dynamic ones."""
    out: dict[str, str] = {}
    for item in inputs:
        name = prefix + item.id
        out[name] = item.get_io_type()
        nested = item.get_all()[1:] if hasattr(item, "get_all") else []
        out.update(_input_types_by_path(nested, name + "."))
    return out


def _str_list(value: Any, label: str) -> None:
    if not isinstance(value, list) or any(not isinstance(x, str) for x in value):
        raise ValueError(f"`PriceBadgeDepends.{label}` must be a list of strings, got {value!r}")


@dataclass
class PriceBadgeDepends:
    """What a price badge reads: widget values, linked inputs, and input groups (by id)."""

    widgets: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    input_groups: list[str] = field(default_factory=list)

    def validate(self) -> None:
        """Raises ValueError when a field is not a list of strings."""
        for label in ("widgets", "inputs", "input_groups"):
            _str_list(getattr(self, label), label)

    def as_dict(self, schema_inputs: list[Input]) -> dict[str, Any]:
        """The ``depends_on`` entry, each widget given its io type.

        Raises:
            ValueError: a widget that is not one of the schema's inputs.
        """
        types = _input_types_by_path(schema_inputs)
        widgets = []
        for name in self.widgets:
            if name not in types:
                raise ValueError(f"price badge `depends_on.widgets` names `{name}`, which is not an input of the node; "
                                 f"inputs are {list(types)}")
            widgets.append({"name": name, "type": types[name]})
        return {"widgets": widgets, "inputs": self.inputs, "input_groups": self.input_groups}


@dataclass
class PriceBadge:
    """A price the frontend shows on an API node: a JSONata ``expr`` over the values it depends on."""

    expr: str
    depends_on: PriceBadgeDepends = field(default_factory=PriceBadgeDepends)
    engine: str = "jsonata"

    def validate(self) -> None:
        """Raises ValueError for an engine other than jsonata or an empty expression."""
        if self.engine != "jsonata":
            raise ValueError(f"`PriceBadge.engine` must be 'jsonata', got {self.engine!r}")
        if not isinstance(self.expr, str) or not self.expr.strip():
            raise ValueError("`PriceBadge.expr` must be a non-empty string")
        self.depends_on.validate()

    def as_dict(self, schema_inputs: list[Input]) -> dict[str, Any]:
        """The ``price_badge`` entry of ``/object_info``."""
        return {"engine": self.engine, "depends_on": self.depends_on.as_dict(schema_inputs), "expr": self.expr}


@dataclass
class Schema:
    """A V3 node's declaration (``define_schema()`` returns one).

    ``is_output_node`` makes the node an execution root; ``is_input_list`` gives ``execute``
    whole lists; ``not_idempotent`` keeps its cache entry to its own node id; ``enable_expand``
    allows ``NodeOutput(expand=...)``; ``is_deprecated`` / ``is_experimental`` / ``is_api_node``
    are shown in ``/object_info``, and so are newer ComfyUI's ``is_dev_only`` (hidden from
    search unless dev mode is on), ``search_aliases`` and ``essentials_category`` when set.
    """

    node_id: str
    display_name: str | None = None
    category: str = "sd"
    inputs: list[Input] | None = None
    outputs: list[Output] | None = None
    hidden: list[Hidden] | None = None
    description: str = ""
    is_input_list: bool = False
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    is_api_node: bool = False
    is_dev_only: bool = False
    search_aliases: list[str] | None = None
    essentials_category: str | None = None
    not_idempotent: bool = False
    enable_expand: bool = False
    price_badge: PriceBadge | None = None
    accept_all_inputs: bool = False
    has_intermediate_output: bool = False
    loop_boundary: Literal["start", "end"] | None = None

    def validate(self) -> None:
        """Check that input and output ids are unique (also across the two lists).

        Raises:
            ValueError: naming the repeated ids.
        """
        input_ids = [i.id for i in self.inputs or []]
        output_ids = [o.id for o in self.outputs or []]
        issues = []
        for label, ids in (("Input", input_ids), ("Output", output_ids)):
            repeated = [k for k, n in Counter(ids).items() if n > 1]
            if repeated:
                issues.append(f"node `{self.node_id}`: {label} ids must be unique, but {repeated} are not.")
        shared = set(input_ids) & set(output_ids)
        if shared:
            issues.append(f"node `{self.node_id}`: ids must differ between inputs and outputs, but {sorted(shared)} do not.")
        if self.loop_boundary not in (None, "start", "end"):
            issues.append(f"node `{self.node_id}`: `loop_boundary` must be 'start', 'end' or None, "
                          f"got {self.loop_boundary!r}.")
        if issues:
            raise ValueError("\n".join(issues))
        if self.price_badge is not None:
            self.price_badge.validate()

    def finalize(self) -> None:
        """Add the hidden inputs the flags imply and give unnamed outputs their default ids."""
        wanted = []
        if self.is_api_node:
            wanted += [Hidden.auth_token_comfy_org, Hidden.api_key_comfy_org, Hidden.comfy_usage_source]
        if self.is_output_node:
            wanted += [Hidden.prompt, Hidden.extra_pnginfo]
        for hidden in wanted:
            self.hidden = self.hidden if self.hidden is not None else []
            if hidden not in self.hidden:
                self.hidden.append(hidden)
        for index, output in enumerate(self.outputs or []):
            if output.id is None:
                output.id = f"_{index}_{output.io_type}_"

    def concrete_inputs(self) -> list[Input]:
        """The inputs with every dynamic input expanded."""
        out: list[Input] = []
        for item in self.inputs or []:
            out.extend(item.get_dynamic() if isinstance(item, DynamicInput) else [item])
        return out

    def _common_info(self, cls: type) -> dict[str, Any]:
        return {"name": self.node_id, "display_name": self.display_name, "description": self.description,
                "python_module": getattr(cls, "RELATIVE_PYTHON_MODULE", "nodes"), "category": self.category,
                "output_node": self.is_output_node, "deprecated": self.is_deprecated,
                "experimental": self.is_experimental, "api_node": self.is_api_node}

    def newer_info(self) -> dict[str, Any]:
        """The ``/object_info`` keys of newer ComfyUI that this schema sets (none by default)."""
        newer = {"dev_only": self.is_dev_only or None, "search_aliases": self.search_aliases or None,
                 "essentials_category": self.essentials_category,
                 "has_intermediate_output": self.has_intermediate_output or None,
                 "price_badge": self.price_badge.as_dict(self.inputs or []) if self.price_badge is not None else None}
        return {key: value for key, value in newer.items() if value is not None}

    def get_v1_info(self, cls: type) -> NodeInfoV1:
        """The ``/object_info`` entry of ``cls`` built from this schema."""
        sections: dict[str, Any] = {"required": {}}
        for item in self.concrete_inputs():
            add_to_dict_v1(item, sections)
        for hidden in self.hidden or []:
            sections.setdefault("hidden", {})[hidden.name] = (hidden.value,)
        outputs = self.outputs or []
        return NodeInfoV1(
            input=sections,
            input_order={key: list(value) for key, value in sections.items()},
            output=[o.io_type for o in outputs],
            output_is_list=[o.is_output_list for o in outputs],
            output_name=[o.display_name if o.display_name else o.io_type for o in outputs],
            output_tooltips=[o.tooltip if o.tooltip else None for o in outputs],
            **self._common_info(cls),
        )

    def get_v3_info(self, cls: type) -> NodeInfoV3:
        """The declaration with dynamic inputs left unexpanded."""
        inputs: dict[str, Any] = {}
        outputs: dict[str, Any] = {}
        for item in self.inputs or []:
            add_to_dict_v3(item, inputs)
        for out in self.outputs or []:
            add_to_dict_v3(out, outputs)
        return NodeInfoV3(
            input=inputs, output=outputs, hidden=[h.value for h in self.hidden or []], **self._common_info(cls),
        )


class NodeReplace:
    """Offer ``new_node_id`` in place of a retired ``old_node_id``.

    ``old_widget_ids`` names the old node's widget values by position (UI workflows store them
    so); ``input_mapping`` holds ``{"new_id", "old_id"}`` (take the old input) or ``{"new_id",
    "set_value"}`` entries, ``output_mapping`` ``{"new_idx", "old_idx"}`` ones. Register it with
    ``ComfyAPI().node_replacement.register(...)`` while the pack loads.
    """

    def __init__(self, new_node_id: str, old_node_id: str, old_widget_ids: list[str] | None = None,
                 input_mapping: list[dict[str, Any]] | None = None,
                 output_mapping: list[dict[str, int]] | None = None) -> None:
        self.new_node_id, self.old_node_id, self.old_widget_ids = new_node_id, old_node_id, old_widget_ids
        self.input_mapping, self.output_mapping = input_mapping, output_mapping

    def as_dict(self) -> dict[str, Any]:
        """The entry ``/node_replacements`` lists."""
        return {"new_node_id": self.new_node_id, "old_node_id": self.old_node_id, "old_widget_ids": self.old_widget_ids,
                "input_mapping": list(self.input_mapping) if self.input_mapping else None,
                "output_mapping": list(self.output_mapping) if self.output_mapping else None}
