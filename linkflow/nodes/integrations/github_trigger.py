"""The GitHub push trigger: `github_trigger` starts the workflow on a repository's or
organisation's webhook events.

Decisions:
- GitHub signs each delivery with `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the
  raw body>` under the webhook's secret; the webhook layer checks it
  (`linkflow.security.push_signatures`) before anything is stored. The scheme has no
  timestamp: a captured delivery can be resent unchanged (GitHub's "Redeliver" does
  just that), but never with another body.
- The event's type is `X-GitHub-Event` (`push`, `issues`, `pull_request`, `ping`...);
  `X-GitHub-Delivery` reaches the workflow among the headers, for deduplication.
- The webhook's content type must be `application/json`: a form-encoded delivery
  reaches the workflow as `{"payload": "<json text>"}`.
"""

from __future__ import annotations

from typing import ClassVar

from linkflow.nodes.integrations._push import PushTriggerNode, push_schema
from linkflow.nodes.sdk import JsonObject, Node

__all__ = ["NODES", "GitHubTrigger"]

MAX_BODY_BYTES = 25 * 1024 * 1024
"""GitHub caps a delivery's payload at 25 MB."""


class GitHubTrigger(PushTriggerNode):
    type = "github_trigger"
    display_name = "GitHub Trigger"
    description = (
        "Starts the workflow when GitHub delivers a webhook event to the node's URL "
        "(`/webhooks/{endpoint_id}`: set it as the webhook's Payload URL, content type "
        "`application/json`, with the same secret). Calls without a valid "
        "`X-Hub-Signature-256` are refused with 401 `invalid_signature`."
    )
    parameters_schema: ClassVar[JsonObject] = push_schema(
        sealed_value_help="The webhook's secret, as entered on GitHub.",
        events_help="`X-GitHub-Event` types that start the workflow (`push`, `issues`, `ping`...).",
        max_body_bytes=MAX_BODY_BYTES,
    )
    emits = (
        "One item `{method, path, headers, query, body, event}`: `body` is the event's JSON "
        "payload, `event` its `X-GitHub-Event` type; the signature header reads "
        "`[redacted]`."
    )


NODES: tuple[type[Node], ...] = (GitHubTrigger,)
