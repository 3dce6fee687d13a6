"""Verifying the signatures SaaS services put on the webhook calls they push.

Where and why: `linkflow.services.webhooks` calls `verify` for a push trigger node
(`github_trigger`, `slack_trigger`, `telegram_trigger`, `stripe_trigger`) on the raw
body, before anything of the call is parsed, stored or executed; a call that fails
starts nothing and gets 401. Each service has its own scheme, one function each:

- GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`. No
  timestamp: a captured call can be sent again unchanged, never with another body.
- Slack (Events API): `X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret,
  "v0:<X-Slack-Request-Timestamp>:<raw body>")>`, the timestamp within `TOLERANCE_S`.
- Telegram: `X-Telegram-Bot-Api-Secret-Token` equal to the `secret_token` given to
  `setWebhook` (Telegram signs nothing; the token is a shared secret).
- Stripe: `Stripe-Signature: t=<unix seconds>,v1=<hex>`, the scheme the billing
  webhook verifies too: `linkflow.security.stripe_signature` does both.

Invariants: every comparison is constant-time (`hmac.compare_digest`); a refusal says
which header is wrong but never echoes a secret or the expected digest; `code` is
`invalid_signature` (missing, malformed or wrong) or `stale_signature` (right, but
its timestamp is more than `TOLERANCE_S` from now), the codes of LinkFlow's own
webhook signatures.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Final

from linkflow.security import stripe_signature

__all__ = [
    "GITHUB_SIGNATURE_HEADER",
    "SLACK_SIGNATURE_HEADER",
    "SLACK_TIMESTAMP_HEADER",
    "STRIPE_SIGNATURE_HEADER",
    "TELEGRAM_TOKEN_HEADER",
    "TOLERANCE_S",
    "PushScheme",
    "PushSignatureRefused",
    "github_signature",
    "slack_signature",
    "verify",
]

TOLERANCE_S: Final = 300
"""Five minutes either way: what Slack and Stripe document and their own libraries use."""
_MAX_TIMESTAMP_DIGITS: Final = 12

# Lower-case: the webhook layer hands headers over as ASGI does.
GITHUB_SIGNATURE_HEADER: Final = "x-hub-signature-256"
SLACK_SIGNATURE_HEADER: Final = "x-slack-signature"
SLACK_TIMESTAMP_HEADER: Final = "x-slack-request-timestamp"
TELEGRAM_TOKEN_HEADER: Final = "x-telegram-bot-api-secret-token"  # noqa: S105 - a header name
STRIPE_SIGNATURE_HEADER: Final = "stripe-signature"

INVALID: Final = "invalid_signature"
STALE: Final = "stale_signature"


class PushScheme(StrEnum):
    """Whose signature a push trigger expects."""

    GITHUB = "github"
    SLACK = "slack"
    TELEGRAM = "telegram"
    STRIPE = "stripe"


class PushSignatureRefused(Exception):
    """The call is not the service's: `code` is `invalid_signature` or `stale_signature`."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def github_signature(secret: bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends with `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def slack_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The `X-Slack-Signature` value Slack sends with `body` at `timestamp`."""
    message = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret, message, hashlib.sha256).hexdigest()


def verify(
    scheme: PushScheme, secret: bytes | None, headers: Mapping[str, str], body: bytes,
    *, now: float | None = None,
) -> None:  # fmt: skip
    """Pass, or raise `PushSignatureRefused`. `headers` have lower-case names; a trigger
    with no secret stored refuses every call (it cannot tell the service from anyone)."""
    if not secret:
        raise PushSignatureRefused(INVALID, "this trigger has no secret to check calls with")
    _VERIFIERS[scheme](secret, headers, body, time.time() if now is None else now)


def _verify_github(secret: bytes, headers: Mapping[str, str], body: bytes, now: float) -> None:
    del now  # GitHub's signature has no timestamp
    if not _same(headers.get(GITHUB_SIGNATURE_HEADER, ""), github_signature(secret, body)):
        raise PushSignatureRefused(
            INVALID, "the X-Hub-Signature-256 header is missing or does not match the body"
        )


def _verify_slack(secret: bytes, headers: Mapping[str, str], body: bytes, now: float) -> None:
    stamp = headers.get(SLACK_TIMESTAMP_HEADER, "").strip()
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= _MAX_TIMESTAMP_DIGITS):
        raise PushSignatureRefused(
            INVALID, "the X-Slack-Request-Timestamp header is missing or not unix seconds"
        )
    if not _same(headers.get(SLACK_SIGNATURE_HEADER, ""), slack_signature(secret, stamp, body)):
        raise PushSignatureRefused(
            INVALID, "the X-Slack-Signature header is missing or does not match the body"
        )
    if abs(now - int(stamp)) > TOLERANCE_S:
        raise PushSignatureRefused(
            STALE, f"the X-Slack-Request-Timestamp is more than {TOLERANCE_S} s from now"
        )


def _verify_telegram(secret: bytes, headers: Mapping[str, str], body: bytes, now: float) -> None:
    del body, now  # Telegram sends the token as it is, over nothing
    if not _same(headers.get(TELEGRAM_TOKEN_HEADER, ""), secret.decode()):
        raise PushSignatureRefused(
            INVALID, "the X-Telegram-Bot-Api-Secret-Token header is missing or wrong"
        )


def _verify_stripe(secret: bytes, headers: Mapping[str, str], body: bytes, now: float) -> None:
    try:
        stripe_signature.verify(
            secret.decode(), body, headers.get(STRIPE_SIGNATURE_HEADER),
            tolerance_s=TOLERANCE_S, now=now,
        )  # fmt: skip
    except stripe_signature.SignatureRefused as refused:
        code = STALE if refused.code == "signature_expired" else INVALID
        raise PushSignatureRefused(code, refused.detail) from None


_VERIFIERS: Final[Mapping[PushScheme, Callable[[bytes, Mapping[str, str], bytes, float], None]]] = {
    PushScheme.GITHUB: _verify_github,
    PushScheme.SLACK: _verify_slack,
    PushScheme.TELEGRAM: _verify_telegram,
    PushScheme.STRIPE: _verify_stripe,
}


def _same(given: str, expected: str) -> bool:
    # Latin-1 as the headers arrived; a non-ASCII header simply does not match.
    return hmac.compare_digest(given.encode("latin-1", "replace"), expected.encode())
