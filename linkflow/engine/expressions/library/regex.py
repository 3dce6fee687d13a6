"""Regular expressions, matched by RE2 (`google-re2`): in time linear in the input,
whatever the pattern.

Python's `re` backtracks: `(a|a)*b` on 30 characters runs for minutes, and an
expression runs on the worker's event loop, so one pattern would freeze every
tenant's requests. RE2's syntax is Python's minus backreferences (`\\1` in a
pattern) and look-around (`(?=`, `(?<=`...), which are what makes backtracking
necessary; a pattern using them is refused with RE2's reason. Replacements keep
`\\1` and `\\g<name>`. Inputs are still limited to `MAX_REGEX_INPUT`
characters and patterns to `MAX_REGEX_PATTERN`, and RE2's own memory to
`RE2_MEMORY_BYTES` per pattern.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Final

import re2

from linkflow.engine.expressions._limits import (
    MAX_REGEX_INPUT,
    MAX_REGEX_PATTERN,
    MAX_TEXT,
    check_text,
)
from linkflow.engine.expressions._protocol import ExpressionError
from linkflow.engine.expressions.library._base import Entry, as_int, as_text

__all__ = ["ENTRIES"]

_FLAGS: Final = {"i": "i", "m": "m", "s": "s"}
"""Flags, as RE2's inline groups."""
RE2_MEMORY_BYTES: Final = 8 << 20
"""What RE2 may use for one compiled pattern (its DFA cache); a pattern needing more fails."""

Pattern = Any
"""A compiled RE2 pattern (`re2._Regexp`, which ships no type information)."""
Match = Any


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is the author's error, not a log line
    options.max_mem = RE2_MEMORY_BYTES
    return options


_OPTIONS: Final = _options()


@lru_cache(maxsize=512)
def _compile(pattern: str, flags: str) -> Pattern:
    if len(pattern) > MAX_REGEX_PATTERN:
        raise ExpressionError(f"the regex pattern is too long (limit {MAX_REGEX_PATTERN})")
    inline = ""
    for flag in flags:
        if flag == "x":
            raise ExpressionError("the regex flag 'x' (verbose) is not supported")
        if flag not in _FLAGS:
            raise ExpressionError(f"unknown regex flag {flag!r} (use i, m or s)")
        inline += _FLAGS[flag]
    source = f"(?{inline}){pattern}" if inline else pattern
    try:
        return re2.compile(source, _OPTIONS)
    except re2.error as error:
        reason = error.args[0] if error.args else error
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ExpressionError(f"invalid regex '{pattern}': {reason}") from None
    except UnicodeEncodeError:
        raise ExpressionError(f"invalid regex '{pattern}': it is not valid Unicode") from None


def _prepare(value: object, pattern: object, flags: object) -> tuple[str, Pattern]:
    text = as_text(value)
    if len(text) > MAX_REGEX_INPUT:
        raise ExpressionError(
            f"the text is too long for a regex (limit {MAX_REGEX_INPUT:,} characters)"
        )
    try:
        text.encode("utf-8")  # RE2 matches UTF-8: a lone surrogate cannot be matched
    except UnicodeEncodeError:
        raise ExpressionError("the text is not valid Unicode (a lone surrogate)") from None
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
            return str(compiled.sub(template, text, count=most))
        if "\\" not in template:  # no group references: the bound is (nearly) exact
            check_text(bound, "the replaced text")
        return _replace_checked(compiled, text, template, most)
    except (re2.error, IndexError) as error:
        raise ExpressionError(f"invalid replacement '{template}': {error}") from None


def _replaced_size_bound(compiled: Pattern, text: str, template: str, count: int) -> int:
    """An upper bound of the replaced text's length: each `\\` may insert up to the whole text
    (a group inside a look-ahead can reach past its match)."""
    matches = 0
    for _ in compiled.finditer(text):
        matches += 1
        if matches == count:
            break
    return len(text) + matches * (len(template) + template.count("\\") * len(text))


def _replace_checked(compiled: Pattern, text: str, template: str, count: int) -> str:
    """Replace while counting, for the rare case the bound is too loose to decide."""
    produced = 0

    def expand(found: Match) -> str:
        nonlocal produced
        piece = str(found.expand(template))
        produced += len(piece)
        check_text(produced + len(text), "the replaced text")
        return piece

    return str(compiled.sub(expand, text, count=count))


def regex_split(value: object, pattern: object, flags: object = "") -> list[object]:
    """Split the text at every match."""
    text, compiled = _prepare(value, pattern, flags)
    return list(compiled.split(text))


def regex_escape(value: object) -> str:
    """Escape text so that it matches itself literally inside a pattern."""
    return re.escape(as_text(value))  # Python's escapes are valid RE2


ENTRIES = (
    Entry("regex_match", regex_match),
    Entry("regex_search", regex_search),
    Entry("regex_findall", regex_findall),
    Entry("regex_replace", regex_replace),
    Entry("regex_split", regex_split),
    Entry("regex_escape", regex_escape),
)
