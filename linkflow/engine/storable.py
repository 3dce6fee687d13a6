"""What an execution can store, checked where its values are produced.

Every event and row of an execution is written as JSON (orjson: the SQLite
writer's encoding; PostgreSQL's JSONB besides). A value that cannot be written
fails the write, and the write is a batch shared with other executions, of
other tenants; worse, the run that produced it is retried into the same failure
and stays `running`. So a value is checked before it is recorded, and the node
(or the request) that produced it fails with the reason instead:

- integers must fit in 64 bits (orjson's range, -2**63 to 2**64 - 1);
- text must be valid Unicode (no lone surrogate such as ``"\\ud800"``); an input
  (a request's body or payload) must hold no NUL character either, since PostgreSQL
  stores none in text or JSONB. A node's output keeps its NULs: SQLite stores them,
  and on PostgreSQL the writer fails that one execution with the database's reason
  (`services.writer`), so a remote server's data is not refused where it fits;
- object keys must be text;
- nesting is bounded: `MAX_DEPTH` levels for what the engine records (orjson's
  own limit), `MAX_INPUT_DEPTH` for an execution's input, which the engine
  wraps in a few levels of its own.

`check_storable` is the check (it returns the encoding, which callers reuse for
sizes); `scrubbed` makes a storable copy of engine-built data that carries user
text (an error message quoting a bad value), where failing is not an option.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

__all__ = [
    "MAX_DEPTH",
    "MAX_INPUT_DEPTH",
    "UnstorableValue",
    "check_input",
    "check_storable",
    "scrubbed",
]

MAX_DEPTH: Final = 254
"""Levels of nesting orjson encodes; deeper values cannot be stored."""
MAX_INPUT_DEPTH: Final = 128
"""Levels of nesting an execution's input may have (the engine adds its own around it)."""
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1

_REASONS: Final = (
    ("64-bit", "a number is too large to store (integers are limited to 64 bits)"),
    ("surrogates", "a text is not valid Unicode (it holds a lone surrogate)"),
    ("Recursion limit", f"a value is nested more than {MAX_DEPTH} levels deep"),
    ("Dict key must be str", "an object has a key that is not text"),
)


class UnstorableValue(ValueError):
    """A value the history cannot store; `reason` says why, for the workflow's author."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_storable(value: Any) -> bytes:
    """The value's JSON encoding; `UnstorableValue` when it cannot be stored."""
    try:
        return orjson.dumps(value)
    except TypeError as error:
        text = str(error)
        for marker, reason in _REASONS:
            if marker in text:
                raise UnstorableValue(reason) from None
        raise UnstorableValue(f"a value cannot be stored as JSON ({text})") from None


def check_input(value: Any) -> None:
    """`check_storable`, with the tighter nesting bound of an execution's input, and no
    NUL character (which PostgreSQL cannot store)."""
    _check_depth(value, MAX_INPUT_DEPTH)
    if b"\\u0000" in check_storable(value):
        raise UnstorableValue("a text holds a NUL character (\\u0000)")


def _check_depth(value: Any, limit: int) -> None:
    """Refuse `value` nested deeper than `limit` (iteratively: no recursion to exhaust)."""
    level: list[Any] = [value]
    depth = 0
    while level:
        containers = [v for v in level if isinstance(v, dict | list)]
        if not containers:
            return
        depth += 1
        if depth > limit:
            raise UnstorableValue(f"the input is nested more than {limit} levels deep")
        level = [
            child
            for container in containers
            for child in (container.values() if isinstance(container, dict) else container)
        ]


def scrubbed(value: Any, _depth: int = 0) -> Any:
    """A storable copy of `value`: invalid text repaired (U+FFFD), NUL removed, integers
    beyond 64 bits as text, keys as text, nesting cut at `MAX_DEPTH` - 2 levels."""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return value if _INT_MIN <= value <= _INT_MAX else str(value)
    if _depth >= MAX_DEPTH - 2:
        return "…"
    if isinstance(value, dict):
        return {_text(str(k)): scrubbed(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrubbed(v, _depth + 1) for v in value]
    return _text(str(value))


def _text(text: str) -> str:
    repaired = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return repaired.replace("\x00", "")
