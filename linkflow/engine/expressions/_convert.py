"""Turning evaluation results into JSON values and into text.

Evaluation works on rich Python values (datetimes stay datetimes so that
`now | add_days(1)` works); only the final result is made JSON-compatible:
datetimes and dates become ISO 8601 strings, tuples and iterators lists, sets
sorted lists, Decimals numbers, missing values null. A result that has no JSON
form (a function, an internal object) is an error, not a guess.
"""

from __future__ import annotations

import json
import math
from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from itertools import islice
from uuid import UUID

import orjson
from jinja2 import Undefined

from linkflow.engine.expressions._limits import MAX_ITEMS, check_items
from linkflow.engine.expressions._protocol import ExpressionError

__all__ = ["describe", "iso_datetime", "render_text", "to_json_value", "type_name"]

#: Deeper results are refused rather than risking the interpreter's recursion limit.
_MAX_DEPTH = 256


def type_name(value: object) -> str:
    """The user-facing name of a value's type, e.g. "string" or "object"."""
    if value is None or isinstance(value, Undefined):
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, date):
        return "date"
    if isinstance(value, timedelta):
        return "duration"
    if isinstance(value, list | tuple | set | frozenset | Iterator | range):
        return "list"
    if callable(value):
        return "function"
    return "value"


def describe(value: object) -> str:
    """`type_name` with an article, for messages: "a string", "an object", "null"."""
    name = type_name(value)
    if name == "null":
        return "null"
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def iso_datetime(value: datetime) -> str:
    """ISO 8601, with "Z" for a zero UTC offset."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _is_plain(value: object, depth: int) -> bool:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)  # type: ignore[arg-type]
    if depth > _MAX_DEPTH:
        raise ExpressionError("the result is nested too deeply")
    if kind is dict:
        return all(
            type(k) is str and _is_plain(v, depth + 1)
            for k, v in value.items()  # type: ignore[attr-defined]
        )
    if kind is list:
        return all(_is_plain(v, depth + 1) for v in value)  # type: ignore[attr-defined]
    return False


def to_json_value(value: object) -> object:
    """`value` as JSON-compatible data; returns `value` itself when it already is."""
    if _is_plain(value, 0):
        return value
    return _convert(value, 0)


def _key(value: object) -> str:
    if isinstance(value, str):
        return str(value)
    converted = _convert(value, _MAX_DEPTH)
    return render_text(converted)


def _sequence(values: object, depth: int) -> list[object]:
    if isinstance(values, list | tuple):
        return [_convert(v, depth + 1) for v in values]
    assert isinstance(values, Iterator | range | KeysView | ValuesView | ItemsView)
    taken = list(islice(values, MAX_ITEMS + 1))
    check_items(len(taken), "the result")
    return [_convert(v, depth + 1) for v in taken]


def _sorted(values: list[object]) -> list[object]:
    try:
        return sorted(values)  # type: ignore[type-var]
    except TypeError:  # mixed types: order by their JSON text instead
        return sorted(values, key=lambda v: orjson.dumps(v, option=orjson.OPT_SORT_KEYS))


def _convert(value: object, depth: int) -> object:
    if depth > _MAX_DEPTH:
        raise ExpressionError("the result is nested too deeply")
    if value is None or isinstance(value, Undefined):
        return None
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {_key(k): _convert(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | Iterator | range | KeysView | ValuesView | ItemsView):
        return _sequence(value, depth)
    return _convert_other(value, depth)


def _convert_other(value: object, depth: int) -> object:
    if isinstance(value, datetime):
        return iso_datetime(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset):
        return _sorted([_convert(v, depth + 1) for v in value])
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, UUID):
        return str(value)
    if callable(value):
        raise ExpressionError("the result is a function; call it with ()")
    if isinstance(value, complex):
        raise ExpressionError("the result is not a real number")
    raise ExpressionError("the result cannot be represented as JSON")


def render_text(value: object) -> str:
    """How a value reads inside a string: null is "", booleans "true"/"false",
    lists and objects compact JSON, datetimes ISO 8601."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[return-value]
    if value is None:
        return ""
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is float:
        return _number_text(value)
    value = to_json_value(value)
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | int | float):
        return render_text(value)
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # integers beyond 64 bits
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _number_text(value: object) -> str:
    if type(value) is float and not math.isfinite(value):
        return ""
    try:
        return str(value)
    except ValueError:  # beyond Python's int-to-text digit limit
        raise ExpressionError("the number is too large to be shown as text") from None
