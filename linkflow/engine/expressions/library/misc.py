"""Identifiers, randomness, JMESPath, type checks and fallbacks.

Randomness comes from the scope's `_rng` (the execution's recorded entropy),
so a replayed execution draws the same UUIDs and numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache

import jmespath as _jmespath
from jmespath import exceptions as _jmespath_errors
from jmespath.parser import ParsedResult

from linkflow.engine.expressions._convert import type_name
from linkflow.engine.expressions._protocol import ExpressionError
from linkflow.engine.expressions.library._base import Entry, Rng, as_int, as_text

__all__ = ["ENTRIES"]

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def uuid(rng: Rng) -> str:
    """A random (version 4) UUID."""
    return rng.uuid4()


def is_uuid(value: object) -> bool:
    """Whether the text is a UUID in its canonical 8-4-4-4-12 hex form."""
    return isinstance(value, str) and _UUID.fullmatch(value) is not None


def random_int(rng: Rng, low: object, high: object) -> int:
    """A random whole number between `low` and `high`, both included."""
    least, most = as_int(low, "the lower bound"), as_int(high, "the upper bound")
    if least > most:
        raise ExpressionError(f"the lower bound {least} is above the upper bound {most}")
    return least + min(int(rng.random() * (most - least + 1)), most - least)


@lru_cache(maxsize=512)
def _jmespath_compiled(expression: str) -> ParsedResult:
    try:
        return _jmespath.compile(expression)
    except _jmespath_errors.ParseError as error:
        token = error.token_value
        detail = "incomplete expression" if token is None else f"unexpected {token!r}"
        raise ExpressionError(
            f"invalid JMESPath {expression!r} at column {error.lex_position}: {detail}"
        ) from None
    except _jmespath_errors.JMESPathError as error:
        raise ExpressionError(f"invalid JMESPath {expression!r}: {error}") from None


def jmespath(value: object, expression: object) -> object:
    """Query the value with a JMESPath expression (https://jmespath.org)."""
    compiled = _jmespath_compiled(as_text(expression))
    try:
        return compiled.search(value)
    except _jmespath_errors.JMESPathError as error:
        raise ExpressionError(f"JMESPath {as_text(expression)!r} failed: {error}") from None


def type_of(value: object) -> str:
    """One of "string", "number", "boolean", "null", "list", "object", "datetime", "date"."""
    return type_name(value)


def is_number(value: object) -> bool:
    """Whether the value is a number (not numeric text, not a boolean)."""
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def is_string(value: object) -> bool:
    """Whether the value is text."""
    return isinstance(value, str)


def is_list(value: object) -> bool:
    """Whether the value is a list."""
    return isinstance(value, list | tuple)


def is_object(value: object) -> bool:
    """Whether the value is an object (mapping)."""
    return isinstance(value, Mapping)


def is_bool(value: object) -> bool:
    """Whether the value is true or false."""
    return isinstance(value, bool)


def coalesce(*values: object) -> object:
    """The first value that is not null (missing counts as null)."""
    for value in values:
        if value is not None:
            return value
    return None


def if_empty(value: object, fallback: object) -> object:
    """`fallback` when the value is null, "", [] or {}; the value otherwise."""
    if value is None or (isinstance(value, str | list | tuple | Mapping) and len(value) == 0):
        return fallback
    return value


ENTRIES = (
    Entry("uuid", uuid, filter=False, function=True, rng=True),
    Entry("is_uuid", is_uuid),
    Entry("random_int", random_int, filter=False, function=True, rng=True),
    Entry("jmespath", jmespath, function=True),
    Entry("type_of", type_of),
    Entry("is_number", is_number),
    Entry("is_string", is_string),
    Entry("is_list", is_list),
    Entry("is_object", is_object),
    Entry("is_bool", is_bool),
    Entry("coalesce", coalesce, function=True),
    Entry("if_empty", if_empty),
)
