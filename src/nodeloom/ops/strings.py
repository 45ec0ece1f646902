"""Plain string operations behind the text utility nodes: join, replace, regex extract,
JSON field lookup and splitting a text into a prompt list. Pure Python, no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from nodeloom.errors import ValidationError

__all__ = ["concatenate", "json_field", "regex_extract", "replace_text", "split_prompts", "unescape"]


def unescape(text: str) -> str:
    r"""Turn the two-character escapes ``\n`` and ``\t`` typed in a widget into the characters."""
    return text.replace("\\n", "\n").replace("\\t", "\t")


def concatenate(texts: Sequence[str], separator: str = "", *, skip_empty: bool = True) -> str:
    """Join ``texts`` with ``separator`` (``\\n``/``\\t`` escapes understood).

    Args:
        texts: the pieces, in order.
        separator: put between pieces.
        skip_empty: leave out pieces that are empty or only whitespace.
    """
    pieces = [t for t in texts if not skip_empty or t.strip()]
    return unescape(separator).join(pieces)


def _compile(pattern: str, name: str, flags: int = 0) -> re.Pattern[str]:
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise ValidationError(f"`{name}` is not a valid regular expression: {exc}") from exc


def replace_text(text: str, find: str, replacement: str, *, regex: bool = False, count: int = 0,
                 ignore_case: bool = False) -> str:
    r"""Replace occurrences of ``find`` in ``text``.

    Args:
        text: the input.
        find: a literal string, or a pattern when ``regex``.
        replacement: the new text (with ``regex``, ``\1`` / ``\g<name>`` refer to groups).
        regex: treat ``find`` as a regular expression.
        count: replace at most this many (0 = all).
        ignore_case: match regardless of case.

    Raises:
        ValidationError: empty ``find``, negative ``count`` or an invalid pattern.
    """
    if find == "":
        raise ValidationError("`find` must not be empty")
    if count < 0:
        raise ValidationError(f"`count` must be ≥ 0, got {count}")
    flags = re.IGNORECASE if ignore_case else 0
    if not regex:
        if not ignore_case:
            return text.replace(find, replacement, count if count else -1)
        pattern = re.compile(re.escape(find), flags)
        return pattern.sub(lambda _m: replacement, text, count=count)
    pattern = _compile(find, "find", flags)
    try:
        return pattern.sub(replacement, text, count=count)
    except (re.error, IndexError) as exc:
        raise ValidationError(f"`replace` refers to a group `find` does not have: {exc}") from exc


def regex_extract(text: str, pattern: str, *, group: int | str = 0, ignore_case: bool = False,
                  dotall: bool = False) -> list[str]:
    """Every match of ``pattern`` in ``text`` (the chosen group of each; unmatched groups give "").

    Args:
        text: the input.
        pattern: the regular expression.
        group: the group number or name to return (0 = the whole match).
        ignore_case / dotall: regex flags (dotall: ``.`` matches newlines too).

    Raises:
        ValidationError: an invalid pattern, or a group the pattern does not have.
    """
    flags = (re.IGNORECASE if ignore_case else 0) | (re.DOTALL if dotall else 0)
    compiled = _compile(pattern, "pattern", flags)
    if isinstance(group, int) and not 0 <= group <= compiled.groups:
        raise ValidationError(f"`group` must be between 0 and {compiled.groups} for this pattern, got {group}")
    if isinstance(group, str) and group not in compiled.groupindex:
        raise ValidationError(f"`group` `{group}` is not a named group of the pattern; it has {sorted(compiled.groupindex)}")
    return [m.group(group) or "" for m in compiled.finditer(text)]


_PATH_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[(-?\d+)\]")


def _path_steps(path: str) -> list[str | int]:
    steps: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _PATH_TOKEN.match(path, pos)
        if m is None or m.end() == pos:
            raise ValidationError(f"`path` {path!r} is not a field path like `a.b[0].c`")
        steps.append(int(m.group(2)) if m.group(2) is not None else m.group(1))
        pos = m.end()
    return steps


def _step(value: Any, step: str | int) -> Any:
    if isinstance(value, list):
        index = step if isinstance(step, int) else int(step) if str(step).lstrip("-").isdigit() else None
        if index is None:
            raise KeyError(step)
        return value[index]
    if isinstance(value, dict):
        return value[str(step)]
    raise KeyError(step)


def json_field(text: str, path: str, default: str | None = None) -> str:
    """The value at ``path`` in the JSON document ``text``, as a string.

    Paths use dots for keys and ``[i]`` (or ``.i``) for list items, e.g. ``data.items[0].name``;
    an empty path returns the whole document. Strings come back as they are, other values
    as compact JSON.

    Args:
        text: the JSON text.
        path: the field path.
        default: returned when the path is missing (None: a missing path is an error).

    Raises:
        ValidationError: invalid JSON, a malformed path, or a missing field without a default.
    """
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"`json_text` is not valid JSON: {exc}") from exc
    for step in _path_steps(path.strip()):
        try:
            value = _step(value, step)
        except (KeyError, IndexError, TypeError):
            if default is not None:
                return default
            raise ValidationError(f"`path` {path!r} not found: no field {step!r} there") from None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def split_prompts(text: str, delimiter: str = "\n", *, strip: bool = True, skip_empty: bool = True) -> list[str]:
    r"""Split ``text`` into prompts at ``delimiter`` (``\n``/``\t`` escapes understood).

    Raises:
        ValidationError: empty delimiter.
    """
    sep = unescape(delimiter)
    if sep == "":
        raise ValidationError("`delimiter` must not be empty")
    parts = text.split(sep)
    if strip:
        parts = [p.strip() for p in parts]
    return [p for p in parts if p.strip()] if skip_empty else parts
