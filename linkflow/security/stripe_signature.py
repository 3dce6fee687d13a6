"""Verifying Stripe's `Stripe-Signature` header on a webhook call.

Stripe signs `"<timestamp>.<raw body>"` with HMAC-SHA256 under the endpoint's signing
secret (the whole `whsec_...` text) and sends `t=<timestamp>,v1=<hex>[,v1=<hex>...]`:
several `v1` entries while a secret is being rolled, `v0` entries (test mode, an older
scheme) that are never trusted. A call verifies when one `v1` matches, compared in
constant time, and its timestamp lies within `tolerance_s` of now (replays of an old
call are refused; Stripe's own libraries use five minutes).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Final

__all__ = ["DEFAULT_TOLERANCE_S", "SignatureRefused", "sign", "verify"]

DEFAULT_TOLERANCE_S: Final = 300


class SignatureRefused(Exception):
    """The call is not Stripe's: `code` says why (missing, malformed, stale, mismatch)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _digest(secret: str, timestamp: str, payload: bytes) -> str:
    message = timestamp.encode() + b"." + payload
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, payload: bytes, timestamp: int) -> str:
    """The header Stripe would send for `payload` at `timestamp` (for tests and tools)."""
    return f"t={timestamp},v1={_digest(secret, str(timestamp), payload)}"


def verify(
    secret: str,
    payload: bytes,
    header: str | None,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> int:
    """The call's timestamp when `header` is a valid signature of `payload`; else raises
    `SignatureRefused`."""
    if not header:
        raise SignatureRefused("signature_missing", "the Stripe-Signature header is missing")
    timestamp: str | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not timestamp.isdigit() or not candidates:
        raise SignatureRefused(
            "signature_malformed", "the Stripe-Signature header has no timestamp or no v1 signature"
        )
    expected = _digest(secret, timestamp, payload)
    # Every candidate is compared, so the time taken does not tell which one matched.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureRefused(
            "signature_mismatch", "no v1 signature of the Stripe-Signature header matches the body"
        )
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance_s:
        raise SignatureRefused(
            "signature_expired",
            f"the signature's timestamp is more than {tolerance_s:g} s from now",
        )
    return int(timestamp)
