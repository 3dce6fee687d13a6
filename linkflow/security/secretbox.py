"""AES-256-GCM encryption of small secrets at rest, with a key id in every ciphertext.

Format (bytes): ``0x01`` (format version) | key id length (1 byte) | key id
(ASCII) | 96-bit random nonce | ciphertext and 128-bit tag.

Invariants:
- The key id travels with the ciphertext, so keys can rotate: new data is
  sealed with the current key, and old data opens as long as its key is still
  listed. A ciphertext whose key is unknown, or that was altered, raises
  `SecretBoxError` and never yields partial plaintext.
- Associated data (for example ``b"user:<id>:mfa"``) binds a ciphertext to
  the row it belongs to: copying it into another row does not decrypt.
- Nonces are random: with 96 bits, sealing 2**32 messages under one key keeps
  the collision chance below 2**-32, far more than a key sees before rotation.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["SecretBox", "SecretBoxError", "key_id_for"]

_VERSION: Final = 1
_NONCE_BYTES: Final = 12
_KEY_BYTES: Final = 32


class SecretBoxError(Exception):
    """A ciphertext that cannot be opened: unknown key, wrong format, or tampered with."""


def key_id_for(key: bytes) -> str:
    """A stable, non-secret name for `key`: the first 8 hex digits of its SHA-256."""
    return hashlib.sha256(key).hexdigest()[:8]


class SecretBox:
    """Seals with the current key; opens with any listed key."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise ValueError(f"current key id {current!r} is not among the keys")
        for key_id, key in keys.items():
            if len(key) != _KEY_BYTES:
                raise ValueError(f"key {key_id!r} is {len(key)} bytes, not {_KEY_BYTES}")
            if not 0 < len(key_id.encode()) < 256 or not key_id.isascii():
                raise ValueError(f"key id {key_id!r} must be 1-255 ASCII characters")
        self._ciphers: Final = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._current: Final = current

    @classmethod
    def from_key(cls, key: bytes) -> SecretBox:
        """A box with one key, named by `key_id_for`."""
        key_id = key_id_for(key)
        return cls({key_id: key}, key_id)

    @classmethod
    def from_keys(cls, current: bytes, previous: Iterable[bytes] = ()) -> SecretBox:
        """A box that seals with `current` and opens with it or any of `previous` (the
        keys of a rotation in progress), each named by `key_id_for`."""
        keys = {key_id_for(key): key for key in previous}
        current_id = key_id_for(current)
        keys[current_id] = current
        return cls(keys, current_id)

    @property
    def current_key_id(self) -> str:
        return self._current

    def seal(self, plaintext: bytes, associated_data: bytes = b"") -> bytes:
        """Encrypt `plaintext` under the current key."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[self._current].encrypt(nonce, plaintext, associated_data)
        key_id = self._current.encode()
        return bytes([_VERSION, len(key_id)]) + key_id + nonce + sealed

    def open(self, ciphertext: bytes, associated_data: bytes = b"") -> bytes:
        """Decrypt what `seal` produced (with the same associated data)."""
        if len(ciphertext) < 2 or ciphertext[0] != _VERSION:
            raise SecretBoxError("not a LinkFlow secret-box ciphertext")
        id_end = 2 + ciphertext[1]
        key_id = ciphertext[2:id_end].decode("ascii", errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise SecretBoxError(f"ciphertext sealed with unknown key {key_id!r}")
        nonce = ciphertext[id_end : id_end + _NONCE_BYTES]
        body = ciphertext[id_end + _NONCE_BYTES :]
        if len(nonce) != _NONCE_BYTES:
            raise SecretBoxError("ciphertext is truncated")
        try:
            return cipher.decrypt(nonce, body, associated_data)
        except InvalidTag:
            raise SecretBoxError("ciphertext was altered or belongs elsewhere") from None
