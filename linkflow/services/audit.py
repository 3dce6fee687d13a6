"""The audit trail: who changed what, from where, with old and new values.

Every use case that creates, updates or deletes a user, workspace, member,
API key (and later workflows, credentials, schedules, webhooks) calls
`record` inside the transaction that makes the change, so a change and its
audit row commit together or not at all.

Invariants:
- Secrets never reach the trail: any field whose name mentions a password,
  secret, token, hash, key material or code is replaced by ``"[redacted]"``,
  at any depth, before the row is written.
- Values are stored as JSON: ids and times become strings, enums their values.
- Rows are insert-only; `AuditLogs.list` reads them newest first, filtered.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from linkflow.services._paging import Page, page
from linkflow.services.context import Actor
from linkflow.store import AuditLog, Database, JSONObject, JSONValue

__all__ = ["REDACTED", "AuditFilter", "AuditLogs", "record", "redact", "snapshot"]

REDACTED: Final = "[redacted]"
_SENSITIVE: Final = re.compile(
    r"pass(word)?|secret|token|hash|private|credential|recovery|otp|mfa_code|^key$|api_key$|"
    r"authorization|cookie",
    re.IGNORECASE,
)
_MAX_TEXT: Final = 2000  # keeps one audit row small even when a field is huge


def _json(value: object) -> JSONValue:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, enum.Enum):
        return _json(value.value)
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): _json(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json(item) for item in value]
    if isinstance(value, bytes):
        return REDACTED  # raw bytes in a model are ciphertexts or hashes
    return str(value)[:_MAX_TEXT]


def redact(values: Mapping[str, object]) -> JSONObject:
    """`values` as JSON, with every sensitive field (at any depth) replaced by REDACTED."""
    out: JSONObject = {}
    for key, value in values.items():
        if _SENSITIVE.search(key):
            out[key] = REDACTED
        elif isinstance(value, Mapping):
            out[key] = redact(value)
        else:
            out[key] = _json(value)
    return out


def snapshot(row: object, fields: Iterable[str]) -> JSONObject:
    """The named attributes of `row`, redacted, for `old`/`new` values."""
    return redact({name: getattr(row, name) for name in fields})


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: uuid.UUID | str | None,
    *,
    workspace_id: uuid.UUID | None = None,
    old: Mapping[str, object] | None = None,
    new: Mapping[str, object] | None = None,
) -> None:
    """Add one audit row to `session`'s transaction (it commits with the change)."""
    session.add(
        AuditLog(
            workspace_id=workspace_id,
            actor_user_id=actor.user_id,
            actor_api_key_id=actor.api_key_id,
            action=action,
            resource_type=resource_type,
            resource_id=None if resource_id is None else str(resource_id),
            old_values=None if old is None else redact(old),
            new_values=None if new is None else redact(new),
            ip_address=actor.request.ip,
            user_agent=(actor.request.user_agent or None) and actor.request.user_agent[:512],
            request_id=actor.request.request_id,
        )
    )


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What to list: all fields optional; times are inclusive from, exclusive until."""

    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    actor_user_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditLogs:
    """Reads the trail of one workspace (or the instance-level entries)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def list(
        self,
        workspace_id: uuid.UUID | None,
        where: AuditFilter,
        *,
        limit: int,
        cursor: str | None,
    ) -> Page[AuditLog]:
        """Newest first. `workspace_id=None` lists instance-level entries (users...)."""
        statement = select(AuditLog).where(
            AuditLog.workspace_id.is_(None)
            if workspace_id is None
            else AuditLog.workspace_id == workspace_id
        )
        if where.action is not None:
            statement = statement.where(AuditLog.action == where.action)
        if where.resource_type is not None:
            statement = statement.where(AuditLog.resource_type == where.resource_type)
        if where.resource_id is not None:
            statement = statement.where(AuditLog.resource_id == where.resource_id)
        if where.actor_user_id is not None:
            statement = statement.where(AuditLog.actor_user_id == where.actor_user_id)
        if where.since is not None:
            statement = statement.where(AuditLog.created_at >= where.since)
        if where.until is not None:
            statement = statement.where(AuditLog.created_at < where.until)
        async with self.database.session() as session:
            return await page(
                session,
                statement,
                created_at=AuditLog.created_at,
                row_id=AuditLog.id,
                limit=limit,
                cursor=cursor,
            )
