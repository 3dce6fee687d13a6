"""What every library module shares: the `Entry` record, `Rng`, and value coercions.

Library functions are plain Python: they take ordinary values (missing values
arrive as None), never read the clock or global randomness, and raise
`ExpressionError` with a message for the workflow author when an input does
not fit. The dialect adapts them to filters and functions.
"""

from __future__ import annotations

import math
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from linkflow.engine.expressions._convert import describe, iso_datetime, render_text
from linkflow.engine.expressions._protocol import ExpressionError

__all__ = [
    "SYSTEM_RNG",
    "Entry",
    "Number",
    "Rng",
    "as_int",
    "as_list",
    "as_mapping",
    "as_number",
    "as_text",
    "describe",
    "get_path",
    "iso_datetime",
    "path_parts",
    "quoted",
    "render_text",
]

Number = int | float


class Rng(Protocol):
    """Randomness taken from the scope's `_rng`, so replays draw the same values."""

    def uuid4(self) -> str: ...

    def random(self) -> float: ...


class _SystemRng:
    """Used when the scope has no `_rng` (tests, previews)."""

    def uuid4(self) -> str:
        return str(uuid.uuid4())

    def random(self) -> float:
        return secrets.SystemRandom().random()


SYSTEM_RNG: Rng = _SystemRng()


@dataclass(frozen=True, slots=True)
class Entry:
    """One library name: usable as a filter, a function, or both.

    With `rng`, `func` takes an `Rng` as its first argument; the dialect supplies it.
    """

    name: str
    func: Callable[..., object]
    filter: bool = True
    function: bool = False
    rng: bool = False


def as_text(value: object) -> str:
    """A value as text, the way `{{ }}` renders it (null → "")."""
    return value if isinstance(value, str) else render_text(value)


def quoted(text: str, limit: int = 40) -> str:
    """`text` quoted for a message, shortened when long."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def as_number(value: object, what: str | None = None) -> Number:
    """A number from a number or numeric text; raises "'abc' is not a number"."""
    if isinstance(value, bool):
        raise ExpressionError(f"{what or 'true/false'} is not a number")
    if isinstance(value, int | float):
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return number
        raise ExpressionError(f"{quoted(value)} is not a number")
    raise ExpressionError(f"{what or describe(value)} is not a number")


def as_int(value: object, what: str = "the count") -> int:
    """An integer argument such as a width or a size."""
    number = as_number(value, what)
    if isinstance(number, float):
        if not number.is_integer():
            raise ExpressionError(f"{what} must be a whole number, not {number}")
        return int(number)
    return number


def as_list(value: object, what: str = "the value") -> list[object]:
    """A list from a list, tuple, set or other iterable (not from text or objects)."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, str | Mapping | bytes) or not hasattr(value, "__iter__"):
        raise ExpressionError(f"{what} must be a list, not {describe(value)}")
    return list(value)


def as_mapping(value: object, what: str = "the value") -> Mapping[str, object]:
    """An object (mapping); null counts as an empty object."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return value
    raise ExpressionError(f"{what} must be an object, not {describe(value)}")


def path_parts(path: object) -> list[str | int]:
    """A dotted path ("a.b.0.c") or a list of keys, as keys; digits become indexes."""
    if isinstance(path, list | tuple):
        return [p if isinstance(p, int) else as_text(p) for p in path]
    if isinstance(path, int) and not isinstance(path, bool):
        return [path]
    text = as_text(path)
    if not text:
        return []
    return [int(p) if p.lstrip("-").isdigit() else p for p in text.split(".")]


_MISSING = object()


def _step(current: object, key: str | int) -> object:
    if isinstance(current, Mapping):
        if key in current:
            return current[key]
        return current.get(str(key), _MISSING)
    if isinstance(current, Sequence) and not isinstance(current, str):
        index = key if isinstance(key, int) else None
        if index is not None and -len(current) <= index < len(current):
            return current[index]
    return _MISSING


def get_path(value: object, path: object, default: object = None) -> object:
    """The value at a dotted path inside objects and lists, else `default`."""
    current = value
    for key in path_parts(path):
        current = _step(current, key)
        if current is _MISSING:
            return default
    return current
