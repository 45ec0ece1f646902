"""String operations behind the text utility nodes."""

from __future__ import annotations

import pytest

from nodeloom.errors import ValidationError
from nodeloom.ops.strings import concatenate, json_field, regex_extract, replace_text, split_prompts


def test_concatenate_skips_empty_and_understands_escapes():
    assert concatenate(["a", "  ", "b", ""], ", ") == "a, b"
    assert concatenate(["a", "", "b"], "\\n", skip_empty=False) == "a\n\nb"


def test_replace_literal_regex_count_and_case():
    assert replace_text("a.b.c", ".", "-") == "a-b-c"
    assert replace_text("a.b.c", ".", "-", count=1) == "a-b.c"
    assert replace_text("Cat cat", "cat", "dog", ignore_case=True) == "dog dog"
    assert replace_text("x1 y22", r"(\w)(\d+)", r"\2\1", regex=True) == "1x 22y"
    assert replace_text("a\\1b", "a", r"\1") == "\\1\\1b"  # literal replacement is not a template


def test_replace_errors_name_the_input():
    with pytest.raises(ValidationError, match="`find` must not be empty"):
        replace_text("abc", "", "x")
    with pytest.raises(ValidationError, match="`find` is not a valid regular expression"):
        replace_text("abc", "(", "x", regex=True)
    with pytest.raises(ValidationError, match="`replace` refers to a group"):
        replace_text("abc", "b", r"\3", regex=True)


def test_regex_extract_groups_and_errors():
    text = "w=512, h=768, W=64"
    assert regex_extract(text, r"(\w)=(\d+)") == ["w=512", "h=768", "W=64"]
    assert regex_extract(text, r"(\w)=(\d+)", group=2) == ["512", "768", "64"]
    assert regex_extract(text, r"w=(?P<v>\d+)", group="v", ignore_case=True) == ["512", "64"]
    assert regex_extract("a(\nb)", r"\(.*\)", dotall=True) == ["(\nb)"]
    assert regex_extract("none", r"\d") == []
    with pytest.raises(ValidationError, match="`group` must be between 0 and 1"):
        regex_extract(text, r"(\d+)", group=2)
    with pytest.raises(ValidationError, match="`pattern` is not a valid regular expression"):
        regex_extract(text, "[")


def test_json_field_paths():
    doc = '{"data": {"items": [{"name": "fox", "tags": ["red", "wild"]}], "n": 2, "ok": true}}'
    assert json_field(doc, "data.items[0].name") == "fox"
    assert json_field(doc, "data.items.0.tags[-1]") == "wild"
    assert json_field(doc, "data.n") == "2"
    assert json_field(doc, "data.items[0].tags") == '["red", "wild"]'
    assert json_field(doc, "data.missing", default="-") == "-"
    assert json_field('"plain"', "") == "plain"
    with pytest.raises(ValidationError, match="`path` 'data.missing' not found"):
        json_field(doc, "data.missing")
    with pytest.raises(ValidationError, match="`json_text` is not valid JSON"):
        json_field("{nope", "a")


def test_split_prompts():
    assert split_prompts(" a \n\n b\n") == ["a", "b"]
    assert split_prompts("a;b; ;c", ";", skip_empty=False) == ["a", "b", "", "c"]
    assert split_prompts("a\\nb", "\\n") == ["a\\nb"]  # only the delimiter is unescaped
    with pytest.raises(ValidationError, match="`delimiter` must not be empty"):
        split_prompts("a", "")
