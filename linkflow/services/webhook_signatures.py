"""Signed webhook calls: the timestamped HMAC scheme, its time check and replay cache.

A webhook with a secret wants two headers:

    X-LinkFlow-Timestamp: <unix seconds>
    X-LinkFlow-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">

and refuses, with 401 and a stable code: a missing or wrong signature or a
timestamp that is not unix seconds (`invalid_signature`), a right signature
whose timestamp is more than `TOLERANCE` away from now (`stale_signature`),
and a right, fresh signature already accepted once (`replayed_signature`).

Invariants:
- A signature is accepted once, across every process on the database: it is
  inserted into `webhook_signatures` (primary key workflow, node, signature)
  before the call starts its execution, and only the insert that wins passes.
  A sender retrying a call signs it again with a new timestamp.
- An entry is kept until its timestamp could no longer pass the time check
  (plus `CLOCK_MARGIN` for processes whose clocks disagree); expired entries
  are deleted at most once per `PRUNE_INTERVAL` per process, in the insert's
  transaction.
- The old body-only scheme (`sha256=<HMAC of the raw body>`, no timestamp,
  replayable) is accepted only by a webhook node with `legacy_signature: true`,
  and only when the call carries no timestamp.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from linkflow.services.errors import Unauthorized
from linkflow.store import Database, WebhookSignature

__all__ = [
    "CLOCK_MARGIN",
    "PRUNE_INTERVAL",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "TOLERANCE",
    "SignatureCheck",
    "legacy_signature",
    "signature",
]

SIGNATURE_HEADER: Final = "x-linkflow-signature"
TIMESTAMP_HEADER: Final = "x-linkflow-timestamp"
TOLERANCE: Final = timedelta(minutes=5)
"""How far a call's timestamp may be from now, either way: long enough for a sender's
queue and clock skew, short enough that a captured call is soon worthless."""
CLOCK_MARGIN: Final = timedelta(minutes=1)
"""Kept past the tolerance, for a process whose clock runs behind the one that pruned."""
PRUNE_INTERVAL: Final = timedelta(minutes=1)
_MAX_TIMESTAMP_DIGITS: Final = 12
_PREFIX: Final = "sha256="


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The `X-LinkFlow-Signature` value of a call sent at `timestamp` (unix seconds)."""
    message = str(timestamp).encode() + b"." + body
    return _PREFIX + hmac.new(secret, message, hashlib.sha256).hexdigest()


def legacy_signature(secret: bytes, body: bytes) -> str:
    """The old, replayable value: the HMAC of the raw body alone."""
    return _PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


class SignatureCheck:
    """Verifies signed calls; holds the per-process pruning clock, nothing else."""

    def __init__(self, database: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.database = database
        self.clock = clock
        self._next_prune = 0.0

    async def verify(
        self, secret: bytes, *, legacy: bool, workflow_id: uuid.UUID, node_id: str,
        headers: Mapping[str, str], body: bytes,
    ) -> None:  # fmt: skip
        """Pass or raise `Unauthorized` (see the module's codes); a passing call is
        remembered, so the same signature never passes again."""
        given = headers.get(SIGNATURE_HEADER, "")
        stamp_text = headers.get(TIMESTAMP_HEADER)
        if stamp_text is None:
            if legacy and _same(given, legacy_signature(secret, body)):
                return
            raise Unauthorized(
                "the X-LinkFlow-Timestamp and X-LinkFlow-Signature headers are required: "
                "sha256=<hex HMAC-SHA256 of '<timestamp>.<raw body>'>",
                code="invalid_signature",
            )
        stamp = _unix_seconds(stamp_text)
        if not _same(given, signature(secret, stamp, body)):
            raise Unauthorized("the X-LinkFlow-Signature header is missing or wrong",
                               code="invalid_signature")  # fmt: skip
        now = self.clock()
        if abs(now - stamp) > TOLERANCE.total_seconds():
            raise Unauthorized(
                f"the X-LinkFlow-Timestamp is more than {int(TOLERANCE.total_seconds())} s "
                "from the server's time: sign the call again", code="stale_signature",
            )  # fmt: skip
        expires = datetime.fromtimestamp(stamp, UTC) + TOLERANCE + CLOCK_MARGIN
        if not await self._remember(workflow_id, node_id, given[len(_PREFIX) :], expires, now):
            raise Unauthorized("this signed call was accepted already: sign each call anew",
                               code="replayed_signature")  # fmt: skip

    async def _remember(
        self, workflow_id: uuid.UUID, node_id: str, digest: str, expires: datetime, now: float
    ) -> bool:
        """Insert the signature; whether this call was the first to."""
        insert = postgresql_insert if self.database.dialect == "postgresql" else sqlite_insert
        statement = (
            insert(WebhookSignature)
            .values(
                workflow_id=workflow_id, node_id=node_id, signature=digest, expires_at=expires
            )
            .on_conflict_do_nothing()
        )
        async with self.database.transaction() as session:
            if now >= self._next_prune:
                self._next_prune = now + PRUNE_INTERVAL.total_seconds()
                cutoff = datetime.fromtimestamp(now, UTC)
                await session.execute(
                    delete(WebhookSignature).where(WebhookSignature.expires_at < cutoff)
                )
            result = await session.execute(statement)
        return bool(getattr(result, "rowcount", 0))


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("latin-1", "replace"), expected.encode())


def _unix_seconds(text: str) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= _MAX_TIMESTAMP_DIGITS):
        raise Unauthorized("the X-LinkFlow-Timestamp header must be unix seconds",
                           code="invalid_signature")  # fmt: skip
    return int(text)
