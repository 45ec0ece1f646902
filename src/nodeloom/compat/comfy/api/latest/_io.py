"""``comfy_api.latest.io``: the V3 node API in one namespace (``from comfy_api.latest import io``).

Gathers the socket types (:mod:`.io_base`, :mod:`.io_types`, :mod:`.io_dynamic`), the schema
(:mod:`.io_schema`) and the node class (:mod:`.io_node`) under ComfyUI's names.
"""

from __future__ import annotations

from nodeloom.compat.comfy.api.internal import prune_dict  # noqa: F401 - pack code reads it from here
from nodeloom.compat.comfy.api.latest import io_types
from nodeloom.compat.comfy.api.latest.io_base import (
    ComfyTypeI,
    ComfyTypeIO,
    Custom,
    FolderType,
    Input,
    NumberDisplay,
    Output,
    RemoteComboOptions,
    RemoteItemSchema,
    RemoteOptions,
    UploadType,
    WidgetInput,
    comfytype,
)
from nodeloom.compat.comfy.api.latest.io_dynamic import (
    AutogrowDynamic,
    ComboDynamic,
    DynamicInput,
    DynamicOutput,
    MatchType,
    MultiType,
)
from nodeloom.compat.comfy.api.latest.io_grow import Autogrow, DynamicCombo, DynamicSlot
from nodeloom.compat.comfy.api.latest.io_node import ComfyNode, NodeOutput, _UIOutput
from nodeloom.compat.comfy.api.latest.io_schema import (
    Hidden,
    HiddenHolder,
    NodeInfoV1,
    NodeInfoV3,
    NodeReplace,
    PriceBadge,
    PriceBadgeDepends,
    Schema,
    add_to_dict_v1,
    add_to_dict_v3,
)
from nodeloom.compat.comfy.api.latest.io_types import Boolean, Combo, Float, Int, MultiCombo, String, Webcam

globals().update({name: getattr(io_types, name) for name in io_types.PLAIN_TYPES})

__all__ = [
    "Autogrow", "AutogrowDynamic", "Boolean", "ComboDynamic", "ComfyNode", "ComfyTypeI", "ComfyTypeIO", "Combo", "Custom",
    "DynamicCombo", "DynamicInput", "DynamicOutput", "DynamicSlot", "Float", "FolderType", "Hidden", "HiddenHolder", "Input", "Int", "MatchType",
    "MultiCombo", "MultiType", "NodeInfoV1", "NodeInfoV3", "NodeOutput", "NodeReplace", "NumberDisplay", "Output",
    "PriceBadge", "PriceBadgeDepends", "RemoteComboOptions", "RemoteItemSchema", "RemoteOptions", "Schema", "String", "UploadType", "Webcam", "WidgetInput", "_UIOutput", "add_to_dict_v1",
    "add_to_dict_v3", "comfytype", *io_types.PLAIN_TYPES,
]
