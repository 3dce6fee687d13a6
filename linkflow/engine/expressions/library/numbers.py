"""Number filters: rounding, strict conversion, statistics, formatting."""

from __future__ import annotations

import math
import statistics

from linkflow.engine.expressions._protocol import ExpressionError
from linkflow.engine.expressions.library._base import (
    Entry,
    Number,
    as_int,
    as_list,
    as_number,
    as_text,
)

__all__ = ["ENTRIES"]

#: More decimals than a float carries would only print noise.
_MAX_DECIMALS = 20


def _whole(number: float) -> Number:
    return int(number) if number.is_integer() else number


def floor(value: object) -> int:
    """Round down to a whole number."""
    return math.floor(as_number(value))


def ceil(value: object) -> int:
    """Round up to a whole number."""
    return math.ceil(as_number(value))


def to_int(value: object) -> int:
    """A whole number from a number or numeric text (decimals are cut); errors otherwise."""
    if isinstance(value, bool):
        return int(value)
    number = as_number(value)
    if isinstance(number, float) and not math.isfinite(number):
        raise ExpressionError(f"{number} is not a finite number")
    return int(number)


def to_float(value: object) -> float:
    """A decimal number from a number or numeric text; errors otherwise."""
    if isinstance(value, bool):
        return float(value)
    return float(as_number(value))


def clamp(value: object, low: object, high: object) -> Number:
    """Limit a number to the range [low, high]."""
    least, most = as_number(low, "the lower bound"), as_number(high, "the upper bound")
    if least > most:
        raise ExpressionError(f"the lower bound {least} is above the upper bound {most}")
    return min(max(as_number(value), least), most)


def _numbers(values: object) -> list[Number]:
    return [as_number(v) for v in as_list(values, "the values") if v is not None]


def avg(values: object) -> Number | None:
    """Arithmetic mean of a list of numbers (nulls skipped); null for an empty list."""
    numbers = _numbers(values)
    if not numbers:
        return None
    return _whole(math.fsum(numbers) / len(numbers))


def median(values: object) -> Number | None:
    """Middle value of a list of numbers (nulls skipped); null for an empty list."""
    numbers = _numbers(values)
    if not numbers:
        return None
    middle = statistics.median(numbers)
    return _whole(float(middle)) if isinstance(middle, float) else middle


def _decimals(value: object) -> int:
    places = as_int(value, "the number of decimals")
    if not 0 <= places <= _MAX_DECIMALS:
        raise ExpressionError(f"the number of decimals must be between 0 and {_MAX_DECIMALS}")
    return places


def format_number(
    value: object, decimals: object = 2, thousands: object = ",", point: object = "."
) -> str:
    """Fixed decimals with a thousands separator: 1234.5 → "1,234.50"."""
    text = f"{as_number(value):,.{_decimals(decimals)}f}"
    whole, _, fraction = text.partition(".")
    whole = whole.replace(",", as_text(thousands))
    return f"{whole}{as_text(point)}{fraction}" if fraction else whole


def percent(value: object, decimals: object = 0) -> str:
    """A ratio as a percentage: 0.256 → "26%"."""
    return f"{as_number(value) * 100:.{_decimals(decimals)}f}%"


ENTRIES = (
    Entry("floor", floor),
    Entry("ceil", ceil),
    Entry("to_int", to_int),
    Entry("to_float", to_float),
    Entry("clamp", clamp),
    Entry("avg", avg),
    Entry("median", median),
    Entry("format_number", format_number),
    Entry("percent", percent),
)
