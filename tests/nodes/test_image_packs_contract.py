"""Contract over the colour, mask and select packs: descriptions, tooltips, categories, exports."""

from __future__ import annotations

import importlib

import pytest

from nodeloom.node_api import Node

PACKS = ["nodeloom.nodes.color", "nodeloom.nodes.mask", "nodeloom.nodes.select"]
OPS = ["color", "delta_e", "color_qc", "palette", "mask", "expr", "expr_functions", "score", "topk"]


def _nodes():
    for pack in PACKS:
        module = importlib.import_module(pack)
        for name, cls in module.NODE_CLASS_MAPPINGS.items():
            yield pytest.param(name, cls, id=name)


@pytest.mark.parametrize("name,cls", list(_nodes()))
def test_every_node_is_documented(name, cls):
    assert issubclass(cls, Node) and cls.NODE_ID == name
    assert cls.DESCRIPTION.strip(), f"{name} has no description"
    assert cls.CATEGORY and cls.RETURN_TYPES
    spec = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for input_name, entry in spec.get(section, {}).items():
            assert len(entry) == 2 and entry[1].get("tooltip"), f"{name}.{input_name} has no tooltip"


def test_node_ids_do_not_collide_across_packs():
    seen: dict[str, str] = {}
    for pack in PACKS:
        for name in importlib.import_module(pack).NODE_CLASS_MAPPINGS:
            assert name not in seen, f"{name} is in {seen.get(name)} and {pack}"
            seen[name] = pack


@pytest.mark.parametrize("module", OPS)
def test_ops_modules_export_what_they_list(module):
    mod = importlib.import_module(f"nodeloom.ops.{module}")
    assert mod.__doc__ and mod.__all__
    for name in mod.__all__:
        assert hasattr(mod, name), f"nodeloom.ops.{module} lists {name} but lacks it"
