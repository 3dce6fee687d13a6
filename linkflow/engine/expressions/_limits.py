"""Resource limits for expressions, and the checks that enforce them.

An expression runs on a worker shared by many executions, so anything that can
turn a short source into a huge value is refused before it is computed: string
and list repetition, big powers, padding widths, joins, replacements and
format strings. The numbers are generous for real workflows and small enough
that one expression cannot take a worker's memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from linkflow.engine.expressions._budget import spend_items, spend_text
from linkflow.engine.expressions._protocol import ExpressionError

__all__ = [
    "MAX_INT_BITS",
    "MAX_ITEMS",
    "MAX_RANGE",
    "MAX_REGEX_INPUT",
    "MAX_REGEX_PATTERN",
    "MAX_TEXT",
    "check_items",
    "check_percent_format",
    "check_str_format",
    "check_text",
]

#: Longest string an expression may build or render: 10 million characters (~10 MB).
MAX_TEXT = 10_000_000
#: Longest list an expression may build by repetition, or materialise from an iterator.
MAX_ITEMS = 1_000_000
#: Most numbers `range()` may produce; Jinja's own sandbox limit.
MAX_RANGE = 100_000
#: Largest integer `*` and `**` may produce (4096 bits, about 1233 decimal digits).
MAX_INT_BITS = 4096
#: Longest input the regex functions accept (100 kB): bounds backtracking time.
MAX_REGEX_INPUT = 100_000
#: Longest regex pattern accepted.
MAX_REGEX_PATTERN = 1_000


def check_text(length: int, what: str = "the text") -> None:
    """Refuse a string of `length` characters when it exceeds `MAX_TEXT`, or when the
    evaluation has built too much in total (`_budget`)."""
    if length > MAX_TEXT:
        raise ExpressionError(f"{what} would be too long (limit {MAX_TEXT:,} characters)")
    spend_text(length)


def check_items(count: int, what: str = "the list") -> None:
    """Refuse a list of `count` items when it exceeds `MAX_ITEMS`, or when the evaluation
    has built too many in total (`_budget`)."""
    if count > MAX_ITEMS:
        raise ExpressionError(f"{what} would be too long (limit {MAX_ITEMS:,} items)")
    spend_items(count)


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")
_NUMBER = re.compile(r"\d+")


def _longest_text(values: Iterable[object]) -> int:
    return max((len(str(value)) for value in values), default=0)


def check_percent_format(template: str, arguments: object) -> None:
    """Bound the size of `template % arguments` before computing it."""
    specs = _PERCENT_SPEC.findall(template)
    widest = 0
    for width, precision, _kind in specs:
        if width == "*" or precision == "*":
            raise ExpressionError("'*' widths are not supported in format strings")
        widest = max(widest, int(width or 0), int(precision or 0))
    check_text(widest, "a formatted field")
    if isinstance(arguments, tuple):
        longest = _longest_text(arguments)
    elif isinstance(arguments, Mapping):
        longest = _longest_text(arguments.values())
    else:
        longest = len(str(arguments))
    check_text(len(template) + len(specs) * (widest + longest), "the formatted text")


def check_str_format(template: str, args: tuple[object, ...], kwargs: Mapping[str, object]) -> None:
    """Bound the size of `template.format(*args, **kwargs)` before computing it."""
    fields = 0
    widest = 0
    # string.Formatter.parse would do, but the format spec grammar is all we need here.
    for match in re.finditer(r"\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}", template):
        field = match.group()
        if field.startswith("{{"):
            continue
        fields += 1
        _, _, spec = field[1:-1].partition(":")
        if "{" in spec:
            raise ExpressionError("nested fields are not supported in format strings")
        widest = max([widest, *(int(n) for n in _NUMBER.findall(spec))])
    check_text(widest, "a formatted field")
    longest = max(_longest_text(args), _longest_text(kwargs.values()))
    check_text(len(template) + fields * (widest + longest), "the formatted text")
