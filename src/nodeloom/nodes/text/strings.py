"""Text utility nodes: concatenate, replace, regex extract, JSON field, string to prompt list."""

from __future__ import annotations

from nodeloom.errors import ValidationError
from nodeloom.node_api import IO, Boolean, Combo, Int, Node, NodeOutput, Output, Schema, String
from nodeloom.ops import strings

__all__ = ["StringToPromptList", "TextConcatenate", "TextJSONField", "TextPreview", "TextRegexExtract", "TextReplace"]

_DELIMITERS = {"newline": "\n", "comma": ",", "semicolon": ";", "blank line": "\n\n", "pipe": "|"}


class TextConcatenate(Node):
    """Join up to four texts with a separator (empty pieces can be left out)."""

    SCHEMA = Schema(
        node_id="TextConcatenate",
        display_name="Text Concatenate",
        category="text/utils",
        inputs=[
            String("text_a", "", multiline=True, tooltip="The first piece."),
            String("text_b", "", multiline=True, tooltip="The second piece."),
            String("separator", ", ", tooltip="Put between pieces; \\n is a newline."),
            Boolean("skip_empty", True, tooltip="Leave out pieces that are empty or only whitespace."),
            String("text_c", "", multiline=True, optional=True, tooltip="An optional third piece."),
            String("text_d", "", multiline=True, optional=True, tooltip="An optional fourth piece."),
        ],
        outputs=[Output(IO.STRING, "text", tooltip="The joined text.")],
    )

    @classmethod
    def execute(cls, text_a: str, text_b: str, separator: str = ", ", skip_empty: bool = True,
                text_c: str = "", text_d: str = "") -> tuple[str]:
        return (strings.concatenate([text_a, text_b, text_c, text_d], separator, skip_empty=skip_empty),)


class TextReplace(Node):
    """Replace text, literally or with a regular expression."""

    SCHEMA = Schema(
        node_id="TextReplace",
        display_name="Text Replace",
        category="text/utils",
        inputs=[
            String("text", "", multiline=True, tooltip="The text to change."),
            String("find", "", tooltip="What to look for (a pattern when `use_regex` is on)."),
            String("replace", "", tooltip="The replacement; with regex, \\1 or \\g<name> insert groups."),
            Boolean("use_regex", False, tooltip="Treat `find` as a regular expression."),
            Boolean("ignore_case", False, tooltip="Match regardless of upper/lower case."),
            Int("count", 0, min=0, max=1 << 20, tooltip="Replace at most this many occurrences (0 = all)."),
        ],
        outputs=[Output(IO.STRING, "text", tooltip="The changed text.")],
    )

    @classmethod
    def execute(cls, text: str, find: str, replace: str, use_regex: bool = False, ignore_case: bool = False,
                count: int = 0) -> tuple[str]:
        return (strings.replace_text(text, find, replace, regex=use_regex, count=count, ignore_case=ignore_case),)


class TextRegexExtract(Node):
    """Extract the matches of a regular expression: the first one, and all of them as a list."""

    SCHEMA = Schema(
        node_id="TextRegexExtract",
        display_name="Text Regex Extract",
        category="text/utils",
        inputs=[
            String("text", "", multiline=True, tooltip="The text to search."),
            String("pattern", "", tooltip="A Python regular expression."),
            Int("group", 0, min=0, max=99, tooltip="Which group of each match to return (0 = the whole match)."),
            Boolean("ignore_case", False, tooltip="Match regardless of upper/lower case."),
            Boolean("dotall", False, tooltip="Let `.` match newlines too."),
        ],
        outputs=[
            Output(IO.STRING, "first", tooltip="The first match (empty when nothing matches)."),
            Output(IO.STRING, "matches", is_list=True, tooltip="Every match, as a list."),
            Output(IO.INT, "count", tooltip="How many matches were found."),
        ],
    )

    @classmethod
    def execute(cls, text: str, pattern: str, group: int = 0, ignore_case: bool = False,
                dotall: bool = False) -> tuple[str, list[str], int]:
        found = strings.regex_extract(text, pattern, group=group, ignore_case=ignore_case, dotall=dotall)
        return (found[0] if found else "", found, len(found))


class TextJSONField(Node):
    """Read one field of a JSON text by path, e.g. `data.items[0].name`."""

    SCHEMA = Schema(
        node_id="TextJSONField",
        display_name="Text JSON Field",
        category="text/utils",
        inputs=[
            String("json_text", "", multiline=True, tooltip="A JSON document."),
            String("path", "", tooltip="Dots for keys, [i] for list items; empty returns the whole document."),
            Boolean("use_default", False, tooltip="Return `default` instead of failing when the path is missing."),
            String("default", "", tooltip="The value when the path is missing and `use_default` is on."),
        ],
        outputs=[Output(IO.STRING, "value", tooltip="The field: strings as they are, other values as JSON.")],
    )

    @classmethod
    def execute(cls, json_text: str, path: str, use_default: bool = False, default: str = "") -> tuple[str]:
        return (strings.json_field(json_text, path, default if use_default else None),)


class StringToPromptList(Node):
    """Split a text into a list of prompts (one per line by default); nodes downstream run once per prompt."""

    SCHEMA = Schema(
        node_id="StringToPromptList",
        display_name="String to Prompt List",
        category="text/utils",
        inputs=[
            String("text", "", multiline=True, tooltip="The prompts, separated by the delimiter."),
            Combo("delimiter", [*_DELIMITERS, "custom"], default="newline", tooltip="Where to split."),
            String("custom_delimiter", "", tooltip="The delimiter when `delimiter` is custom (\\n for newline)."),
            Boolean("strip", True, tooltip="Trim spaces around each prompt."),
            Boolean("skip_empty", True, tooltip="Leave out empty prompts."),
        ],
        outputs=[
            Output(IO.STRING, "prompts", is_list=True, tooltip="The prompts, as a list."),
            Output(IO.INT, "count", tooltip="How many prompts."),
        ],
    )

    @classmethod
    def execute(cls, text: str, delimiter: str = "newline", custom_delimiter: str = "", strip: bool = True,
                skip_empty: bool = True) -> tuple[list[str], int]:
        sep = custom_delimiter if delimiter == "custom" else _DELIMITERS.get(delimiter)
        if sep is None:
            raise ValidationError(f"`delimiter` must be one of {[*_DELIMITERS, 'custom']}, got {delimiter!r}")
        prompts = strings.split_prompts(text, sep, strip=strip, skip_empty=skip_empty)
        return (prompts, len(prompts))


class TextPreview(Node):
    """Show a text in the run's outputs (and pass it on); ends a text-only workflow."""

    SCHEMA = Schema(
        node_id="TextPreview",
        display_name="Text Preview",
        category="text/utils",
        output_node=True,
        inputs=[String("text", "", multiline=True, force_input=True, tooltip="The text to show.")],
        outputs=[Output(IO.STRING, "text", tooltip="The same text, unchanged.")],
    )

    @classmethod
    def execute(cls, text: str) -> NodeOutput:
        return NodeOutput(text, ui={"text": [text]})
