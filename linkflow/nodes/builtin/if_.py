"""The if node: routes each item to `true` or `false`."""

from __future__ import annotations

from typing import ClassVar

from linkflow.nodes.builtin._common import CONDITION_SCHEMA, Params, is_truthy
from linkflow.nodes.sdk import (
    Item,
    JsonObject,
    Node,
    NodeContext,
    NodeGroup,
    NodeResult,
    route_items,
)

__all__ = ["NODES", "If"]


class If(Node):
    type = "if"
    display_name = "If"
    group = NodeGroup.FLOW
    description = (
        "Sends each item to `true` or `false` by its `condition`, evaluated per item. "
        "A condition is false when it is null, false, 0, an empty string, list or object, or "
        'one of the strings "false", "0", "no", "off", "null", "none" (any case); anything '
        "else is true. Items pass through unchanged."
    )
    outputs = ("true", "false")
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {"condition": CONDITION_SCHEMA},
        "required": ["condition"],
        "additionalProperties": False,
    }

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)

        def choose(item: Item, index: int) -> tuple[str]:
            return ("true",) if is_truthy(params.get("condition", index)) else ("false",)

        return route_items(ctx, choose, self.outputs)


NODES: tuple[type[Node], ...] = (If,)
