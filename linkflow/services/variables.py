"""Workspace variables: `{key, value}` pairs that expressions read as `vars`."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from linkflow.security.rbac import Permission
from linkflow.services import audit
from linkflow.services._ttl_cache import TTLCache
from linkflow.services.context import Actor, WorkspaceAccess
from linkflow.services.errors import Conflict, FieldProblem, Invalid, NotFound
from linkflow.store import Database, Variable, VariableRepository

__all__ = ["KEY_PATTERN", "Variables"]

KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
"""Keys are identifiers, so `vars.api_base` works in expressions."""
MAX_VALUE_CHARS = 64 * 1024


CACHE_TTL_S = 1.0
"""How stale `vars` may be for an execution: a change made through another process
shows within twice this long (an expired entry is served while it is refreshed); one
made through this process shows at once."""


class Variables:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._cache: TTLCache[uuid.UUID, dict[str, str]] = TTLCache(CACHE_TTL_S)

    @staticmethod
    def _check(key: str, value: str) -> None:
        problems = []
        if not KEY_PATTERN.match(key):
            problems.append(
                FieldProblem("body.key", "letters, digits and _; not starting with a digit")
            )
        if len(value) > MAX_VALUE_CHARS:
            problems.append(FieldProblem("body.value", f"at most {MAX_VALUE_CHARS} characters"))
        if problems:
            raise Invalid("the variable is not acceptable", errors=problems)

    async def list(self, access: WorkspaceAccess) -> list[Variable]:
        access.require(Permission.VARIABLES_READ)
        async with self.database.session() as session:
            rows = await session.scalars(
                select(Variable).where(Variable.workspace_id == access.workspace_id)
                .order_by(Variable.key)
            )  # fmt: skip
            return list(rows.all())

    async def mapping(self, workspace_id: uuid.UUID) -> dict[str, str]:
        """The workspace's variables for an execution (read about once a second)."""

        async def load() -> dict[str, str]:
            async with self.database.session() as session:
                return dict(await VariableRepository(session, workspace_id).as_mapping())

        return await self._cache.get(workspace_id, load)

    async def get(self, access: WorkspaceAccess, variable_id: uuid.UUID) -> Variable:
        access.require(Permission.VARIABLES_READ)
        async with self.database.session() as session:
            return await self._row(session, access, variable_id)

    async def create(self, access: WorkspaceAccess, actor: Actor, key: str, value: str) -> Variable:
        access.require(Permission.VARIABLES_WRITE)
        self._check(key, value)
        async with self.database.transaction() as session:
            repo = VariableRepository(session, access.workspace_id)
            if await repo.get_by_key(key) is not None:
                raise Conflict(f"a variable {key!r} exists already", code="variable_exists")
            row = await repo.add(Variable(key=key, value=value))
            self._cache.forget(access.workspace_id)
            await audit.record(session, actor, "variable.created", "variable", row.id,
                               workspace_id=access.workspace_id, new={"key": key})  # fmt: skip
            return row

    async def update(
        self, access: WorkspaceAccess, actor: Actor, variable_id: uuid.UUID, key: str, value: str
    ) -> Variable:
        access.require(Permission.VARIABLES_WRITE)
        self._check(key, value)
        async with self.database.transaction() as session:
            row = await self._row(session, access, variable_id)
            other = await VariableRepository(session, access.workspace_id).get_by_key(key)
            if other is not None and other.id != row.id:
                raise Conflict(f"a variable {key!r} exists already", code="variable_exists")
            old = {"key": row.key}
            row.key, row.value = key, value
            row.updated_at = datetime.now(UTC)
            self._cache.forget(access.workspace_id)
            await audit.record(session, actor, "variable.updated", "variable", row.id,
                               workspace_id=access.workspace_id, old=old,
                               new={"key": key})  # fmt: skip
            return row

    async def delete(self, access: WorkspaceAccess, actor: Actor, variable_id: uuid.UUID) -> None:
        access.require(Permission.VARIABLES_WRITE)
        async with self.database.transaction() as session:
            row = await self._row(session, access, variable_id)
            await session.delete(row)
            self._cache.forget(access.workspace_id)
            await audit.record(session, actor, "variable.deleted", "variable", row.id,
                               workspace_id=access.workspace_id, old={"key": row.key})  # fmt: skip

    async def _row(
        self, session: object, access: WorkspaceAccess, variable_id: uuid.UUID
    ) -> Variable:
        row = await VariableRepository(session, access.workspace_id).get(variable_id)  # type: ignore[arg-type]
        if row is None:
            raise NotFound(f"there is no variable {variable_id}", code="variable_not_found")
        return row
