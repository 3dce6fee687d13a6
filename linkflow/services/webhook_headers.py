"""What webhook calls may keep of their request headers, and send back in their answers.

Requests: a header that carries a credential, a token or a signature reaches the
workflow (and so the stored execution input, node outputs and events that
viewers read) as ``"[redacted]"``. Replaced, not dropped: a workflow can still
see that the caller sent one, and a reader sees why its value is missing.
A name is sensitive when it is one of `SENSITIVE_REQUEST_HEADERS`, or contains
one of `SENSITIVE_NAME_PARTS` (so `X-Hub-Signature-256`, `Stripe-Signature`,
`X-Gitlab-Token`, `X-Shopify-Hmac-Sha256`, `X-Api-Key` all are).

Answers of respond_to_webhook nodes are served from the API's own origin, so
they may not change that origin's security: `FORBIDDEN_ANSWER_HEADERS` are
dropped whatever the node set, and every answer carries
``Content-Security-Policy: sandbox`` (the browser treats the page as coming
from a unique origin, without scripts, forms, popups or access to the API's
cookies and storage). The edge adds ``X-Content-Type-Options: nosniff`` to
every response, webhook answers included.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Final

__all__ = [
    "ANSWER_CSP",
    "FORBIDDEN_ANSWER_HEADERS",
    "REDACTED",
    "SENSITIVE_NAME_PARTS",
    "SENSITIVE_REQUEST_HEADERS",
    "answer_headers",
    "is_sensitive",
    "redacted",
]

REDACTED: Final = "[redacted]"
SENSITIVE_REQUEST_HEADERS: Final = frozenset({
    "authorization", "proxy-authorization", "cookie", "x-linkflow-signature",
    "x-linkflow-timestamp", "x-csrf-token", "x-xsrf-token",
})  # fmt: skip
SENSITIVE_NAME_PARTS: Final = (
    "auth", "cookie", "token", "secret", "signature", "password", "api-key", "apikey", "hmac",
    "session",
)  # fmt: skip
NAME_CACHE_SIZE: Final = 1024
"""Header names seen per process are few (callers repeat theirs); the cache spares the
substring tests on the hot path."""

ANSWER_CSP: Final = "sandbox"
FORBIDDEN_ANSWER_HEADERS: Final = frozenset({
    # Cookies and storage of the API's origin.
    "set-cookie", "set-cookie2", "clear-site-data",
    # Policies the edge sets for the origin, or that outlive the response.
    "content-security-policy", "content-security-policy-report-only",
    "x-content-type-options", "x-frame-options", "strict-transport-security",
    "public-key-pins", "public-key-pins-report-only", "expect-ct",
    "cross-origin-opener-policy", "cross-origin-embedder-policy",
    "cross-origin-resource-policy", "origin-agent-cluster", "permissions-policy",
    "referrer-policy", "service-worker-allowed", "alt-svc", "nel", "report-to",
    "reporting-endpoints", "accept-ch", "critical-ch",
    # CORS is the edge's decision, for every path of the origin.
    "access-control-allow-origin", "access-control-allow-credentials",
    "access-control-allow-headers", "access-control-allow-methods",
    "access-control-expose-headers", "access-control-max-age",
    # Framing belongs to the server: a wrong one breaks or smuggles responses.
    "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
    "trailer", "te", "proxy-connection",
    # The edge's own.
    "x-request-id",
})  # fmt: skip


@lru_cache(maxsize=NAME_CACHE_SIZE)
def is_sensitive(name: str) -> bool:
    """Whether a request header (lower-case name) carries a credential or signature."""
    return name in SENSITIVE_REQUEST_HEADERS or any(p in name for p in SENSITIVE_NAME_PARTS)


def redacted(headers: Mapping[str, str]) -> dict[str, str]:
    """`headers` (lower-case names) with sensitive values replaced by `REDACTED`."""
    return {name: REDACTED if is_sensitive(name) else value for name, value in headers.items()}


def answer_headers(headers: Mapping[str, object] | None) -> dict[str, str]:
    """The headers a respond_to_webhook answer is sent with: the node's, less the
    forbidden ones and any that is not a valid header, plus the sandbox CSP."""
    out: dict[str, str] = {}
    for name, value in (headers or {}).items():
        text = str(value)
        if name.lower() in FORBIDDEN_ANSWER_HEADERS or not _valid(name, text):
            continue
        out[name] = text
    out["Content-Security-Policy"] = ANSWER_CSP
    return out


_TOKEN_CHARACTERS: Final = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ")  # fmt: skip


def _valid(name: str, value: str) -> bool:
    """RFC 9110 field name; a value of visible Latin-1 (no CR, LF or NUL to split on)."""
    if not name or not set(name) <= _TOKEN_CHARACTERS:
        return False
    return all(ch == "\t" or " " <= ch <= "~" or "\x80" <= ch <= "\xff" for ch in value)
