"""The declarative Schema's discovery and UI flags: search aliases, the Essentials category and an
intermediate output (cached UI shown again when a run does not execute the node)."""

from __future__ import annotations

from typing import Any

import pytest

from nodeloom import Engine
from nodeloom.core.registry import PackInfo
from nodeloom.node_api import Float, Node, NodeOutput, Output, Schema, mappings


class Widget(Node):
    """A node with an interactive preview."""

    SCHEMA = Schema("FlagWidget", category="flagtest", search_aliases=["knob", "dial"], essentials_category="Basics",
                    intermediate_output=True, inputs=[Float("value", 1.0, tooltip="The value.")],
                    outputs=[Output("FLOAT", "value", tooltip="The value.")])

    @classmethod
    def execute(cls, value: float) -> NodeOutput:
        return NodeOutput(value, ui={"text": [f"widget {value}"]})


class Shown(Node):
    """Show a value."""

    SCHEMA = Schema("FlagShow", category="flagtest", output_node=True,
                    inputs=[Float("value", 0.0, force_input=True, tooltip="The value.")], outputs=[])

    @classmethod
    def execute(cls, value: float) -> NodeOutput:
        return NodeOutput(ui={"text": [str(value)]})


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    eng = Engine(base_dir=tmp_path_factory.mktemp("flags"), builtin_packs=False)
    eng.registry.register_pack(PackInfo("flags", __name__), mappings(Widget, Shown)[0])
    yield eng
    eng.close()


def test_flags_reach_object_info(engine: Engine) -> None:
    info = engine.object_info("FlagWidget")["FlagWidget"]
    assert info["search_aliases"] == ["knob", "dial"] and info["essentials_category"] == "Basics"
    assert info["has_intermediate_output"] is True and info["output_node"] is False
    plain = engine.object_info("FlagShow")["FlagShow"]
    assert not {"search_aliases", "essentials_category", "has_intermediate_output"} & set(plain)


def test_an_intermediate_output_is_shown_again_from_the_cache(engine: Engine) -> None:
    first: dict[str, Any] = {"1": {"class_type": "FlagWidget", "inputs": {"value": 2.0}},
                             "2": {"class_type": "FlagShow", "inputs": {"value": ["1", 0]}}}
    assert engine.run(first).outputs["1"] == {"text": ["widget 2.0"]}
    events: list[Any] = []
    second = {"1": {"class_type": "FlagWidget", "inputs": {"value": 2.0}},
              "2": {"class_type": "FlagShow", "inputs": {"value": 5.0}}}
    result = engine.run(second, on_event=events.append)
    assert result.outputs["1"] == {"text": ["widget 2.0"]}
    assert [e.data["node"] for e in events if e.type == "executed"] == ["2", "1"]
