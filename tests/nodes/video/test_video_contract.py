"""Contract over the video pack: descriptions, tooltips, categories, ids, ops exports."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import nodeloom.nodes
from nodeloom.node_api import Node
from nodeloom.nodes.video import NODE_CLASS_MAPPINGS

OPS = ["camera", "camera_paths", "camera_render", "drift", "drift_color", "drift_fix", "flow", "schedule",
       "storyboard", "storyboard_terms", "video_io", "video_read", "video_plots", "video_value", "audio", "film"]


@pytest.mark.parametrize(("name", "cls"), list(NODE_CLASS_MAPPINGS.items()))
def test_every_node_is_documented(name, cls):
    assert issubclass(cls, Node) and cls.NODE_ID == name
    assert cls.DESCRIPTION.strip() and cls.CATEGORY and (cls.RETURN_TYPES or cls.OUTPUT_NODE)
    spec = cls.INPUT_TYPES()  # also works with no engine active (combo lists may be empty)
    for section in ("required", "optional"):
        for input_name, entry in spec.get(section, {}).items():
            assert len(entry) == 2 and entry[1].get("tooltip"), f"{name}.{input_name} has no tooltip"
    assert all(tip for tip in cls.OUTPUT_TOOLTIPS), f"{name} has an output without a tooltip"


def test_videohelpersuite_names_are_kept():
    assert {"VHS_LoadVideo", "VHS_LoadVideoPath", "VHS_VideoCombine", "VHS_VideoInfo"} <= set(NODE_CLASS_MAPPINGS)
    combine = NODE_CLASS_MAPPINGS["VHS_VideoCombine"].INPUT_TYPES()
    assert list(combine["required"])[:6] == ["images", "frame_rate", "loop_count", "filename_prefix", "format", "pingpong"]
    assert combine["required"]["frame_rate"][1]["default"] == 8
    load = NODE_CLASS_MAPPINGS["VHS_LoadVideo"]
    assert load.RETURN_NAMES == ("IMAGE", "frame_count", "audio", "video_info")


def test_node_ids_do_not_collide_with_other_builtin_packs():
    for info in pkgutil.iter_modules(nodeloom.nodes.__path__):
        if info.name == "video" or not info.ispkg:
            continue
        try:
            other = importlib.import_module(f"nodeloom.nodes.{info.name}")
        except ImportError:
            continue
        clash = set(getattr(other, "NODE_CLASS_MAPPINGS", {})) & set(NODE_CLASS_MAPPINGS)
        assert not clash, f"{sorted(clash)} also defined by nodeloom.nodes.{info.name}"


def test_video_ops_modules_export_what_they_list():
    modules = {name: importlib.import_module(f"nodeloom.ops.{name}") for name in OPS}
    undocumented = [name for name, mod in modules.items() if not (mod.__doc__ and mod.__all__)]
    missing = [f"{name}.{item}" for name, mod in modules.items() for item in mod.__all__ if not hasattr(mod, item)]
    assert not undocumented and not missing, (undocumented, missing)
