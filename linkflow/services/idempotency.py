"""`Idempotency-Key` on POST: the first response is stored and replayed for 24 hours.

Invariants:
- A key is scoped by the authenticated principal (a user or an API key), so
  two callers cannot collide or read each other's responses.
- The request is fingerprinted (method, path, body); the same key with a
  different fingerprint is refused (422 `idempotency_key_reused`).
- The first request claims the key with an insert that cannot succeed twice
  (unique `(scope, key)`); a second request arriving while the first is in
  flight gets 409 `idempotency_request_in_progress`. A claim left behind by a
  crashed process is taken over after `STALE_CLAIM`.
- Only responses below 500 are stored: a server error leaves the key free,
  so the client's retry does the work again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from linkflow.services.errors import Conflict, Invalid
from linkflow.store import Database, IdempotencyKey, JSONObject, new_id, utcnow

__all__ = ["REPLAY_WINDOW", "Idempotency", "StoredResponse", "fingerprint"]

REPLAY_WINDOW: Final = timedelta(hours=24)
# Longer than any request may take (the longest, a waited execution, is capped at 30 s).
STALE_CLAIM: Final = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


class Idempotency:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def begin(self, scope: str, key: str, request_hash: str) -> StoredResponse | None:
        """The stored response to replay, or None when this request now owns the key."""
        now = utcnow()
        async with self.database.transaction() as session:
            where = (IdempotencyKey.scope == scope, IdempotencyKey.key == key)
            row = await session.scalar(select(IdempotencyKey).where(*where).with_for_update())
            if row is not None and (
                row.expires_at <= now
                or (row.response_status is None and row.created_at <= now - STALE_CLAIM)
            ):
                await session.execute(delete(IdempotencyKey).where(*where))
                row = None
            if row is None:
                dialect = session.get_bind().dialect.name
                insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
                claimed = await session.execute(
                    insert(IdempotencyKey)
                    .values(
                        scope=scope,
                        key=key,
                        request_hash=request_hash,
                        created_at=now,
                        expires_at=now + REPLAY_WINDOW,
                        id=new_id(),
                    )
                    .on_conflict_do_nothing(index_elements=["scope", "key"])
                    .returning(IdempotencyKey.id)
                )
                if claimed.first() is not None:
                    return None
                raise _in_progress()
            if row.request_hash != request_hash:
                raise Invalid(
                    "this Idempotency-Key was used with a different request",
                    code="idempotency_key_reused",
                )
            if row.response_status is None:
                raise _in_progress()
            headers = row.response_headers or {}
            pairs = [(str(name), str(value)) for name, value in headers.items()]
            return StoredResponse(row.response_status, pairs, row.response_body or b"")

    async def complete(
        self, scope: str, key: str, status: int, headers: JSONObject, body: bytes
    ) -> None:
        async with self.database.transaction() as session:
            if status >= 500:
                await session.execute(
                    delete(IdempotencyKey).where(
                        IdempotencyKey.scope == scope, IdempotencyKey.key == key
                    )
                )
                return
            await session.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
                .values(response_status=status, response_headers=headers, response_body=body)
            )

    async def abandon(self, scope: str, key: str) -> None:
        """Free the key after the request failed without a response."""
        await self.complete(scope, key, 500, {}, b"")


def _in_progress() -> Conflict:
    return Conflict(
        "a request with this Idempotency-Key is still being handled",
        code="idempotency_request_in_progress",
    )
