"""The Slack push trigger: `slack_trigger` starts the workflow on Events API events.

Decisions:
- Slack signs each request with `X-Slack-Signature: v0=<hex HMAC-SHA256 of
  "v0:<X-Slack-Request-Timestamp>:<raw body>">` under the app's signing secret; the
  webhook layer checks it, and that the timestamp is within five minutes of now
  (`linkflow.security.push_signatures`), before anything is stored.
- Saving the Request URL makes Slack send a signed `url_verification` with a
  `challenge`; it is answered `{"challenge": ...}` and starts no execution.
- The event's type is the inner `event.type` of an `event_callback` (`message`,
  `app_mention`...), else the envelope's `type`. Slack retries a delivery not answered
  within three seconds, so the node answers at once (202) and the workflow runs after;
  retries carry `X-Slack-Retry-Num`, which reaches the workflow among the headers.
"""

from __future__ import annotations

from typing import ClassVar

from linkflow.nodes.integrations._push import PushTriggerNode, push_schema
from linkflow.nodes.sdk import JsonObject, Node

__all__ = ["NODES", "SlackTrigger"]

MAX_BODY_BYTES = 1024 * 1024
"""Events API payloads are small JSON documents."""


class SlackTrigger(PushTriggerNode):
    type = "slack_trigger"
    display_name = "Slack Trigger"
    description = (
        "Starts the workflow when Slack's Events API delivers an event to the node's URL "
        "(`/webhooks/{endpoint_id}`: the app's Event Subscriptions Request URL). Requests "
        "must carry a valid `X-Slack-Signature` over `X-Slack-Request-Timestamp` (within "
        "5 minutes): else 401 `invalid_signature` or `stale_signature`. The URL "
        "verification challenge is answered without starting the workflow."
    )
    parameters_schema: ClassVar[JsonObject] = push_schema(
        sealed_value_help="The app's signing secret (Basic Information, App Credentials).",
        events_help="Event types that start the workflow (`message`, `app_mention`...).",
        max_body_bytes=MAX_BODY_BYTES,
    )
    emits = (
        "One item `{method, path, headers, query, body, event}`: `body` is the event "
        'envelope (`{type: "event_callback", event: {...}, team_id...}`), `event` the '
        "inner event's type; the signature header reads `[redacted]`."
    )


NODES: tuple[type[Node], ...] = (SlackTrigger,)
