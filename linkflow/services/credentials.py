"""Credentials: typed secrets a workspace's nodes authenticate with.

Invariants:
- Secrets are write-only. Every read returns `CredentialView`, whose `data`
  is masked by the type's schema (`credential_types.masked`); audit rows get
  the masked data (and then `audit.redact`); messages from checks have every
  secret value scrubbed; nothing here logs `data`.
- `data` is stored whole, as JSON sealed by the secret box, bound to the row's
  id (`_credential_codec`); `key_id` names the sealing key.
- Names are unique among a workspace's live credentials (409
  `credential_exists`); another workspace's credential is simply not found.
- Reading needs `credentials:read` (members and up); writing and testing need
  `credentials:write` (admins and up).
- An update merges: fields it omits are kept, and so is a secret sent back
  as the mask. The type of a credential never changes.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import httpx
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from linkflow.nodes.registry import default_registry
from linkflow.security.rbac import Permission
from linkflow.security.secretbox import SecretBox
from linkflow.security.ssrf import AddressPolicy
from linkflow.services import audit
from linkflow.services._credential_checks import CHECK_TIMEOUT_S, CheckResult, CredentialChecks
from linkflow.services._credential_codec import open_data, seal_data
from linkflow.services._credential_oauth2 import TokenRefresher
from linkflow.services._paging import Page, check_limit, decode_cursor
from linkflow.services.context import Actor, WorkspaceAccess
from linkflow.services.credential_types import (
    MASK,
    CredentialType,
    CredentialTypes,
    credential_type,
    masked,
    merged,
    secret_values,
    stored_type,
    validated,
)
from linkflow.services.errors import Conflict, FieldProblem, Invalid, NotFound
from linkflow.store import Credential, CredentialRepository, Database
from linkflow.store.types import new_id

__all__ = ["CheckResult", "CredentialView", "Credentials"]

MAX_NAME_CHARS: Final = 255


@dataclass(frozen=True, slots=True)
class CredentialView:
    """A credential as the API shows it: `data` masked."""

    id: uuid.UUID
    name: str
    type: str
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None


def _view(kind: CredentialType, row: Credential, data: Mapping[str, Any]) -> CredentialView:
    return CredentialView(
        id=row.id, name=row.name, type=row.type, data=masked(kind, data),
        created_at=row.created_at, updated_at=row.updated_at, last_used_at=row.last_used_at,
    )  # fmt: skip


def _checked_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME_CHARS or not name.isprintable():
        raise Invalid(
            "the credential's name is not acceptable",
            errors=[FieldProblem("body.name", f"1 to {MAX_NAME_CHARS} printable characters")],
        )
    return name


def _refuse_masks(kind: CredentialType, data: Mapping[str, Any]) -> None:
    """On create there is no stored secret the mask could stand for."""
    problems = [
        FieldProblem(f"body.data.{name}", "send the secret itself, not the mask")
        for name in kind.secret_fields
        if data.get(name) == MASK
    ]
    if problems:
        raise Invalid("a secret field holds the mask", errors=problems)


def _not_found(credential_id: uuid.UUID) -> NotFound:
    return NotFound(f"there is no credential {credential_id}", code="credential_not_found")


def _name_taken(name: str) -> Conflict:
    return Conflict(f"a credential named {name!r} exists already", code="credential_exists")


def _scrubbed(message: str, secrets: builtins.list[str]) -> str:
    for secret in secrets:
        message = message.replace(secret, MASK)
    return message


class Credentials:
    """The use cases of `/api/v1/credentials`."""

    def __init__(
        self,
        database: Database,
        box: SecretBox,
        http: httpx.AsyncClient,
        policy: AddressPolicy,
        *,
        refresher: TokenRefresher | None = None,
        check_timeout_s: float = CHECK_TIMEOUT_S,
        types: CredentialTypes | None = None,
    ) -> None:
        """`http` and `policy` are for tests that reach out: pass the SSRF-guarded client
        and its policy, so credential tests reach what nodes may reach and nothing more.
        `types` are the credential types offered (default: the built-in ones; the wiring
        passes its node registry's, plugins' included)."""
        self.database = database
        self.known = (
            types if types is not None else default_registry(plugins=False).credential_types
        )
        self.box = box
        self.refresher = refresher or TokenRefresher(database, box, http)
        self.checks = CredentialChecks(http, policy, self.refresher, timeout_s=check_timeout_s)

    def types(self, access: WorkspaceAccess) -> builtins.list[CredentialType]:
        access.require(Permission.CREDENTIALS_READ)
        return builtins.list(self.known.values())

    async def list(
        self, access: WorkspaceAccess, *, limit: int, cursor: str | None
    ) -> Page[CredentialView]:
        """Newest first."""
        access.require(Permission.CREDENTIALS_READ)
        check_limit(limit)
        if cursor is not None:
            decode_cursor(cursor)
        async with self.database.session() as session:
            found = await CredentialRepository(session, access.workspace_id).list(
                limit=limit, cursor=cursor
            )
        views = [self._view(row, open_data(self.box, row)) for row in found.items]
        return Page(items=views, next_cursor=found.next_cursor)

    async def get(self, access: WorkspaceAccess, credential_id: uuid.UUID) -> CredentialView:
        access.require(Permission.CREDENTIALS_READ)
        async with self.database.session() as session:
            row = await self._row(session, access, credential_id)
        return self._view(row, open_data(self.box, row))

    async def create(
        self,
        access: WorkspaceAccess,
        actor: Actor,
        *,
        name: str,
        type: str,
        data: Mapping[str, Any],
    ) -> CredentialView:
        access.require(Permission.CREDENTIALS_WRITE)
        name = _checked_name(name)
        kind = credential_type(self.known, type)
        _refuse_masks(kind, data)
        clean = validated(kind, data)
        credential_id = new_id()
        async with self.database.transaction() as session:
            repo = CredentialRepository(session, access.workspace_id)
            if await repo.get_by_name(name) is not None:
                raise _name_taken(name)
            row = Credential(
                id=credential_id, name=name, type=kind.name, created_by_id=actor.user_id,
                data_encrypted=seal_data(self.box, credential_id, clean),
                key_id=self.box.current_key_id,
            )  # fmt: skip
            try:
                await repo.add(row)
            except IntegrityError:  # a concurrent create took the name
                raise _name_taken(name) from None
            view = _view(kind, row, clean)
            new = {"name": name, "type": kind.name, "data": view.data}
            await audit.record(session, actor, "credential.created", "credential", row.id,
                               workspace_id=access.workspace_id, new=new)  # fmt: skip
        return view

    async def update(
        self,
        access: WorkspaceAccess,
        actor: Actor,
        credential_id: uuid.UUID,
        *,
        name: str | None = None,
        type: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> CredentialView:
        """Rename and/or merge `data` into the stored fields (see the module docstring)."""
        access.require(Permission.CREDENTIALS_WRITE)
        new_name = None if name is None else _checked_name(name)
        async with self.database.transaction() as session:
            row = await self._row(session, access, credential_id, lock=True)
            if type is not None and type != row.type:
                problem = FieldProblem("body.type", f"must be {row.type}")
                raise Invalid("a credential's type cannot change; create a new one",
                              errors=[problem])  # fmt: skip
            kind = stored_type(self.known, row.type)
            stored = open_data(self.box, row)
            fresh = stored if data is None else validated(kind, merged(kind, stored, data))
            changed = sorted(k for k in {*stored, *fresh} if stored.get(k) != fresh.get(k))
            old = {"name": row.name, "data": masked(kind, stored)}
            if new_name is not None and new_name != row.name:
                other = await CredentialRepository(session, access.workspace_id).get_by_name(
                    new_name
                )
                if other is not None:
                    raise _name_taken(new_name)
                row.name = new_name
            if changed:
                row.data_encrypted = seal_data(self.box, row.id, fresh)
                row.key_id = self.box.current_key_id
            row.updated_at = datetime.now(UTC)
            try:
                await session.flush()
            except IntegrityError:
                raise _name_taken(row.name) from None
            view = _view(kind, row, fresh)
            await audit.record(session, actor, "credential.updated", "credential", row.id,
                               workspace_id=access.workspace_id, old=old,
                               new={"name": row.name, "data": view.data,
                                    "changed_fields": changed})  # fmt: skip
        return view

    async def delete(self, access: WorkspaceAccess, actor: Actor, credential_id: uuid.UUID) -> None:
        """Soft-delete: workflows that name it fail to find it; its name is free again."""
        access.require(Permission.CREDENTIALS_WRITE)
        async with self.database.transaction() as session:
            row = await self._row(session, access, credential_id, lock=True)
            row.deleted_at = datetime.now(UTC)
            await audit.record(session, actor, "credential.deleted", "credential", row.id,
                               workspace_id=access.workspace_id,
                               old={"name": row.name, "type": row.type})  # fmt: skip

    async def test(self, access: WorkspaceAccess, credential_id: uuid.UUID) -> CheckResult:
        """Run the type's check; a failing check is a result with `ok=False`, not an error."""
        access.require(Permission.CREDENTIALS_WRITE)
        async with self.database.session() as session:
            row = await self._row(session, access, credential_id)
        kind = stored_type(self.known, row.type)
        data = open_data(self.box, row)
        result = await self.checks.run(row, kind, data)
        return CheckResult(result.ok, _scrubbed(result.message, secret_values(kind, data)))

    def _view(self, row: Credential, data: Mapping[str, Any]) -> CredentialView:
        return _view(stored_type(self.known, row.type), row, data)

    @staticmethod
    async def _row(
        session: AsyncSession,
        access: WorkspaceAccess,
        credential_id: uuid.UUID,
        *,
        lock: bool = False,
    ) -> Credential:
        statement = select(Credential).where(
            Credential.id == credential_id,
            Credential.workspace_id == access.workspace_id,
            Credential.deleted_at.is_(None),
        )
        if lock:
            statement = statement.with_for_update()
        row = (await session.scalars(statement)).one_or_none()
        if row is None:
            raise _not_found(credential_id)
        return row
