"""The stop-and-error node: fails the execution with a message."""

from __future__ import annotations

from typing import ClassVar

from linkflow.nodes.builtin._common import Params
from linkflow.nodes.sdk import JsonObject, Node, NodeContext, NodeError, NodeGroup, NodeResult

__all__ = ["NODES", "StopAndError"]


class StopAndError(Node):
    type = "stop_and_error"
    display_name = "Stop and Error"
    group = NodeGroup.ACTION
    description = (
        "Fails the execution with `message` (evaluated for the first item) when it receives "
        "items. The error is never retried; an error workflow, if set, is started."
    )
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "message": {
                "type": "string",
                "description": "The error message; may be an expression.",
                "default": "Workflow stopped",
            },
        },
        "required": [],
        "additionalProperties": False,
    }

    async def run(self, ctx: NodeContext) -> NodeResult:
        raise NodeError(Params(ctx, self).text("message"), retryable=False)


NODES: tuple[type[Node], ...] = (StopAndError,)
