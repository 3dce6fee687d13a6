"""The Stripe push trigger: `stripe_trigger` starts the workflow on a webhook endpoint's
events.

Decisions:
- Stripe signs each event with `Stripe-Signature: t=<unix seconds>,v1=<hex
  HMAC-SHA256 of "<t>.<raw body>">` under the endpoint's signing secret (`whsec_...`);
  the webhook layer checks it with the code that checks the billing webhook
  (`linkflow.security.stripe_signature`, through `push_signatures`): one `v1` must
  match, `t` within five minutes of now, before anything is stored.
- The event's type is the event's `type` (`invoice.paid`, `customer.created`...).
  Stripe may deliver an event more than once: its `id` is in the body, for
  deduplication.
"""

from __future__ import annotations

from typing import ClassVar

from linkflow.nodes.integrations._push import PushTriggerNode, push_schema
from linkflow.nodes.sdk import JsonObject, Node

__all__ = ["NODES", "StripeTrigger"]

MAX_BODY_BYTES = 1024 * 1024
"""An event is a JSON document of one object, well under this."""


class StripeTrigger(PushTriggerNode):
    type = "stripe_trigger"
    display_name = "Stripe Trigger"
    description = (
        "Starts the workflow when Stripe delivers an event to the node's URL "
        "(`/webhooks/{endpoint_id}`, a webhook endpoint of the Stripe account). Calls "
        "without a valid `Stripe-Signature` are refused with 401 `invalid_signature`, "
        "and one signed more than 5 minutes from now with 401 `stale_signature`."
    )
    parameters_schema: ClassVar[JsonObject] = push_schema(
        sealed_value_help="The endpoint's signing secret (`whsec_...`).",
        events_help="Event types that start the workflow (`invoice.paid`...).",
        max_body_bytes=MAX_BODY_BYTES,
    )
    emits = (
        "One item `{method, path, headers, query, body, event}`: `body` is the Event "
        "object, `event` its `type`; the signature header reads `[redacted]`."
    )


NODES: tuple[type[Node], ...] = (StripeTrigger,)
