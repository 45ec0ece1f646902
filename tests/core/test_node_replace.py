"""Node replacements in isolation: entry checks, swapping unknown node types, relinking outputs."""

from __future__ import annotations

import copy

import pytest

from nodeloom.core.node_replace import apply_node_replacements
from nodeloom.core.registry import NodeRegistry

KNOWN = {"New", "Sink"}.__contains__
ENTRY = {"old_node_id": "Old", "new_node_id": "New", "input_mapping": [{"new_id": "x", "old_id": "a"},
                                                                      {"new_id": "mode", "set_value": "fast"}],
         "output_mapping": [{"old_idx": 0, "new_idx": 2}, {"old_idx": 2, "new_idx": 0}]}


def test_unknown_type_is_swapped_and_links_from_it_renumbered() -> None:
    prompt = {"1": {"class_type": "Old", "inputs": {"a": 3, "b": ["9", 0]}},
              "2": {"class_type": "Sink", "inputs": {"p": ["1", 0], "q": ["1", 2], "r": ["1", 1], "s": 5}},
              "3": {"class_type": "Old", "inputs": {}}}
    before = copy.deepcopy(prompt)
    out = apply_node_replacements(prompt, KNOWN, {"Old": [ENTRY, {**ENTRY, "new_node_id": "Other"}]})
    assert prompt == before  # not mutated
    assert out["1"] == {"class_type": "New", "inputs": {"x": 3, "mode": "fast"}, "_meta": {}}
    assert out["3"]["inputs"] == {"mode": "fast"}  # an old input that is absent is left out
    assert out["2"]["inputs"] == {"p": ["1", 2], "q": ["1", 0], "r": ["1", 1], "s": 5}


def test_nothing_to_replace_returns_the_same_prompt() -> None:
    prompt = {"1": {"class_type": "Sink", "inputs": {}}, "2": {"class_type": "Gone", "inputs": {}}}
    assert apply_node_replacements(prompt, KNOWN, {"Old": [ENTRY]}) is prompt
    assert apply_node_replacements(prompt, KNOWN, {"Gone": [{**ENTRY, "new_node_id": "AlsoGone"}]}) is prompt


def test_registry_keeps_one_entry_per_pair_and_checks_fields() -> None:
    registry = NodeRegistry()
    registry.register_replacement(ENTRY)
    registry.register_replacement(ENTRY)
    registry.register_replacement({"old_node_id": "Old", "new_node_id": "Other"})
    assert [e["new_node_id"] for e in registry.node_replacements()["Old"]] == ["New", "Other"]
    with pytest.raises(ValueError, match="`new_node_id` must be a non-empty string"):
        registry.register_replacement({"old_node_id": "Old"})
    with pytest.raises(ValueError, match="each `input_mapping` entry needs `new_id`"):
        registry.register_replacement({**ENTRY, "input_mapping": [{"new_id": "x"}]})
    with pytest.raises(ValueError, match="integer `old_idx` and `new_idx`"):
        registry.register_replacement({**ENTRY, "output_mapping": [{"old_idx": "0", "new_idx": 1}]})
