"""The workspace-scoped repository base, its cursor and its page.

Every statement a `WorkspaceRepository` issues is built on `_select` /
`_visible`, which carry the workspace filter and hide soft-deleted rows.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, delete, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from linkflow.store.errors import InvalidCursor
from linkflow.store.models import SoftDeletable, WorkspaceScoped
from linkflow.store.types import utcnow

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "Cursor", "Page", "WorkspaceRepository"]

# Bounds the work (and memory) of one list request; clients page for more.
MAX_PAGE_SIZE: Final = 500
DEFAULT_PAGE_SIZE: Final = 50

M = TypeVar("M", bound=WorkspaceScoped)


@dataclass(frozen=True)
class Cursor:
    """A position in a newest-first list: the last row of the previous page."""

    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        """An opaque, URL-safe token for API responses."""
        raw = f"{self.created_at.isoformat()}|{self.id.hex}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """The cursor `token` encodes; `InvalidCursor` if it was not made by `encode`."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            stamp, _, hex_id = raw.partition("|")
            created_at = datetime.fromisoformat(stamp)
            row_id = uuid.UUID(hex=hex_id)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidCursor(f"invalid pagination cursor {token[:64]!r}") from None
        if created_at.tzinfo is None:
            raise InvalidCursor(f"invalid pagination cursor {token[:64]!r}")
        return cls(created_at=created_at, id=row_id)


@dataclass(frozen=True)
class Page(Generic[M]):
    """One page of a list; `next_cursor` is None on the last page."""

    items: list[M]
    next_cursor: str | None


class WorkspaceRepository(Generic[M]):
    """Reads and writes rows of `model` that belong to one workspace.

    Subclasses set `model` and add the queries their resource needs, built on
    `_select` so that the workspace filter cannot be forgotten.
    """

    model: type[M]

    def __init__(self, session: AsyncSession, workspace_id: uuid.UUID) -> None:
        self.session: Final = session
        self.workspace_id: Final = workspace_id

    def _visible(self) -> builtins.list[ColumnElement[bool]]:
        conditions = [self.model.workspace_id == self.workspace_id]
        if issubclass(self.model, SoftDeletable):
            conditions.append(self.model.deleted_at.is_(None))
        return conditions

    def _select(self) -> Select[M]:
        """``SELECT`` of this workspace's visible rows; the base of every read."""
        return select(self.model).where(*self._visible())

    async def get(self, row_id: uuid.UUID) -> M | None:
        """The row with `row_id`, or None if absent, deleted or in another workspace."""
        result = await self.session.scalars(self._select().where(self.model.id == row_id))
        return result.one_or_none()

    async def list(
        self, *, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> Page[M]:
        """Newest first, `limit` rows after `cursor` (a `Page.next_cursor`)."""
        return await self._page(self._select(), limit=limit, cursor=cursor)

    async def count(self) -> int:
        """How many visible rows the workspace has (plan limits count workflows...)."""
        statement = select(func.count()).select_from(self.model).where(*self._visible())
        return (await self.session.execute(statement)).scalar_one()

    async def add(self, row: M) -> M:
        """Insert `row` into this workspace (its `workspace_id` is set here) and flush."""
        if row.workspace_id is not None and row.workspace_id != self.workspace_id:
            msg = (
                f"{self.model.__name__} belongs to workspace {row.workspace_id}, "
                f"not {self.workspace_id}"
            )
            raise ValueError(msg)
        row.workspace_id = self.workspace_id
        self.session.add(row)
        await self.session.flush()
        return row

    async def delete(self, row_id: uuid.UUID) -> bool:
        """Delete (soft-delete where the model supports it); False if nothing matched."""
        where = [self.model.id == row_id, *self._visible()]
        if issubclass(self.model, SoftDeletable):
            statement = update(self.model).where(*where).values(deleted_at=utcnow())
        else:
            statement = delete(self.model).where(*where)
        matched = await self.session.execute(statement.returning(self.model.id))
        return matched.first() is not None

    async def _page(self, statement: Select[M], *, limit: int, cursor: str | None) -> Page[M]:
        if not 1 <= limit <= MAX_PAGE_SIZE:
            msg = f"limit must be between 1 and {MAX_PAGE_SIZE}, not {limit}"
            raise ValueError(msg)
        if cursor is not None:
            position = Cursor.decode(cursor)
            statement = statement.where(
                tuple_(self.model.created_at, self.model.id) < (position.created_at, position.id)
            )
        statement = statement.order_by(self.model.created_at.desc(), self.model.id.desc())
        rows = builtins.list((await self.session.scalars(statement.limit(limit + 1))).all())
        if len(rows) <= limit:
            return Page(items=rows, next_cursor=None)
        last = rows[limit - 1]
        return Page(items=rows[:limit], next_cursor=Cursor(last.created_at, last.id).encode())
