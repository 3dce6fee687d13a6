"""The limit node: keeps the first or last N items."""

from __future__ import annotations

from typing import ClassVar

from linkflow.nodes.builtin._common import Params
from linkflow.nodes.sdk import JsonObject, Node, NodeContext, NodeGroup, NodeResult

__all__ = ["NODES", "Limit"]


class Limit(Node):
    type = "limit"
    display_name = "Limit"
    group = NodeGroup.DATA
    description = (
        "Keeps at most `max_items` items, the first or the last ones, in their order. "
        "Kept items pass through unchanged."
    )
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "max_items": {
                "type": "integer",
                "minimum": 0,
                "description": "How many items to keep at most.",
                "default": 1,
            },
            "keep": {
                "type": "string",
                "enum": ["first", "last"],
                "description": "Keep the first or the last items.",
                "default": "first",
            },
        },
        "required": [],
        "additionalProperties": False,
    }

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        count, items = params.integer("max_items"), list(ctx.items)
        if count == 0:
            return NodeResult.main([])
        kept = items[-count:] if params.text("keep") == "last" else items[:count]
        return NodeResult.main(kept)


NODES: tuple[type[Node], ...] = (Limit,)
