"""Time-based one-time passwords (RFC 6238) and recovery codes for MFA.

Invariants:
- A code is accepted in the current 30-second step or one step either side
  (clock drift), and `verify_totp` returns the step it matched: callers keep
  the last accepted step and refuse a code from the same or an earlier step,
  so an observed code cannot be replayed.
- Recovery codes carry 80 random bits, so SHA-256 is enough to store them;
  each is single-use (the caller deletes its hash when it is used). Input is
  normalised (case, dashes, spaces) before hashing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import Final

import pyotp

__all__ = [
    "RECOVERY_CODE_COUNT",
    "hash_recovery_code",
    "new_recovery_codes",
    "new_totp_secret",
    "provisioning_uri",
    "verify_totp",
]

RECOVERY_CODE_COUNT: Final = 10
_STEP_S: Final = 30
_DRIFT_STEPS: Final = 1
_RECOVERY_ALPHABET: Final = "abcdefghjkmnpqrstuvwxyz23456789"  # no look-alikes (0/o, 1/l/i)
_RECOVERY_GROUPS: Final = 4
_RECOVERY_GROUP_CHARS: Final = 4  # 16 characters of a 31-letter alphabet: about 79 bits


def new_totp_secret() -> str:
    """A random base32 secret (160 bits), the format authenticator apps expect."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The ``otpauth://`` URI an authenticator app scans (as a QR code) to add the account."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def verify_totp(
    secret: str, code: str, *, after_step: int | None = None, now: datetime | None = None
) -> int | None:
    """The time step `code` is valid for (within drift), or None.

    A match at or before `after_step` (the last accepted step) is a replay: None.
    """
    digits = code.strip().replace(" ", "")
    if len(digits) != 6 or not digits.isdigit():
        return None
    moment = now or datetime.now(UTC)
    current = int(moment.timestamp()) // _STEP_S
    totp = pyotp.TOTP(secret)
    for step in range(current - _DRIFT_STEPS, current + _DRIFT_STEPS + 1):
        if after_step is not None and step <= after_step:
            continue
        if hmac.compare_digest(totp.at(step * _STEP_S), digits):
            return step
    return None


def _normalise(code: str) -> str:
    return "".join(char for char in code.lower() if char.isalnum())


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """`count` fresh codes like ``abcd-efgh-jkmn-pqrs``, shown to the user once."""
    codes = []
    for _ in range(count):
        groups = (
            "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_GROUP_CHARS))
            for _ in range(_RECOVERY_GROUPS)
        )
        codes.append("-".join(groups))
    return codes


def hash_recovery_code(code: str) -> str:
    """SHA-256 (hex) of the normalised code."""
    return hashlib.sha256(_normalise(code).encode()).hexdigest()
