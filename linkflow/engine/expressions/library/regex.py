"""Regular expressions (Python `re` syntax).

Python's `re` has no timeout, so a pathological pattern could backtrack for a
very long time. Two guards keep it bounded in practice: inputs are limited to
`MAX_REGEX_INPUT` characters, and patterns with a repeated group that itself
ends in a repetition (`(a+)+`, `(\\w*)*`), the classic catastrophic shape, are
refused.
"""

from __future__ import annotations

import re
from functools import lru_cache

from linkflow.engine.expressions._limits import (
    MAX_REGEX_INPUT,
    MAX_REGEX_PATTERN,
    MAX_TEXT,
    check_text,
)
from linkflow.engine.expressions._protocol import ExpressionError
from linkflow.engine.expressions.library._base import Entry, as_int, as_text

__all__ = ["ENTRIES"]

_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}
_NESTED_REPETITION = re.compile(r"[+*}]\??\)[+*{]")


@lru_cache(maxsize=512)
def _compile(pattern: str, flags: str) -> re.Pattern[str]:
    if len(pattern) > MAX_REGEX_PATTERN:
        raise ExpressionError(f"the regex pattern is too long (limit {MAX_REGEX_PATTERN})")
    if _NESTED_REPETITION.search(pattern):
        raise ExpressionError(
            f"the regex '{pattern}' repeats a group that ends in a repetition, "
            "which can take exponential time; rewrite it without nesting"
        )
    value = 0
    for flag in flags:
        if flag not in _FLAGS:
            raise ExpressionError(f"unknown regex flag {flag!r} (use i, m, s or x)")
        value |= _FLAGS[flag]
    try:
        return re.compile(pattern, value)
    except re.error as error:
        raise ExpressionError(f"invalid regex '{pattern}': {error}") from None


def _prepare(value: object, pattern: object, flags: object) -> tuple[str, re.Pattern[str]]:
    text = as_text(value)
    if len(text) > MAX_REGEX_INPUT:
        raise ExpressionError(
            f"the text is too long for a regex (limit {MAX_REGEX_INPUT:,} characters)"
        )
    return text, _compile(as_text(pattern), as_text(flags))


def regex_match(value: object, pattern: object, flags: object = "") -> bool:
    """Whether the pattern is found anywhere in the text (anchor with ^ and $)."""
    text, compiled = _prepare(value, pattern, flags)
    return compiled.search(text) is not None


def regex_search(value: object, pattern: object, group: object = 0, flags: object = "") -> object:
    """The first match (or one of its groups, by number or name); null when none."""
    text, compiled = _prepare(value, pattern, flags)
    found = compiled.search(text)
    if found is None:
        return None
    key = group if isinstance(group, str) else as_int(group, "the group")
    try:
        return found.group(key)
    except IndexError:
        raise ExpressionError(f"the regex has no group {group!r}") from None


def regex_findall(value: object, pattern: object, flags: object = "") -> list[object]:
    """Every match; with groups, the groups of every match."""
    text, compiled = _prepare(value, pattern, flags)
    return [list(m) if isinstance(m, tuple) else m for m in compiled.findall(text)]


def regex_replace(
    value: object, pattern: object, replacement: object, count: object = 0, flags: object = ""
) -> str:
    """Replace matches; `\\1` or `\\g<name>` in the replacement insert groups."""
    text, compiled = _prepare(value, pattern, flags)
    template = as_text(replacement)
    most = as_int(count, "the count")
    try:
        bound = _replaced_size_bound(compiled, text, template, most)
        if bound <= MAX_TEXT:
            return compiled.sub(template, text, count=most)
        if "\\" not in template:  # no group references: the bound is (nearly) exact
            check_text(bound, "the replaced text")
        return _replace_checked(compiled, text, template, most)
    except (re.error, IndexError) as error:
        raise ExpressionError(f"invalid replacement '{template}': {error}") from None


def _replaced_size_bound(compiled: re.Pattern[str], text: str, template: str, count: int) -> int:
    """An upper bound of the replaced text's length: each `\\` may insert up to the whole text
    (a group inside a look-ahead can reach past its match)."""
    matches = 0
    for _ in compiled.finditer(text):
        matches += 1
        if matches == count:
            break
    return len(text) + matches * (len(template) + template.count("\\") * len(text))


def _replace_checked(compiled: re.Pattern[str], text: str, template: str, count: int) -> str:
    """Replace while counting, for the rare case the bound is too loose to decide."""
    produced = 0

    def expand(found: re.Match[str]) -> str:
        nonlocal produced
        piece = found.expand(template)
        produced += len(piece)
        check_text(produced + len(text), "the replaced text")
        return piece

    return compiled.sub(expand, text, count=count)


def regex_split(value: object, pattern: object, flags: object = "") -> list[object]:
    """Split the text at every match."""
    text, compiled = _prepare(value, pattern, flags)
    return list(compiled.split(text))


def regex_escape(value: object) -> str:
    """Escape text so that it matches itself literally inside a pattern."""
    return re.escape(as_text(value))


ENTRIES = (
    Entry("regex_match", regex_match),
    Entry("regex_search", regex_search),
    Entry("regex_findall", regex_findall),
    Entry("regex_replace", regex_replace),
    Entry("regex_split", regex_split),
    Entry("regex_escape", regex_escape),
)
