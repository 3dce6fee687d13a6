"""Column types that behave the same on PostgreSQL and SQLite.

Invariants:
- `UTCDateTime` only accepts timezone-aware datetimes and always returns
  aware UTC ones. SQLite has no time zone type, so values are stored there as
  naive UTC text; a naive input is refused rather than guessed at, because a
  guess (local time? UTC?) is how schedules drift by hours.
- `JSONDocument` is JSONB on PostgreSQL and JSON text on SQLite. Python `None`
  is stored as SQL ``NULL``, never as the JSON literal ``null``, so that
  ``IS NULL`` finds "no value". JSON columns do not track in-place mutation:
  assign a new object to persist a change.
- `StringArray` is ``TEXT[]`` on PostgreSQL (so it can carry a GIN index) and
  a JSON array on SQLite.
- `StrEnumType` stores an `enum.StrEnum` member's value in a ``VARCHAR``; the
  matching ``CHECK`` constraint is built with `enum_check`.

The DDL each type emits is what migrations under `migrations/versions/` spell
with plain SQLAlchemy types, so the DDL of an existing type must never change:
a different storage format is a new type and a new migration.
"""

from __future__ import annotations

import enum
import random
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from sqlalchemy import JSON, BigInteger, DateTime, Integer, String, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = [
    "BigIntPK",
    "JSONDocument",
    "JSONObject",
    "JSONValue",
    "StrEnumType",
    "StringArray",
    "UTCDateTime",
    "enum_check_sql",
    "new_id",
    "utcnow",
]

if TYPE_CHECKING:
    JSONValue: TypeAlias = (
        str | int | float | bool | list["JSONValue"] | dict[str, "JSONValue"] | None
    )
else:
    # SQLAlchemy evaluates `Mapped[...]` annotations when mapping, and cannot
    # resolve a recursive alias; at run time the alias only has to be a type.
    JSONValue = object
JSONObject: TypeAlias = dict[str, JSONValue]

E = TypeVar("E", bound=enum.StrEnum)

# `BIGINT` on PostgreSQL; `INTEGER` on SQLite because only an `INTEGER PRIMARY
# KEY` aliases the rowid there and so autoincrements (it is 64-bit anyway).
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC: the only clock the store uses."""
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    """A random, time-ordered UUID (version 7, RFC 9562).

    The leading 48 bits are the Unix time in milliseconds, so new rows land at
    the right edge of primary-key B-trees (cheap inserts on PostgreSQL) and ids
    sort roughly by creation time; the remaining 74 bits are random.
    """
    unix_ms = time.time_ns() // 1_000_000
    # Ids are names, not secrets (every read checks the workspace): the process's
    # Mersenne Twister, seeded from the OS and reseeded in forked children, spares a
    # getrandom() call per id, which costs ~20 µs on some virtual machines.
    value = (unix_ms & 0xFFFF_FFFF_FFFF) << 80 | random.getrandbits(80)
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return uuid.UUID(int=value)


class UTCDateTime(TypeDecorator[datetime]):
    """A ``TIMESTAMP WITH TIME ZONE`` that is aware UTC on the Python side everywhere."""

    impl = DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            msg = f"naive datetime {value.isoformat()} refused: pass a timezone-aware datetime"
            raise ValueError(msg)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class JSONDocument(TypeDecorator[JSONValue]):
    """JSONB on PostgreSQL, JSON on SQLite; `None` is SQL ``NULL``."""

    impl = JSON
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(none_as_null=True)

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB(none_as_null=True))
        return dialect.type_descriptor(JSON(none_as_null=True))


class StringArray(TypeDecorator[list[str]]):
    """``TEXT[]`` on PostgreSQL, a JSON array of strings on SQLite."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(Text()))
        return dialect.type_descriptor(JSON())

    def process_bind_param(self, value: list[str] | None, dialect: Dialect) -> list[str] | None:
        if value is None:
            return None
        if isinstance(value, str) or not all(isinstance(item, str) for item in value):
            msg = "a string array column takes a list of strings"
            raise TypeError(msg)
        return list(value)


class StrEnumType(TypeDecorator[E]):
    """A ``VARCHAR(length)`` holding the value of a member of `enum_cls`.

    Binding validates (an unknown value raises `ValueError` before reaching the
    database); results come back as enum members.
    """

    impl = String
    cache_ok = True

    def __init__(self, enum_cls: type[E], length: int = 16) -> None:
        longest = max(len(member.value) for member in enum_cls)
        if longest > length:
            msg = f"{enum_cls.__name__} has a value of {longest} characters, over {length}"
            raise ValueError(msg)
        super().__init__(length)
        self.enum_cls = enum_cls
        self.length = length

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return self.enum_cls(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        if value is None:
            return None
        return self.enum_cls(value)


def enum_check_sql(column: str, enum_cls: type[enum.StrEnum]) -> str:
    """The SQL of a ``CHECK`` that keeps `column` within `enum_cls`'s values."""
    values = ", ".join(f"'{member.value}'" for member in enum_cls)
    return f"{column} IN ({values})"
