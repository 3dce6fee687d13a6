"""The Telegram push trigger: `telegram_trigger` starts the workflow on a bot's updates.

Decisions:
- Telegram signs nothing: `setWebhook` takes a `secret_token` (1-256 characters of
  `A-Z a-z 0-9 _ -`) that every update carries as `X-Telegram-Bot-Api-Secret-Token`;
  the webhook layer compares it with the node's secret in constant time
  (`linkflow.security.push_signatures`) before anything is stored.
- The event's type is the update's kind: its field other than `update_id`
  (`message`, `edited_message`, `callback_query`...).
- Point the bot at the node's URL with `setWebhook` (`url`, `secret_token`); the
  `telegram` node sends, this one receives (getUpdates would compete with it).
"""

from __future__ import annotations

from typing import ClassVar

from linkflow.nodes.integrations._push import PushTriggerNode, push_schema
from linkflow.nodes.sdk import JsonObject, Node

__all__ = ["NODES", "TelegramTrigger"]

MAX_BODY_BYTES = 1024 * 1024
"""An update is a small JSON document; files are referred to by `file_id`."""


class TelegramTrigger(PushTriggerNode):
    type = "telegram_trigger"
    display_name = "Telegram Trigger"
    description = (
        "Starts the workflow when Telegram delivers a bot update to the node's URL "
        "(`/webhooks/{endpoint_id}`, given to `setWebhook` with the same `secret_token`). "
        "Calls whose `X-Telegram-Bot-Api-Secret-Token` is missing or wrong are refused "
        "with 401 `invalid_signature`."
    )
    parameters_schema: ClassVar[JsonObject] = push_schema(
        sealed_value_help="The `secret_token` given to `setWebhook`.",
        events_help="Update kinds that start the workflow (`message`, `callback_query`...).",
        max_body_bytes=MAX_BODY_BYTES,
    )
    emits = (
        "One item `{method, path, headers, query, body, event}`: `body` is the Update "
        "object, `event` its kind; the secret token header reads `[redacted]`."
    )


NODES: tuple[type[Node], ...] = (TelegramTrigger,)
