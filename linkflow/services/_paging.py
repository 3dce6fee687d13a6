"""Cursor pagination over any table with `created_at` and `id`, newest first.

The same scheme as the store's workspace repositories (an opaque cursor over
``(created_at, id)``), for the global tables services list directly (users,
audit logs, memberships across workspaces). Lists ordered by a unique number
within their parent (an execution's events by `seq`, a workflow's versions by
`version`) page by that number instead: `ordinal_page`, with the same opaque
cursors and `invalid_cursor` for one the API did not make.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from sqlalchemy import Select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from linkflow.services.errors import FieldProblem, Invalid
from linkflow.store import Cursor, InvalidCursor

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "Page",
    "check_limit",
    "decode_cursor",
    "decode_position",
    "encode_position",
    "ordinal_page",
    "page",
]

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 200  # one page is one index range scan; larger lists are paged

T = TypeVar("T")
_POSITION_PREFIX: Final = "n|"


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list; `next_cursor` is None on the last page."""

    items: list[T]
    next_cursor: str | None


def decode_cursor(cursor: str) -> Cursor:
    try:
        return Cursor.decode(cursor)
    except InvalidCursor:
        raise Invalid(
            "the cursor is not one this API returned",
            code="invalid_cursor",
            errors=[FieldProblem("query.cursor", "invalid pagination cursor")],
        ) from None


def encode_position(value: int) -> str:
    """An opaque, URL-safe cursor for the position `value` of an ordinal list."""
    raw = f"{_POSITION_PREFIX}{value}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _invalid_cursor() -> Invalid:
    return Invalid(
        "the cursor is not one this API returned",
        code="invalid_cursor",
        errors=[FieldProblem("query.cursor", "invalid pagination cursor")],
    )


def decode_position(cursor: str) -> int:
    """The position `cursor` encodes; `Invalid` (`invalid_cursor`) if `encode_position`
    did not make it."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _invalid_cursor() from None
    digits = raw.removeprefix(_POSITION_PREFIX)
    if digits == raw or not digits.isascii() or not digits.isdigit() or len(digits) > 19:
        raise _invalid_cursor()
    return int(digits)


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise Invalid(
            f"limit must be between 1 and {MAX_LIMIT}",
            errors=[FieldProblem("query.limit", f"must be between 1 and {MAX_LIMIT}")],
        )
    return limit


async def page(
    session: AsyncSession,
    statement: Select[Any],
    *,
    created_at: InstrumentedAttribute[Any],
    row_id: InstrumentedAttribute[Any],
    limit: int,
    cursor: str | None,
) -> Page[Any]:
    """One page of `statement`'s rows, newest first, after `cursor`."""
    check_limit(limit)
    if cursor is not None:
        position = decode_cursor(cursor)
        statement = statement.where(tuple_(created_at, row_id) < (position.created_at, position.id))
    statement = statement.order_by(created_at.desc(), row_id.desc()).limit(limit + 1)
    rows = list((await session.scalars(statement)).all())
    if len(rows) <= limit:
        return Page(items=rows, next_cursor=None)
    last = rows[limit - 1]
    return Page(items=rows[:limit], next_cursor=Cursor(last.created_at, last.id).encode())


async def ordinal_page(
    session: AsyncSession,
    statement: Select[Any],
    *,
    position: InstrumentedAttribute[Any],
    limit: int,
    cursor: str | None,
    descending: bool,
) -> Page[Any]:
    """One page of `statement`'s rows ordered by their unique integer `position`, after
    `cursor` (ascending for a history read in order, descending for newest first)."""
    check_limit(limit)
    if cursor is not None:
        after = decode_position(cursor)
        statement = statement.where(position < after if descending else position > after)
    order = position.desc() if descending else position.asc()
    rows = list((await session.scalars(statement.order_by(order).limit(limit + 1))).all())
    if len(rows) <= limit:
        return Page(items=rows, next_cursor=None)
    last = getattr(rows[limit - 1], position.key)
    return Page(items=rows[:limit], next_cursor=encode_position(int(last)))
