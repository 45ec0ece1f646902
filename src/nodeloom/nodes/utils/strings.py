"""ComfyUI's core string nodes the official templates use: concatenate, replace, regex
extract and replace, and pulling one key's value out of JSON text (code fences allowed)."""

from __future__ import annotations

import json
import re
from typing import Any

from nodeloom.node_api import Boolean, Combo, Int, Node, Output, Schema, String, ValidationError

__all__ = ["JsonExtractString", "RegexExtract", "RegexReplace", "StringConcatenate", "StringReplace", "regex_flags",
           "regex_inputs"]


def _string_out(name: str = "STRING") -> Output:
    return Output("STRING", name, tooltip="The resulting text.")


def regex_flags(case_insensitive: bool, multiline: bool, dotall: bool) -> int:
    return (re.IGNORECASE if case_insensitive else 0) | (re.MULTILINE if multiline else 0) | (re.DOTALL if dotall else 0)


def regex_inputs(optional: bool = False) -> list[Any]:
    return [
        Boolean("case_insensitive", True, optional=optional, tooltip="Ignore letter case."),
        Boolean("multiline", False, optional=optional, tooltip="^ and $ match at every line."),
        Boolean("dotall", False, optional=optional, tooltip="`.` also matches line breaks."),
    ]


class StringConcatenate(Node):
    """Join two texts with a delimiter between them."""

    SCHEMA = Schema(
        "StringConcatenate",
        display_name="Concatenate",
        category="utils/string",
        inputs=[
            String("string_a", multiline=True, tooltip="The first text."),
            String("string_b", multiline=True, tooltip="The second text."),
            String("delimiter", "", tooltip="Put between the two texts."),
        ],
        outputs=[_string_out()],
    )

    @classmethod
    def execute(cls, string_a: str, string_b: str, delimiter: str) -> tuple[str]:
        return (f"{string_a}{delimiter}{string_b}",)


class StringReplace(Node):
    """Replace every occurrence of a text with another."""

    SCHEMA = Schema(
        "StringReplace",
        display_name="Replace",
        category="utils/string",
        inputs=[
            String("string", multiline=True, tooltip="The text to change."),
            String("find", multiline=True, tooltip="What to look for (plain text)."),
            String("replace", multiline=True, tooltip="What to put instead."),
        ],
        outputs=[_string_out()],
    )

    @classmethod
    def execute(cls, string: str, find: str, replace: str) -> tuple[str]:
        return (string.replace(find, replace),)


def _group(match: re.Match[str], index: int) -> str | None:
    return (match.group(index) or "") if len(match.groups()) >= index else None


def regex_extract(text: str, pattern: str, mode: str, flags: int, group_index: int) -> str:
    """What RegexExtract outputs; an invalid pattern gives an empty text, as in ComfyUI."""
    try:
        if mode == "First Match":
            found = re.search(pattern, text, flags)
            return found.group(0) if found else ""
        if mode == "All Matches":
            return "\n".join(m[0] if isinstance(m, tuple) else m for m in re.findall(pattern, text, flags))
        if mode == "First Group":
            found = re.search(pattern, text, flags)
            return (_group(found, group_index) or "") if found else ""
        if mode == "All Groups":
            groups = (_group(m, group_index) for m in re.finditer(pattern, text, flags) if m.groups())
            return "\n".join(g for g in groups if g is not None)
    except re.error:
        return ""
    raise ValidationError(f"`mode` must be First Match, All Matches, First Group or All Groups, got {mode!r}")


class RegexExtract(Node):
    """Extract the first or all matches (or one group of them) of a regular expression."""

    SCHEMA = Schema(
        "RegexExtract",
        display_name="Regex Extract",
        category="utils/string",
        inputs=[
            String("string", multiline=True, tooltip="The text to search."),
            String("regex_pattern", multiline=True, tooltip="A Python regular expression."),
            Combo("mode", ["First Match", "All Matches", "First Group", "All Groups"],
                  tooltip="Whole matches or one group; the first or all of them (one per line)."),
            *regex_inputs(),
            Int("group_index", 1, min=0, max=100, tooltip="Which group the group modes return (0 = whole match)."),
        ],
        outputs=[_string_out()],
    )

    @classmethod
    def execute(cls, string: str, regex_pattern: str, mode: str, case_insensitive: bool, multiline: bool,
                dotall: bool, group_index: int) -> tuple[str]:
        return (regex_extract(string, regex_pattern, mode, regex_flags(case_insensitive, multiline, dotall), group_index),)


class RegexReplace(Node):
    """Replace the matches of a regular expression in a text."""

    SCHEMA = Schema(
        "RegexReplace",
        display_name="Regex Replace",
        category="utils/string",
        inputs=[
            String("string", multiline=True, tooltip="The text to change."),
            String("regex_pattern", multiline=True, tooltip="A Python regular expression."),
            String("replace", multiline=True, tooltip="The replacement; \\1 refers to a group."),
            *regex_inputs(optional=True),
            Int("count", 0, min=0, max=100, optional=True,
                tooltip="Maximum number of replacements to make. Set to 0 to replace all occurrences."),
        ],
        outputs=[_string_out()],
    )

    @classmethod
    def execute(cls, string: str, regex_pattern: str, replace: str, case_insensitive: bool = True,
                multiline: bool = False, dotall: bool = False, count: int = 0) -> tuple[str]:
        try:
            return (re.sub(regex_pattern, replace, string, count=count, flags=regex_flags(case_insensitive, multiline, dotall)),)
        except re.error as exc:
            raise ValidationError(f"`regex_pattern` or `replace` is not valid: {exc}") from None


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def _json_object(text: str) -> Any:
    """The first JSON value found in ``text``: the whole text, a fenced block, or from the first ``{``."""
    candidates = [text] + _FENCE.findall(text)
    start = text.find("{")
    if start >= 0:
        candidates.append(text[start:])
    decoder = json.JSONDecoder()
    for candidate in candidates:
        try:
            return decoder.raw_decode(candidate.strip())[0]
        except ValueError:
            continue
    return None


class JsonExtractString(Node):
    """Read one key of a JSON object found in the text (prose and code fences around it are
    skipped); an empty text when it cannot be found."""

    SCHEMA = Schema(
        "JsonExtractString",
        display_name="Extract String from JSON",
        category="utils/string",
        inputs=[
            String("json_string", multiline=True, tooltip="Text holding a JSON object."),
            String("key", "", tooltip="The key whose value to return."),
        ],
        outputs=[_string_out("output")],
    )

    @classmethod
    def execute(cls, json_string: str, key: str) -> tuple[str]:
        data = _json_object(json_string)
        if not isinstance(data, dict) or key not in data or data[key] is None:
            return ("",)
        value = data[key]
        return (value if isinstance(value, str) else json.dumps(value),)
