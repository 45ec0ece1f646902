"""ComfyUI's core string nodes: concatenate, replace, regex extract/replace, JSON extraction."""

from __future__ import annotations

import pytest

from nodeloom.errors import ValidationError
from nodeloom.nodes.utils import NODE_CLASS_MAPPINGS as NODES


def call(class_type: str, **inputs):
    cls = NODES[class_type]
    return getattr(cls(), cls.FUNCTION)(**inputs)[0]


def _extract(text: str, pattern: str, mode: str, group_index: int = 1, case_insensitive: bool = True) -> str:
    return call("RegexExtract", string=text, regex_pattern=pattern, mode=mode, case_insensitive=case_insensitive,
                multiline=False, dotall=False, group_index=group_index)


def test_concatenate_and_replace() -> None:
    assert call("StringConcatenate", string_a="cat", string_b="gummy style", delimiter=", ") == "cat, gummy style"
    assert call("StringReplace", string="a {width} b {width}", find="{width}", replace="512") == "a 512 b 512"


def test_regex_extract_modes() -> None:
    text = 'x "lighting": "soft" y "lighting": "hard"'
    assert _extract(text, r'"lighting":\s*"([^"]*)"', "First Group") == "soft"
    assert _extract(text, r'"lighting":\s*"([^"]*)"', "All Groups") == "soft\nhard"
    assert _extract(text, r'"LIGHTING"', "All Matches") == '"lighting"\n"lighting"'
    assert _extract(text, r'"LIGHTING"', "First Match", case_insensitive=False) == ""
    assert _extract(text, r"(a)(b)?", "First Group", group_index=5) == ""
    assert _extract(text, r"(unclosed", "First Match") == ""


def test_regex_replace_counts_and_flags() -> None:
    text = "```json\n{\"a\": 1}\n```"
    assert call("RegexReplace", string=text, regex_pattern=r"^```(?:json)?\s*\n?", replace="", count=1) == "{\"a\": 1}\n```"
    assert call("RegexReplace", string="A a A", regex_pattern="a", replace="b", case_insensitive=False) == "A b A"
    assert call("RegexReplace", string="A a A", regex_pattern="a", replace="b") == "b b b"
    with pytest.raises(ValidationError, match="regex_pattern"):
        call("RegexReplace", string="x", regex_pattern="(", replace="")


def test_json_extract_string_finds_the_object_in_prose_and_fences() -> None:
    fenced = 'Here you go:\n```json\n{"Quality": {"steps": 48}, "mu": 0.5, "name": "V4"}\n```\nthanks'
    assert call("JsonExtractString", json_string=fenced, key="name") == "V4"
    assert call("JsonExtractString", json_string=fenced, key="mu") == "0.5"
    assert call("JsonExtractString", json_string=fenced, key="Quality") == '{"steps": 48}'
    assert call("JsonExtractString", json_string='prefix {"a": "b"} suffix', key="a") == "b"
    assert call("JsonExtractString", json_string="no json here", key="a") == ""
    assert call("JsonExtractString", json_string='{"a": 1}', key="missing") == ""


def test_substring_length_case_and_trim() -> None:
    assert call("StringSubstring", string="nodeloom", start=1, end=-2) == "odelo"
    assert call("StringLength", string="héllo") == 5
    assert [call("CaseConverter", string="a big cat", mode=m) for m in ("UPPERCASE", "lowercase", "Capitalize", "Title Case")] \
        == ["A BIG CAT", "a big cat", "A big cat", "A Big Cat"]
    assert [call("StringTrim", string="  x  ", mode=m) for m in ("Both", "Left", "Right")] == ["x", "x  ", "  x"]
    with pytest.raises(ValidationError, match="`mode` must be one of"):
        call("StringTrim", string="x", mode="Middle")


def test_contains_compare_and_regex_match() -> None:
    assert call("StringContains", string="Hello", substring="hell", case_sensitive=False) is True
    assert call("StringContains", string="Hello", substring="hell", case_sensitive=True) is False
    assert call("StringCompare", string_a="Photo.PNG", string_b=".png", mode="Ends With", case_sensitive=False) is True
    assert call("StringCompare", string_a="a", string_b="A", mode="Equal", case_sensitive=True) is False
    assert call("RegexMatch", string="line1\nline2", regex_pattern="^line2$", case_insensitive=False, multiline=True,
                dotall=False) is True
    assert call("RegexMatch", string="x", regex_pattern="(", case_insensitive=True, multiline=False, dotall=False) is False


def test_string_format_fills_plain_names_only() -> None:
    fill = NODES["StringFormat"]().execute
    assert fill(f_string="cx: {a:.3f}, {b} × {c} px {{ok}}", **{"values.a": 0.5, "values.b": 1024, "values.c": "x"}) \
        == ("cx: 0.500, 1024 × x px {ok}",)
    for template, why in (("{a.__class__}", "only name a value"), ("{a[0]}", "only name a value"),
                          ("{b}", "no value `b` is connected"), ("{a:>99999999}", "more than"),
                          ("{a:.3f}", "cannot format str"), ("{a", "not a valid format string")):
        with pytest.raises(ValidationError, match=why):
            fill(f_string=template, **{"values.a": "text"})


def test_color_to_rgb_int() -> None:
    to_int = NODES["ColorToRGBInt"]().execute
    assert to_int(color="#0A9299") == (0x0A9299, "#0a9299", 1.0)
    assert to_int(color="#ffffff80") == (0xFFFFFF, "#ffffff", 128 / 255)
    with pytest.raises(ValidationError, match="#RRGGBB"):
        to_int(color="0a9299")


def test_convert_array_and_dictionary_to_json_text() -> None:
    items = [1, "é", {"a": [True, None]}]
    assert call("ConvertArrayToString", array=items, indent=0) == '[1, "é", {"a": [true, null]}]'
    assert call("ConvertArrayToString", array=items).splitlines()[1] == "  1,"  # indent 2 by default
    assert call("ConvertDictionaryToString", dictionary={"k": (1, 2)}, indent=4) == '{\n    "k": [\n        1,\n        2\n    ]\n}'
    with pytest.raises(ValidationError, match="dictionary"):
        call("ConvertDictionaryToString", dictionary=[1], indent=2)
    with pytest.raises(ValidationError, match="array"):
        call("ConvertArrayToString", array="[1]", indent=2)
