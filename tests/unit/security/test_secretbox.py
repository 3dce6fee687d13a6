"""The secret box: AES-256-GCM with a key id in each ciphertext."""

from __future__ import annotations

import os

import pytest

from linkflow.security.secretbox import SecretBox, SecretBoxError, key_id_for

OLD, NEW = os.urandom(32), os.urandom(32)


def test_what_is_sealed_opens_with_the_same_associated_data() -> None:
    """Round trip; the ciphertext does not contain the plaintext."""
    box = SecretBox.from_key(OLD)
    sealed = box.seal(b"totp-secret", b"user:1:mfa")
    assert b"totp-secret" not in sealed
    assert box.open(sealed, b"user:1:mfa") == b"totp-secret"


def test_each_seal_uses_a_fresh_nonce() -> None:
    """The same plaintext twice gives two different ciphertexts."""
    box = SecretBox.from_key(OLD)
    assert box.seal(b"same") != box.seal(b"same")


def test_old_ciphertexts_open_after_a_key_rotation() -> None:
    """New data is sealed with the current key; data sealed with a listed old key opens."""
    old_box = SecretBox.from_key(OLD)
    sealed_before = old_box.seal(b"before")
    rotated = SecretBox({key_id_for(OLD): OLD, key_id_for(NEW): NEW}, key_id_for(NEW))
    assert rotated.open(sealed_before) == b"before"
    sealed_after = rotated.seal(b"after")
    assert key_id_for(NEW).encode() in sealed_after[:16]
    with pytest.raises(SecretBoxError, match="unknown key"):
        old_box.open(sealed_after)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c[:-1] + bytes([c[-1] ^ 1]),  # the tag
        lambda c: c[:20] + bytes([c[20] ^ 1]) + c[21:],  # the nonce or body
        lambda c: b"\x02" + c[1:],  # the format version
        lambda c: c[:12],  # truncated
    ],
)
def test_an_altered_ciphertext_never_opens(tamper) -> None:  # type: ignore[no-untyped-def]
    """Any change is SecretBoxError, never wrong plaintext."""
    box = SecretBox.from_key(OLD)
    with pytest.raises(SecretBoxError):
        box.open(tamper(box.seal(b"secret value")))


def test_a_ciphertext_moved_to_another_row_does_not_open() -> None:
    """Different associated data: refused."""
    box = SecretBox.from_key(OLD)
    with pytest.raises(SecretBoxError, match="altered or belongs elsewhere"):
        box.open(box.seal(b"secret", b"user:1:mfa"), b"user:2:mfa")


def test_keys_must_be_32_bytes() -> None:
    """A short key is a ValueError at construction."""
    with pytest.raises(ValueError, match="not 32"):
        SecretBox({"k": b"short"}, "k")


def test_from_keys_seals_with_the_current_key_and_opens_the_previous_ones() -> None:
    """`from_keys(current, previous)`: what an old key sealed opens, new seals use `current`."""
    old, new = os.urandom(32), os.urandom(32)
    sealed_before = SecretBox.from_key(old).seal(b"token")
    box = SecretBox.from_keys(new, [old, new])
    assert box.current_key_id == key_id_for(new)
    assert box.open(sealed_before) == b"token"
    assert SecretBox.from_key(new).open(box.seal(b"fresh")) == b"fresh"
