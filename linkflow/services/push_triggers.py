"""Push triggers: webhook endpoints whose caller is a SaaS service that signs its calls.

A push trigger node (`github_trigger`, `slack_trigger`, `telegram_trigger`,
`stripe_trigger`) gets a webhook row and URL as a `webhook` node does, its `secret`
sealed the same way (`linkflow.services.webhook_endpoints`). The node's type picks
the signature scheme (`PUSH_TRIGGERS`); the webhook service checks it on the raw body
before anything is stored (`verify`, 401 `invalid_signature` / `stale_signature`),
then reads the event's type from the call (`event_of`), which the item carries as
`event`.

Some verified calls start nothing and are answered at once (`early_reply`): Slack's
`url_verification` gets its `challenge` back (Slack sends it when the Request URL is
saved, and the URL is accepted only if the challenge returns), and an event outside
the node's `events` list gets 200 `{"status": "ignored", "event"}` (2xx, so the
service neither retries it nor marks the endpoint failing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from linkflow.security.push_signatures import PushScheme, PushSignatureRefused
from linkflow.security.push_signatures import verify as verify_signature
from linkflow.services.errors import Unauthorized

__all__ = [
    "PUSH_TRIGGERS",
    "WEBHOOK_NODE_TYPES",
    "PushTrigger",
    "Reply",
    "early_reply",
    "event_of",
    "verify",
]

PUSH_TRIGGERS: Final[Mapping[str, PushScheme]] = {
    "github_trigger": PushScheme.GITHUB,
    "slack_trigger": PushScheme.SLACK,
    "telegram_trigger": PushScheme.TELEGRAM,
    "stripe_trigger": PushScheme.STRIPE,
}
"""Push trigger node types and the scheme each one's calls are verified by."""
WEBHOOK_NODE_TYPES: Final = frozenset({"webhook", *PUSH_TRIGGERS})
"""Node types that own a webhook row (a URL and a sealed secret)."""

Reply = tuple[int, dict[str, Any]]
"""An answer given without starting an execution: status and JSON body."""


@dataclass(frozen=True, slots=True)
class PushTrigger:
    """What a call to a push trigger's endpoint is checked against."""

    scheme: PushScheme
    events: frozenset[str]
    """The event types that start the workflow; empty: all."""

    @classmethod
    def of(cls, node: Mapping[str, Any] | None) -> PushTrigger | None:
        """The push trigger of a workflow document's node; None for any other node."""
        scheme = PUSH_TRIGGERS.get(str((node or {}).get("type")))
        if node is None or scheme is None:
            return None
        params = node.get("parameters")
        events = params.get("events") if isinstance(params, Mapping) else None
        wanted = frozenset(e for e in events if isinstance(e, str)) if isinstance(
            events, list) else frozenset()  # fmt: skip
        return cls(scheme, wanted)


def verify(push: PushTrigger, secret: bytes | None, headers: Mapping[str, str],
           body: bytes) -> None:  # fmt: skip
    """Pass, or raise `Unauthorized` with the scheme's refusal code."""
    try:
        verify_signature(push.scheme, secret, headers, body)
    except PushSignatureRefused as refused:
        raise Unauthorized(refused.detail, code=refused.code) from None


def event_of(push: PushTrigger, headers: Mapping[str, str], body: Any) -> str | None:
    """The event's type as the service names it: GitHub's `X-GitHub-Event`, Slack's
    inner `event.type` (else the envelope's `type`), the kind of a Telegram update
    (`message`, `callback_query`...), Stripe's `type`."""
    if push.scheme is PushScheme.GITHUB:
        return headers.get("x-github-event")
    if not isinstance(body, Mapping):
        return None
    if push.scheme is PushScheme.TELEGRAM:
        return next((key for key in body if key != "update_id"), None)
    if push.scheme is PushScheme.SLACK and body.get("type") == "event_callback":
        inner = body.get("event")
        kind = inner.get("type") if isinstance(inner, Mapping) else None
        return kind if isinstance(kind, str) else None
    kind = body.get("type")
    return kind if isinstance(kind, str) else None


def early_reply(push: PushTrigger, event: str | None, body: Any) -> Reply | None:
    """The answer to a verified call that starts no execution; None when it should."""
    if push.scheme is PushScheme.SLACK and event == "url_verification":
        challenge = body.get("challenge") if isinstance(body, Mapping) else None
        return 200, {"challenge": challenge if isinstance(challenge, str) else ""}
    if push.events and event not in push.events:
        return 200, {"status": "ignored", "event": event}
    return None
