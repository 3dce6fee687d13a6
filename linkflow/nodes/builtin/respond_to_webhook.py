"""The respond-to-webhook node: sets the answer the webhook caller receives."""

from __future__ import annotations

from typing import ClassVar

from linkflow.nodes.builtin._common import Params
from linkflow.nodes.sdk import (
    JsonObject,
    Node,
    NodeContext,
    NodeError,
    NodeGroup,
    NodeResult,
    Response,
)

__all__ = ["NODES", "RespondToWebhook"]


class RespondToWebhook(Node):
    type = "respond_to_webhook"
    display_name = "Respond to Webhook"
    group = NodeGroup.ACTION
    description = (
        "Answers the call that started the execution (webhook trigger with "
        "`response_mode: respond_node`): `status`, `headers` and `body`, evaluated for the "
        "first item; the body defaults to the first item. The caller gets the answer as soon "
        "as this node runs, while the execution goes on; only the first answer counts. The "
        "items pass on unchanged. The answer is served from the API's origin, so it is "
        "sandboxed (`Content-Security-Policy: sandbox`, `X-Content-Type-Options: nosniff`) and "
        "headers that would change that origin's security (`Set-Cookie`, CSP, HSTS, CORS, "
        "`Clear-Site-Data` and the like, see docs/api.md) are dropped."
    )
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "status": {
                "type": "integer",
                "minimum": 100,
                "maximum": 599,
                "default": 200,
                "description": "HTTP status code.",
            },
            "headers": {
                "type": "object",
                "additionalProperties": {"type": ["string", "number", "boolean"]},
                "default": {},
                "description": "Response headers (numbers and booleans are sent as text).",
            },
            "body": {"description": "The response body (JSON); default: the first item."},
        },
        "required": [],
        "additionalProperties": False,
    }

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        status = params.integer("status")
        if not 100 <= status <= 599:
            raise NodeError(f"parameter 'status' must be an HTTP status, not {status}")
        headers = {str(k): _text(v) for k, v in params.mapping("headers").items()}
        body = params.get("body")
        if body is None and ctx.items:
            body = ctx.items[0].json
        return NodeResult(
            outputs={"main": ctx.items},
            response=Response(status=status, headers=headers, body=body),
        )


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


NODES: tuple[type[Node], ...] = (RespondToWebhook,)
