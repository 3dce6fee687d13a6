"""How a credential's `data` is stored: the whole object as JSON, sealed by the secret box.

Invariants:
- The associated data is ``credential:<id>``, so a ciphertext copied into
  another row (or another workspace's row) does not open.
- `key_id` on the row always names the key that sealed `data_encrypted`
  (it is also inside the ciphertext); rotation finds stale rows by it.
- A row that cannot be opened (its key is not configured, or it was
  tampered with) raises `Unavailable`: a configuration problem the operator
  must fix, never shown as an empty credential.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from linkflow.security.secretbox import SecretBox, SecretBoxError
from linkflow.services.errors import Unavailable
from linkflow.store import Credential

__all__ = ["associated_data", "open_data", "seal_data"]


def associated_data(credential_id: uuid.UUID) -> bytes:
    return f"credential:{credential_id}".encode()


def seal_data(box: SecretBox, credential_id: uuid.UUID, data: dict[str, Any]) -> bytes:
    """`data` as JSON, sealed under the box's current key and bound to the row."""
    return box.seal(orjson.dumps(data), associated_data(credential_id))


def open_data(box: SecretBox, row: Credential) -> dict[str, Any]:
    """The decrypted `data` of `row`; `Unavailable` when this server cannot open it."""
    try:
        plain = box.open(row.data_encrypted, associated_data(row.id))
    except SecretBoxError as error:
        raise Unavailable(
            f"credential {row.id} cannot be decrypted ({error}); configure the key "
            f"{row.key_id!r} (see docs/operations.md, Credentials)",
            code="credential_key_unavailable",
        ) from None
    data: dict[str, Any] = orjson.loads(plain)
    return data
