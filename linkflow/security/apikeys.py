"""API keys: ``lf_`` + a 12-character lookup prefix + a 40-character secret.

Invariants:
- A key is shown once, when created. The database keeps its prefix (to find
  the row with one indexed lookup) and an HMAC-SHA256 of the whole key under
  the server's secret key. The secret part carries about 238 bits of
  entropy, so a keyed fast hash is as safe as a slow one here, and checking a
  key costs microseconds rather than Argon2's tens of milliseconds per request.
- Comparison is constant-time.
- Anything that does not look like a key (`parse` returns None) is rejected
  before the database is asked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from typing import Final

__all__ = [
    "KEY_PREFIX",
    "NewApiKey",
    "generate_api_key",
    "hash_api_key",
    "key_matches",
    "lookup_prefix",
]

KEY_PREFIX: Final = "lf_"
_ALPHABET: Final = string.ascii_letters + string.digits
_PREFIX_CHARS: Final = 12  # 71 bits: collisions are negligible, and the column is unique anyway
_SECRET_CHARS: Final = 40
KEY_LENGTH: Final = len(KEY_PREFIX) + _PREFIX_CHARS + _SECRET_CHARS


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A freshly generated key: `key` goes to the user once; the rest is stored."""

    key: str
    prefix: str
    key_hash: str


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def hash_api_key(hmac_key: bytes, key: str) -> str:
    """HMAC-SHA256 (hex) of the whole key under the server's key."""
    return hmac.new(hmac_key, key.encode(), hashlib.sha256).hexdigest()


def generate_api_key(hmac_key: bytes) -> NewApiKey:
    """A new random key, its lookup prefix and its stored hash."""
    key = KEY_PREFIX + _random(_PREFIX_CHARS) + _random(_SECRET_CHARS)
    return NewApiKey(
        key=key, prefix=key[: len(KEY_PREFIX) + _PREFIX_CHARS], key_hash=hash_api_key(hmac_key, key)
    )


def lookup_prefix(key: str) -> str | None:
    """The prefix of a well-formed key, or None for anything that is not one."""
    if len(key) != KEY_LENGTH or not key.startswith(KEY_PREFIX):
        return None
    body = key[len(KEY_PREFIX) :]
    if not all(char in _ALPHABET for char in body):
        return None
    return key[: len(KEY_PREFIX) + _PREFIX_CHARS]


def key_matches(hmac_key: bytes, key: str, stored_hash: str) -> bool:
    """Whether `key` hashes to `stored_hash` (constant-time)."""
    return hmac.compare_digest(hash_api_key(hmac_key, key), stored_hash)
