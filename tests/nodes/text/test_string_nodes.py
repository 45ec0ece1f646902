"""The text utility nodes as thin wrappers of ops.strings."""

from __future__ import annotations

import pytest

from nodeloom.errors import ValidationError
from nodeloom.nodes.text import NODE_CLASS_MAPPINGS as N


def test_concatenate_node():
    out = N["TextConcatenate"].execute(text_a="a fox", text_b="", separator=", ", skip_empty=True, text_c="snow")
    assert out == ("a fox, snow",)


def test_replace_node():
    assert N["TextReplace"].execute(text="a cat", find="cat", replace="dog") == ("a dog",)
    assert N["TextReplace"].execute(text="v1 v2", find=r"v(\d)", replace=r"<\1>", use_regex=True, count=1) == ("<1> v2",)


def test_regex_extract_node_returns_first_all_and_count():
    first, matches, count = N["TextRegexExtract"].execute(text="seed=4 seed=9", pattern=r"seed=(\d+)", group=1)
    assert (first, matches, count) == ("4", ["4", "9"], 2)
    assert N["TextRegexExtract"].OUTPUT_IS_LIST == (False, True, False)
    assert N["TextRegexExtract"].execute(text="none", pattern=r"\d") == ("", [], 0)


def test_json_field_node():
    doc = '{"prompt": {"text": "a fox"}}'
    assert N["TextJSONField"].execute(json_text=doc, path="prompt.text") == ("a fox",)
    assert N["TextJSONField"].execute(json_text=doc, path="x", use_default=True, default="d") == ("d",)
    with pytest.raises(ValidationError, match="not found"):
        N["TextJSONField"].execute(json_text=doc, path="x")


def test_string_to_prompt_list_node():
    cls = N["StringToPromptList"]
    assert cls.OUTPUT_IS_LIST == (True, False)
    assert cls.execute(text="a, b,,c", delimiter="comma") == (["a", "b", "c"], 3)
    assert cls.execute(text="a||b", delimiter="custom", custom_delimiter="||") == (["a", "b"], 2)
    with pytest.raises(ValidationError, match="`delimiter` must not be empty"):
        cls.execute(text="a", delimiter="custom", custom_delimiter="")


def test_every_input_has_a_tooltip_and_every_node_a_description():
    for cls in N.values():
        assert cls.DESCRIPTION
        types = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for name, spec in types.get(section, {}).items():
                assert spec[1].get("tooltip"), f"{cls.NODE_ID}.{name} has no tooltip"
