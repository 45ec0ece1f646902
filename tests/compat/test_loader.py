"""Custom-node pack loading: discovery, relative imports, failures isolated, built-ins protected."""

from __future__ import annotations

import logging
from pathlib import Path

from nodeloom.compat.loader import discover_packs, load_custom_node_packs
from nodeloom.core.registry import NodeRegistry, PackInfo
from nodeloom.nodes import core


def _registry_with_core() -> NodeRegistry:
    registry = NodeRegistry()
    registry.register_pack(PackInfo("core", "nodeloom.nodes.core", builtin=True), core.NODE_CLASS_MAPPINGS,
                           core.NODE_DISPLAY_NAME_MAPPINGS)
    return registry


def test_discovery_skips_pycache_disabled_and_plain_folders(custom_nodes_dir: Path) -> None:
    (custom_nodes_dir / "just_a_folder").mkdir()
    names = [p.name for p in discover_packs(custom_nodes_dir)]
    assert names == ["broken_pack", "entrypoint_pack", "no_mappings_pack", "single_file_pack.py", "stub_v1_pack"]
    assert discover_packs(custom_nodes_dir / "missing") == []


def test_broken_pack_is_reported_and_the_others_load(custom_nodes_dir: Path, caplog) -> None:
    registry = _registry_with_core()
    with caplog.at_level(logging.WARNING, logger="nodeloom.custom_nodes"):
        infos = {i.name: i for i in load_custom_node_packs([custom_nodes_dir], registry)}
    assert infos["broken_pack"].error.startswith("(IMPORT FAILED) ModuleNotFoundError")
    assert "nodeloom_test_missing_dependency" in infos["broken_pack"].error
    assert "no_mappings_pack" in infos and "NODE_CLASS_MAPPINGS" in infos["no_mappings_pack"].error
    assert "broken_pack" in caplog.text
    assert {p.name for p in registry.failed_packs()} == {"broken_pack", "no_mappings_pack"}
    for name in ("StubBrighten", "StubHalfSize", "SingleFileDouble", "EntryTriple"):
        assert registry.get(name) is not None, name
    assert registry.display_name("StubBrighten") == "Stub Brighten"
    assert registry.display_name("EntryTriple") == "Entry Triple"
    assert infos["stub_v1_pack"].module == "custom_nodes.stub_v1_pack"
    assert registry.python_module("StubBrighten") == "custom_nodes.stub_v1_pack"


def test_builtin_ids_are_not_shadowed_and_web_directory_resolves(custom_nodes_dir: Path) -> None:
    registry = _registry_with_core()
    load_custom_node_packs([custom_nodes_dir], registry)
    assert registry.get("ImageInvert") is core.NODE_CLASS_MAPPINGS["ImageInvert"]
    web = registry.web_directories()
    assert web == {"stub_v1_pack": (custom_nodes_dir / "stub_v1_pack" / "web").resolve()}
    info = registry.object_info("StubHalfSize")["StubHalfSize"]
    assert info["input"]["optional"]["max_side"][1]["max"] == 16384


def test_reloading_a_pack_reimports_edited_code(custom_nodes_dir: Path) -> None:
    pack = custom_nodes_dir / "single_file_pack.py"
    first = NodeRegistry()
    load_custom_node_packs([custom_nodes_dir], first)
    pack.write_text(pack.read_text().replace("value * 2", "value * 5"))
    second = NodeRegistry()
    load_custom_node_packs([custom_nodes_dir], second)
    assert first.get("SingleFileDouble")().run(2) == (4,)
    assert second.get("SingleFileDouble")().run(2) == (10,)
