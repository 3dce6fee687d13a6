"""The filter node: keeps the items whose condition holds."""

from __future__ import annotations

from typing import ClassVar

from linkflow.nodes.builtin._common import CONDITION_SCHEMA, Params, is_truthy
from linkflow.nodes.sdk import (
    MAIN,
    Item,
    JsonObject,
    Node,
    NodeContext,
    NodeGroup,
    NodeResult,
    route_items,
)

__all__ = ["NODES", "Filter"]


class Filter(Node):
    type = "filter"
    display_name = "Filter"
    group = NodeGroup.FLOW
    description = (
        "Keeps the items whose `condition` (evaluated per item) is true and drops the rest. "
        "Truthiness is the `if` node's: null, false, 0, empty strings, lists and objects, and "
        'the strings "false", "0", "no", "off", "null", "none" are false. Kept items pass '
        "through unchanged."
    )
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {"condition": CONDITION_SCHEMA},
        "required": ["condition"],
        "additionalProperties": False,
    }

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)

        def choose(item: Item, index: int) -> tuple[str, ...]:
            return (MAIN,) if is_truthy(params.get("condition", index)) else ()

        return route_items(ctx, choose, (MAIN,))


NODES: tuple[type[Node], ...] = (Filter,)
