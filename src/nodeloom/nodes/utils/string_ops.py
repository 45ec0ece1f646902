"""The rest of ComfyUI's core string nodes: substring, length, case, trim, contains, compare and
regex match (with concatenate, replace and the regex extract/replace nodes in ``strings``)."""

from __future__ import annotations

import re

from nodeloom.node_api import Boolean, Combo, Int, Node, Output, Schema, String, ValidationError
from nodeloom.nodes.utils.strings import regex_flags, regex_inputs

__all__ = ["CaseConverter", "RegexMatch", "StringCompare", "StringContains", "StringLength", "StringSubstring", "StringTrim"]

_CASES = {"UPPERCASE": str.upper, "lowercase": str.lower, "Capitalize": str.capitalize, "Title Case": str.title}
_TRIMS = {"Both": str.strip, "Left": str.lstrip, "Right": str.rstrip}
_COMPARES = {"Starts With": str.startswith, "Ends With": str.endswith, "Equal": str.__eq__}


def _text(tip: str = "The text.") -> String:
    return String("string", multiline=True, tooltip=tip)


def _pick(table: dict, name: str, value: str):  # type: ignore[no-untyped-def]
    if value not in table:
        raise ValidationError(f"`{name}` must be one of {list(table)}, got {value!r}")
    return table[value]


class StringSubstring(Node):
    """The characters from `start` up to (not including) `end`, Python slice rules (negative counts from the end)."""

    SCHEMA = Schema(
        "StringSubstring", display_name="Substring", category="utils/string",
        inputs=[_text(), Int("start", 0, tooltip="First character (0-based; negative from the end)."),
                Int("end", 0, tooltip="Character after the last one kept (negative from the end).")],
        outputs=[Output("STRING", "STRING", tooltip="The substring.")],
    )  # fmt: skip

    @classmethod
    def execute(cls, string: str, start: int, end: int) -> tuple[str]:
        return (string[start:end],)


class StringLength(Node):
    """The number of characters of a text."""

    SCHEMA = Schema(
        "StringLength", display_name="Length", category="utils/string",
        inputs=[_text()], outputs=[Output("INT", "length", tooltip="Characters in the text.")],
    )  # fmt: skip

    @classmethod
    def execute(cls, string: str) -> tuple[int]:
        return (len(string),)


class CaseConverter(Node):
    """Change the letter case of a text."""

    SCHEMA = Schema(
        "CaseConverter", display_name="Case Converter", category="utils/string",
        inputs=[_text(), Combo("mode", list(_CASES), tooltip="The case to convert to.")],
        outputs=[Output("STRING", "STRING", tooltip="The converted text.")],
    )  # fmt: skip

    @classmethod
    def execute(cls, string: str, mode: str) -> tuple[str]:
        return (_pick(_CASES, "mode", mode)(string),)


class StringTrim(Node):
    """Remove white space from the start, the end or both ends of a text."""

    SCHEMA = Schema(
        "StringTrim", display_name="Trim", category="utils/string",
        inputs=[_text(), Combo("mode", list(_TRIMS), tooltip="Which ends to trim.")],
        outputs=[Output("STRING", "STRING", tooltip="The trimmed text.")],
    )  # fmt: skip

    @classmethod
    def execute(cls, string: str, mode: str) -> tuple[str]:
        return (_pick(_TRIMS, "mode", mode)(string),)


class StringContains(Node):
    """Whether a text contains another."""

    SCHEMA = Schema(
        "StringContains", display_name="Contains", category="utils/string",
        inputs=[_text("The text to search."), String("substring", multiline=True, tooltip="The text to look for."),
                Boolean("case_sensitive", True, tooltip="Tell upper from lower case.")],
        outputs=[Output("BOOLEAN", "contains", tooltip="True when found.")],
    )  # fmt: skip

    @classmethod
    def execute(cls, string: str, substring: str, case_sensitive: bool) -> tuple[bool]:
        return (substring in string if case_sensitive else substring.lower() in string.lower(),)


class StringCompare(Node):
    """Compare two texts: starts with, ends with, or equal."""

    SCHEMA = Schema(
        "StringCompare", display_name="Compare", category="utils/string",
        inputs=[String("string_a", multiline=True, tooltip="The first text."),
                String("string_b", multiline=True, tooltip="The second text."),
                Combo("mode", list(_COMPARES), tooltip="How to compare."),
                Boolean("case_sensitive", True, tooltip="Tell upper from lower case.")],
        outputs=[Output("BOOLEAN", "BOOLEAN", tooltip="The comparison's result.")],
    )  # fmt: skip

    @classmethod
    def execute(cls, string_a: str, string_b: str, mode: str, case_sensitive: bool) -> tuple[bool]:
        a, b = (string_a, string_b) if case_sensitive else (string_a.lower(), string_b.lower())
        return (bool(_pick(_COMPARES, "mode", mode)(a, b)),)


class RegexMatch(Node):
    """Whether a regular expression matches somewhere in a text (an invalid pattern never matches)."""

    SCHEMA = Schema(
        "RegexMatch", display_name="Regex Match", category="utils/string",
        inputs=[_text("The text to search."), String("regex_pattern", multiline=True, tooltip="A Python regular expression."),
                *regex_inputs()],
        outputs=[Output("BOOLEAN", "matches", tooltip="True when the pattern matches.")],
    )  # fmt: skip

    @classmethod
    def execute(cls, string: str, regex_pattern: str, case_insensitive: bool, multiline: bool, dotall: bool) -> tuple[bool]:
        try:
            return (re.search(regex_pattern, string, regex_flags(case_insensitive, multiline, dotall)) is not None,)
        except re.error:
            return (False,)
