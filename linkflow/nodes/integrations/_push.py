"""What the push trigger nodes (`github_trigger`, `slack_trigger`, `telegram_trigger`,
`stripe_trigger`) share: their parameters and their run.

A push trigger is a webhook trigger whose caller is the service itself. The webhook
layer does the work before the node runs: it gives the node a URL as it does a
`webhook` node, seals its `secret`, checks the service's signature on the raw body
(401 `invalid_signature` or `stale_signature` otherwise, and no execution), answers
what needs no workflow (Slack's URL challenge, events left out of `events`), and
hands over the request with the event's type as `event`. The node passes that item
on, as the webhook node does.
"""

from __future__ import annotations

from typing import ClassVar, Final

from linkflow.nodes.sdk import Item, JsonObject, Node, NodeContext, NodeGroup, NodeResult

__all__ = ["MAX_BODY_BYTES_CAP", "PushTriggerNode", "push_schema"]

MAX_BODY_BYTES_CAP: Final = 64 * 1024 * 1024
"""As the webhook node's: a call's body is held in memory while its execution starts."""


def push_schema(*, sealed_value_help: str, events_help: str, max_body_bytes: int) -> JsonObject:
    """The parameters of a push trigger: its secret (write-only, sealed), the event types
    it starts on, and the largest body it takes."""
    return {
        "type": "object",
        "properties": {
            "secret": {
                "anyOf": [
                    {"type": "string", "minLength": 1},
                    {
                        "type": "object",
                        "properties": {"sealed": {"const": True}},
                        "required": ["sealed"],
                        "additionalProperties": False,
                    },
                ],
                "description": (
                    f"{sealed_value_help} Write-only: it is stored sealed, and the workflow "
                    'reads back `{"sealed": true}` in its place; saving that again keeps the '
                    "secret, a new string replaces it."
                ),
            },
            "events": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "description": (
                    f'{events_help} Others are answered 200 `{{"status": "ignored", '
                    '"event"}` and start nothing; empty: every event starts the workflow.'
                ),
                "default": [],
            },
            "max_body_bytes": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_BODY_BYTES_CAP,
                "description": "Largest accepted request body in bytes (413 when larger).",
                "default": max_body_bytes,
            },
        },
        "required": ["secret"],
        "additionalProperties": False,
    }


class PushTriggerNode(Node):
    """Base of the push triggers: a trigger with no inputs that emits the verified call."""

    group = NodeGroup.TRIGGER
    inputs = 0
    raw_parameters: ClassVar[frozenset[str]] = frozenset({"secret"})
    """A secret is the service's text as it is, never an expression."""

    async def run(self, ctx: NodeContext) -> NodeResult:
        request = ctx.trigger_input
        if not isinstance(request, dict):
            # A manual test run: what it was given is the event's body.
            request = {"method": "POST", "path": "", "headers": {}, "query": {},
                       "body": request, "event": None}  # fmt: skip
        return NodeResult.main([Item(json=request, paired=())])
