"""Users: global rows (not workspace-scoped), looked up by id or e-mail."""

from __future__ import annotations

import uuid
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from linkflow.store.errors import StoreConflict
from linkflow.store.models import User

__all__ = ["UserRepository"]


class UserRepository:
    """Users are global (not workspace-scoped); deleted users are invisible here."""

    def __init__(self, session: AsyncSession) -> None:
        self.session: Final = session

    async def get(self, user_id: uuid.UUID) -> User | None:
        """The live user with `user_id`."""
        statement = select(User).where(User.id == user_id, User.deleted_at.is_(None))
        return (await self.session.scalars(statement)).one_or_none()

    async def get_by_email(self, email: str) -> User | None:
        """The live user with `email` (compared case-insensitively)."""
        statement = select(User).where(
            User.email == email.strip().lower(), User.deleted_at.is_(None)
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def add(self, user: User) -> User:
        """Insert `user` and flush (a taken e-mail raises `StoreConflict`)."""
        if await self.get_by_email(user.email) is not None:
            raise StoreConflict(f"a user with e-mail {user.email} already exists")
        self.session.add(user)
        await self.session.flush()
        return user
