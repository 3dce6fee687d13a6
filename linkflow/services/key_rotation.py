"""`linkflow rotate-keys`: re-encrypt every secret sealed by the secret box under a new key.

What is sealed, and bound to what (associated data):
- credentials' `data_encrypted`: ``credential:<id>`` (`key_id` column kept in step);
- webhooks' `secret_encrypted`: nothing;
- users' `mfa_secret_encrypted`: ``user:<id>:mfa``;
- OAuth connections' access and refresh tokens: nothing;
- outgoing webhook subscriptions' `secret_encrypted`: ``webhook_subscription:<id>``.

Invariants:
- No downtime: while this runs, every process holds a box that opens both
  keys and seals with the new one (the old key in
  `LINKFLOW_ENCRYPTION_KEYS_PREVIOUS`, see docs/operations.md, Rotating the
  encryption key), so a row is readable before, during and after its rewrite.
- Each row is rewritten in its own short transaction that locks it and
  reads it again, so a concurrent edit is neither lost nor overwritten with
  stale data. Rows are visited in batches by id, never all at once.
- A value already sealed with the new box's current key is left alone, so a
  second run (or one resumed after a crash) rewrites only what is left.
- Only what opens is re-sealed; a value that opens with neither box is left
  as it is and logged by id (never by content), and not counted.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import select, update
from sqlalchemy.orm import InstrumentedAttribute

from linkflow.observability.logging import get_logger
from linkflow.security.secretbox import SecretBox, SecretBoxError
from linkflow.services._credential_codec import associated_data
from linkflow.services.webhook_subscriptions import secret_aad
from linkflow.store import Credential, Database, OAuthConnection, User, Webhook, WebhookSubscription

__all__ = ["BATCH_SIZE", "rotate"]

log = get_logger(__name__)

BATCH_SIZE: Final = 100
"""Ids read per query; each row is still written in a transaction of its own."""


@dataclass(frozen=True, slots=True)
class _Sealed:
    """One sealed column of one table and how its associated data is made."""

    model: Any
    column: InstrumentedAttribute[Any]
    aad: Callable[[Any], bytes]


def _no_aad(_row: Any) -> bytes:
    return b""


_SEALED: Final = (
    _Sealed(Credential, Credential.data_encrypted, lambda row: associated_data(row.id)),
    _Sealed(Webhook, Webhook.secret_encrypted, _no_aad),
    _Sealed(User, User.mfa_secret_encrypted, lambda row: f"user:{row.id}:mfa".encode()),
    _Sealed(OAuthConnection, OAuthConnection.access_token_encrypted, _no_aad),
    _Sealed(OAuthConnection, OAuthConnection.refresh_token_encrypted, _no_aad),
    _Sealed(
        WebhookSubscription, WebhookSubscription.secret_encrypted, lambda row: secret_aad(row.id)
    ),
)


def sealed_with(ciphertext: bytes) -> str | None:
    """The key id in a secret-box ciphertext's header (see `linkflow.security.secretbox`)."""
    if len(ciphertext) < 2:
        return None
    return ciphertext[2 : 2 + ciphertext[1]].decode("ascii", errors="replace")


def _resealed(
    ciphertext: bytes, aad: bytes, old_box: SecretBox, new_box: SecretBox
) -> bytes | None:
    """`ciphertext` sealed under the new key, or None when it is current or cannot be opened."""
    if sealed_with(ciphertext) == new_box.current_key_id:
        return None
    for box in (old_box, new_box):
        try:
            plain = box.open(ciphertext, aad)
        except SecretBoxError:
            continue
        return new_box.seal(plain, aad)
    raise SecretBoxError("opens with neither key")


async def _ids(
    database: Database, sealed: _Sealed, after: uuid.UUID | None, current_key_id: str
) -> Sequence[Any]:
    statement = select(sealed.model.id).where(sealed.column.is_not(None))
    if sealed.model is Credential:  # `key_id` is indexed for this
        statement = statement.where(Credential.key_id != current_key_id)
    if after is not None:
        statement = statement.where(sealed.model.id > after)
    async with database.session() as session:
        return (await session.scalars(statement.order_by(sealed.model.id).limit(BATCH_SIZE))).all()


async def _rotate_row(
    database: Database, sealed: _Sealed, row_id: Any, old_box: SecretBox, new_box: SecretBox
) -> int:
    model, name = sealed.model, sealed.column.key
    async with database.transaction() as session:
        statement = select(model).where(model.id == row_id).with_for_update()
        row = (await session.scalars(statement)).one_or_none()
        ciphertext = None if row is None else getattr(row, name)
        if ciphertext is None:
            return 0
        try:
            fresh = _resealed(ciphertext, sealed.aad(row), old_box, new_box)
        except SecretBoxError:
            log.warning("rotate_keys.cannot_open", table=model.__tablename__, column=name,
                        row_id=str(row_id), key_id=sealed_with(ciphertext))  # fmt: skip
            return 0
        if fresh is None:
            return 0
        values: dict[str, Any] = {name: fresh, "updated_at": model.updated_at}
        if model is Credential:
            values["key_id"] = new_box.current_key_id
        await session.execute(update(model).where(model.id == row_id).values(**values))
        return 1


async def rotate(database: Database, old_box: SecretBox, new_box: SecretBox) -> int:
    """Re-seal, under `new_box`'s current key, every value `old_box` (or `new_box`) opens.

    Returns how many values were re-sealed: 0 on a second run means done.
    """
    count = 0
    for sealed in _SEALED:
        after = None
        while ids := await _ids(database, sealed, after, new_box.current_key_id):
            for row_id in ids:
                count += await _rotate_row(database, sealed, row_id, old_box, new_box)
            after = ids[-1]
        log.info("rotate_keys.table_done", table=sealed.model.__tablename__,
                 column=sealed.column.key, resealed_so_far=count)  # fmt: skip
    return count
